"""Running a training stage: in this process, or as one process per GPU on this node (torch.distributed.run,
the launcher `accelerate launch` wraps), each running the same recipe.

    python -m components.train.launch SPEC.json     (what every launched process runs)

A spec is plain data: stage, init_model, data, out, checkpoint_uri, data_id, config, and optionally the MLflow
run to stream metrics to (rank 0 logs them through the project's tracking module) and where rank 0 writes the
result. The same spec is what the multi-node path hands to each node of a Kubeflow Trainer job.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

from components.common import storage
from components.train.recipes import TrainResult


class TrainingFailed(RuntimeError):
    """A launched training process group ended with an error."""


def spec(stage: str, init_model: str, data: str, out: str, config: dict, checkpoint_uri: str = "",
         data_id: str = "", mlflow_run_id: str = "") -> dict:
    return {"stage": stage, "init_model": init_model, "data": data, "out": out, "config": config,
            "checkpoint_uri": checkpoint_uri, "data_id": data_id, "mlflow_run_id": mlflow_run_id}


def run_spec(s: dict, log_metrics=None) -> TrainResult:
    """Run the spec in this process (one of many when launched)."""
    from components.train import recipes
    from components.train.loop import TrainConfig

    cfg = TrainConfig(**s["config"])
    buffer = None
    if log_metrics is None and s.get("mlflow_run_id") and int(os.environ.get("RANK", "0")) == 0:
        from components.common import tracking

        log_metrics = buffer = tracking.metric_logger(s["mlflow_run_id"])
    try:
        result = recipes.run(s["stage"], s["init_model"], s["data"], s["out"], cfg,
                             log_metrics or recipes._no_log, s.get("checkpoint_uri", ""), s.get("data_id", ""))
    finally:
        if buffer is not None:
            buffer.close()
    if s.get("result") and int(os.environ.get("RANK", "0")) == 0:
        storage.write_bytes(s["result"], json.dumps(asdict(result)).encode())
    return result


def launch(s: dict, processes: int = 1, log_metrics=None) -> TrainResult:
    """One process: run here (metrics through `log_metrics`). More: one process per GPU on this node through
    torch.distributed.run; rank 0 streams metrics to the spec's MLflow run and writes the result."""
    if processes <= 1:
        return run_spec(s, log_metrics)
    with tempfile.TemporaryDirectory(prefix="seavl-train-") as tmp:
        spec_path, result_path = Path(tmp) / "spec.json", Path(tmp) / "result.json"
        spec_path.write_text(json.dumps({**s, "result": str(result_path)}))
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
               "-m", "components.train.launch", str(spec_path)]
        code = subprocess.call(cmd)
        if code != 0 or not result_path.exists():
            raise TrainingFailed(f"training ({processes} processes) exited with status {code}; the first error is "
                                 "in the log above")
        return TrainResult(**json.loads(result_path.read_text()))


def _die_with_parent() -> None:
    """torch.distributed.run starts each worker in a session of its own, so a launcher killed with -9 would leave
    its workers training on, writing checkpoints beside the run that is restarted: a worker is killed with its
    parent instead (Linux: PR_SET_PDEATHSIG). In a pod this changes nothing; the container dies whole."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # 1 = PR_SET_PDEATHSIG
    if os.getppid() == 1:    # the parent was gone before the line above
        os._exit(1)


def main() -> None:
    import logging

    _die_with_parent()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank" + os.environ.get("RANK", "0") + " %(message)s")
    run_spec(json.loads(storage.read_text(sys.argv[1])))   # a local file, or s3:// for a TrainJob's nodes


if __name__ == "__main__":
    main()
