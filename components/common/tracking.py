"""MLflow tracking: one parent run per pipeline run, one nested run per step.

The tracking URI comes from MLFLOW_TRACKING_URI when set, else a local sqlite store under $SEAVL_HOME
(default ./.seavl). The parent run is the one KFP's MLflow integration names in MLFLOW_RUN_ID when it is
enabled; otherwise the first step to start creates it, tagged with the pipeline run id, and the later
steps find it by that tag.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

PIPELINE_RUN_TAG = "kfp.pipeline_run_id"
STEP_TAG = "kfp.step"


@dataclass(frozen=True)
class Context:
    """Which MLflow experiment and pipeline run a step reports to."""
    experiment: str
    pipeline_run_id: str
    pipeline_run_name: str = ""


def home() -> Path:
    """Where local runs keep their state: $SEAVL_HOME, else ./.seavl."""
    return Path(os.environ.get("SEAVL_HOME") or ".seavl").absolute()


def tracking_uri() -> str:
    uri = os.environ.get("MLFLOW_TRACKING_URI")
    if uri:
        return uri
    home().mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{home() / 'mlflow.db'}"


def configure() -> str:
    """Point mlflow at the tracking server; returns the URI used."""
    import mlflow

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    uri = tracking_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return uri


def ensure_experiment(name: str) -> str:
    """The id of experiment `name`, created if needed (local stores keep artifacts under $SEAVL_HOME)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        # A local store: keep artifacts beside the database, not in ./mlruns of whatever the cwd is.
        location = (Path(uri[len("sqlite:///"):]).parent / "mlartifacts").as_uri()
    return client.create_experiment(name, artifact_location=location)


def parent_run_id(ctx: Context) -> str:
    """The pipeline's parent run: MLFLOW_RUN_ID if KFP injected it, else found or created by tag."""
    from mlflow.tracking import MlflowClient

    injected = os.environ.get("MLFLOW_RUN_ID")
    if injected:
        return injected
    client = MlflowClient()
    exp_id = ensure_experiment(ctx.experiment)
    found = client.search_runs([exp_id], filter_string=f"tags.`{PIPELINE_RUN_TAG}` = '{ctx.pipeline_run_id}'",
                               max_results=1, order_by=["attributes.start_time ASC"])
    if found:
        return found[0].info.run_id
    run = client.create_run(exp_id, run_name=ctx.pipeline_run_name or ctx.pipeline_run_id,
                            tags={PIPELINE_RUN_TAG: ctx.pipeline_run_id})
    return run.info.run_id


@contextmanager
def step_run(step: str, ctx: Context, params: dict | None = None, tags: dict | None = None
             ) -> Iterator["object"]:
    """A nested MLflow run for one pipeline step; a failure marks the step and the pipeline run FAILED."""
    import mlflow

    configure()
    parent = parent_run_id(ctx)
    exp_id = ensure_experiment(ctx.experiment)
    # An injected MLFLOW_RUN_ID would make start_run resume the parent instead of nesting under it.
    injected = os.environ.pop("MLFLOW_RUN_ID", None)
    try:
        with mlflow.start_run(experiment_id=exp_id, run_name=step, parent_run_id=parent, nested=True,
                              tags={STEP_TAG: step, PIPELINE_RUN_TAG: ctx.pipeline_run_id, **(tags or {})}) as run:
            if params:
                mlflow.log_params({k: _param(v) for k, v in params.items()})
            try:
                yield run
            except BaseException:
                mlflow.MlflowClient().set_terminated(parent, status="FAILED")
                raise
    finally:
        if injected is not None:
            os.environ["MLFLOW_RUN_ID"] = injected


def _param(value) -> str:
    text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def log_to_parent(metrics: dict[str, float], run_id: str | None = None) -> None:
    """Copy summary metrics to the parent run, so pipeline runs compare side by side in the MLflow UI."""
    import mlflow

    run = mlflow.active_run()
    parent = run_id or (run.data.tags.get("mlflow.parentRunId") if run else None)
    if parent:
        mlflow.MlflowClient().log_batch(parent, metrics=[mlflow.entities.Metric(k, float(v), _now(), 0)
                                                         for k, v in metrics.items()])


def finish_pipeline_run(ctx: Context, state: str) -> str:
    """Close the parent run with the pipeline's final state (KFP's SUCCEEDED/FAILED/CANCELLED...)."""
    from mlflow.tracking import MlflowClient

    configure()
    parent = parent_run_id(ctx)
    status = {"SUCCEEDED": "FINISHED", "FAILED": "FAILED", "CANCELED": "KILLED", "CANCELLED": "KILLED"}.get(
        state.upper(), "FAILED")
    client = MlflowClient()
    client.set_tag(parent, "kfp.final_state", state)
    client.set_terminated(parent, status=status)
    return status


def _now() -> int:
    import time

    return int(time.time() * 1000)


def alias_source(name: str, alias: str = "champion") -> str | None:
    """Where the weights of registered model `name`@`alias` are, or None when the alias is not set."""
    import mlflow
    from mlflow.tracking import MlflowClient

    configure()
    try:
        return MlflowClient().get_model_version_by_alias(name, alias).source
    except mlflow.exceptions.MlflowException:
        return None


def download_artifacts(source: str, dest: Path) -> Path:
    import mlflow

    dest.mkdir(parents=True, exist_ok=True)
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(dest)))
