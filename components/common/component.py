"""KFP components that belong to no step: the pipeline run's own bookkeeping in MLflow."""
from kfp import dsl

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def record_run(step_runs: list, reference_runs: list = []):  # noqa: B006 (KFP reads the default)
    """Complete the MLflow pipeline run with the steps KFP served from its cache: link each reused step run
    (tag seavl.reused.<step>) and copy its headline metrics. Never cached.

    Args:
        step_runs: the MLflow run ids the tracked steps returned (made in this run or, when cached, earlier).
        reference_runs: the same for the reference models' evaluations (one per model, from a ParallelFor).
    """
    from components.common.tracking import record_pipeline_run

    reused = record_pipeline_run([str(r) for r in [*step_runs, *reference_runs]])
    print("reused from KFP's cache:", reused or "nothing")


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def skipped(reason: str):
    """What a run whose inputs are unchanged since the champion does instead of training (skip_if_unchanged):
    say why, in the log and on the MLflow pipeline run (tag seavl.skipped). Never cached.

    Args:
        reason: why nothing is trained, evaluated or registered (snapshot).
    """
    from components.common.tracking import tag_pipeline_run

    tag_pipeline_run({"seavl.skipped": "true", "seavl.skip_reason": reason})
    print(reason)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def finish_run(status: dsl.PipelineTaskFinalStatus):
    """Exit handler: close the MLflow pipeline run with the pipeline's final state.

    Args:
        status: the pipeline's final state, filled in by KFP.
    """
    from components.common.tracking import finish_pipeline_run

    finish_pipeline_run(status.state)


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def training_pod_gpus(gpus_per_node: int, nodes: int) -> int:
    """GPUs the training step's own pod requests: all of a node's when it trains there, none when it only
    launches a multi-node TrainJob (whose pods request their own).

    Args:
        gpus_per_node: GPUs per node of the training.
        nodes: nodes of the training.

    Returns:
        GPUs for the step's pod.
    """
    if gpus_per_node < 1 or nodes < 1:
        raise ValueError(f"training needs at least one GPU per node and one node, got {gpus_per_node} x {nodes}")
    return gpus_per_node if nodes == 1 else 0
