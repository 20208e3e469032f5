"""KFP components that belong to no step: the pipeline run's own bookkeeping in MLflow."""
from typing import NamedTuple

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
def gpu_pod(gpus_per_node: int, nodes: int, cpu: str, memory: str, gpu_resource: str, tolerations: list,
            node_selector: dict) -> NamedTuple("Outputs", gpus=str, cpu=str, memory=str, gpu_resource=str,
                                               tolerations=list, node_selector=dict):
    """The Kubernetes settings of a GPU step's own pod, from the run's parameters, as task outputs: KFP hands a
    GPU count to the pod only as text, and a step inside a ParallelFor receives run parameters only through a
    task input. A pod that launches a multi-node TrainJob (nodes > 1) asks for no GPU and little else: the job's
    pods hold the GPUs.

    Args:
        gpus_per_node: GPUs per node of the step.
        nodes: nodes of the step (more than one: a TrainJob runs it).
        cpu: CPU cores per pod (requests = limits).
        memory: memory per pod (requests = limits).
        gpu_resource: the Kubernetes resource of a GPU, e.g. nvidia.com/gpu.
        tolerations: the GPU nodes' tolerations.
        node_selector: the GPU nodes' labels to select.

    Returns:
        gpus: GPUs the pod requests.
        cpu: CPU cores it requests.
        memory: memory it requests.
        gpu_resource: the resource its GPUs are requested as.
        tolerations: its tolerations.
        node_selector: its node selector.
    """
    if gpus_per_node < 1 or nodes < 1:
        raise ValueError(f"a GPU step needs at least one GPU per node and one node, got {gpus_per_node} x {nodes}")
    if nodes > 1:
        return ("0", "2", "8Gi", gpu_resource, [], {})
    return (str(gpus_per_node), cpu, memory, gpu_resource, tolerations, node_selector)
