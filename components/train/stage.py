"""What the training components run: the stage's settings resolved, its checkpoint folder named, the recipe
launched on the pod's GPUs inside the step's MLflow run, the result recorded. The one place the training step
touches MLflow (rank 0 of a multi-process launch streams its metrics to the same run)."""
from __future__ import annotations

import hashlib
import json
import logging

from components.common import storage

log = logging.getLogger(__name__)


def checkpoint_uri(root: str, stage: str, *inputs: str) -> str:
    """`<root>/<stage>/<hash>`: the same for a retry of the same task, different for anything else."""
    if not root:
        return ""
    key = hashlib.sha256(json.dumps(inputs, sort_keys=True).encode()).hexdigest()[:16]
    return storage.join(root, stage, key)


def _dataset(stage: str, data: str, data_id: str, rows: int | None):
    from components.common.records import mlflow_columns
    from components.common.tracking import DatasetRef

    try:
        columns = mlflow_columns(data)
    except (OSError, ValueError) as err:  # a JSONL input given to `seavl train`: no footer to read
        log.info("no column types for %s: %s", data, err)
        columns = {}
    name = {"cpt": "curated-captions", "sft": "curated-conversations"}.get(stage, f"{stage}-data")
    return DatasetRef(name, data, data_id, rows, columns)


def processes_for(gpus: int) -> int:
    """One training process per GPU the pod can see (at most `gpus`); one on a CPU-only machine."""
    import torch

    return max(1, min(gpus, torch.cuda.device_count())) if torch.cuda.is_available() else 1


def train_stage(stage: str, init_model: str, init_id: str, data: str, data_id: str, replay_data: str,
                replay_id: str, training: dict, checkpoint_root: str, gpus: int, nodes: int, node_selector: dict,
                cache_salt: str, out: str, out_uri: str, kfp_metrics, data_rows: int | None = None
                ) -> tuple[str, int]:
    """Returns (MLflow run id, optimizer steps). One node: trains in this pod. More: a TrainJob (trainjob.py).
    The curated data is logged as the run's dataset input (its metadata: `data_id` as digest, `data_rows`)."""
    from components.common.tracking import tracked_step
    from components.train.launch import launch, spec
    from components.train.loop import TrainConfig

    cfg = TrainConfig(**{**training, "replay_data": replay_data})
    ckpt = checkpoint_uri(checkpoint_root, stage, init_id, data_id, replay_id, cfg.trajectory(), cache_salt)
    with tracked_step(stage) as step:
        monitor = _system_metrics(step.run_id)
        try:
            s = spec(stage, init_model, data, out, cfg.model_dump(), checkpoint_uri=ckpt, data_id=data_id,
                     mlflow_run_id=step.run_id)
            if nodes > 1:
                result = train_on_cluster(stage, s, nodes, gpus, node_selector, out_uri)
            else:
                result = launch(s, processes_for(gpus), log_metrics=step.log_metrics)
        finally:
            if monitor is not None:
                monitor.finish()
        logged = result.logged(stage, cfg, init_model=init_id, data=data_id)
        logged.datasets.append(_dataset(stage, data, data_id, data_rows))
        step.record(logged, kfp_metrics=kfp_metrics)
    if ckpt and storage.exists(ckpt):   # the model is saved: its checkpoints are no longer needed
        fs, path = storage.filesystem(ckpt)
        fs.rm(path, recursive=True)
    return step.run_id, result.steps


def train_on_cluster(stage: str, s: dict, nodes: int, gpus: int, node_selector: dict, out_uri: str):
    """The spec written beside the checkpoints, a TrainJob of `nodes` x `gpus` run on it, its result read back.
    Everything the job's nodes read or write is on S3: the spec, the data, the checkpoints, the model."""
    import os

    from components.train import trainjob
    from components.train.recipes import TrainResult

    ckpt = s["checkpoint_uri"]
    if not storage.is_remote(ckpt):
        raise ValueError(f"multi-node training needs checkpoint_root on S3 (got {ckpt!r}): the job's nodes share "
                         "nothing else with this step")
    replay = s["config"].get("replay_data") or ""
    for name, uri in (("the model output (the pipeline root)", out_uri), ("the training data", s["data"]),
                      ("the initial model", s["init_model"]), *((("the replay data", replay),) if replay else ())):
        if not storage.is_remote(uri) and not uri.startswith("models:/"):
            raise ValueError(f"multi-node training reads and writes through S3, but {name} is {uri!r}")
    job_dir = storage.join(ckpt, "job")
    s = {**s, "out": out_uri, "result": storage.join(job_dir, "result.json")}
    storage.write_bytes(storage.join(job_dir, "spec.json"), json.dumps(s, indent=1).encode())
    namespace = trainjob.current_namespace()
    req = trainjob.JobRequest(name=trainjob.job_name(stage, ckpt.rstrip("/").rsplit("/", 1)[-1]), namespace=namespace,
                              image=trainjob.own_image(namespace), spec_uri=storage.join(job_dir, "spec.json"),
                              nodes=nodes, gpus_per_node=gpus, node_selector=dict(node_selector or {}),
                              env={"KFP_RUN_ID": os.environ.get("KFP_RUN_ID", ""), "HF_HUB_OFFLINE": "1",
                                   "TOKENIZERS_PARALLELISM": "false"})
    trainjob.run(req, finished=lambda: storage.exists(s["result"]))
    return TrainResult(**json.loads(storage.read_text(s["result"])))


def _system_metrics(run_id: str):
    """MLflow's system metrics (CPU, memory, disk, network; GPUs through nvidia-ml-py when installed) for the
    step's run, sampled every 10 s. None where the monitor cannot start (it is a convenience, not a duty)."""
    try:
        from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

        monitor = SystemMetricsMonitor(run_id, sampling_interval=10)
        monitor.start()
        return monitor
    except Exception as err:
        log.warning("system metrics are not logged: %s", err)
        return None
