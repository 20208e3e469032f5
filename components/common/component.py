"""KFP components that belong to no step: the pipeline's own bookkeeping."""
from kfp import dsl

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def finish_run(status: dsl.PipelineTaskFinalStatus, mlflow_experiment: str, pipeline_run_id: str,
               pipeline_run_name: str):
    """Exit handler: close the pipeline's parent MLflow run with the pipeline's final state."""
    from components.common.tracking import Context, finish_pipeline_run

    finish_pipeline_run(Context(mlflow_experiment, pipeline_run_id, pipeline_run_name), status.state)
