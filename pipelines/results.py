"""Read a finished pipeline run back from MLflow: scores per role, registered version, gate verdict."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class RunResult:
    run_name: str
    parent_run_id: str
    scores: dict[str, dict[str, float]]   # role -> {"<task>/<lang>/<metric>": value}
    model_name: str
    version: str
    gate: str
    champion: str

    @property
    def roles(self) -> list[str]:
        order = ["base", "cpt", "candidate", "champion"]
        return [r for r in order if r in self.scores]

    @property
    def keys(self) -> list[str]:
        keys = {k for table in self.scores.values() for k in table}
        return sorted(keys, key=lambda k: (not k.startswith("summary/"), k))


def latest(experiment: str, since_ms: int = 0) -> RunResult:
    from mlflow.tracking import MlflowClient

    from components.common import tracking

    tracking.configure()
    client = MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        raise RuntimeError(f"no MLflow experiment {experiment!r} at {tracking.tracking_uri()}")
    parents = client.search_runs([exp.experiment_id], filter_string=f"attributes.start_time >= {since_ms}",
                                 order_by=["attributes.start_time DESC"], max_results=50)
    parents = [r for r in parents if tracking.PIPELINE_RUN_TAG in r.data.tags and "mlflow.parentRunId" not in r.data.tags]
    if not parents:
        raise RuntimeError("no pipeline run found in MLflow")
    parent = parents[0]
    children = client.search_runs([exp.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
    by_step = {c.data.tags.get(tracking.STEP_TAG): c for c in children}
    scores: dict[str, dict[str, float]] = {}
    for key, value in parent.data.metrics.items():
        if key.startswith("eval/"):
            _, role, rest = key.split("/", 2)
            scores.setdefault(role, {})[rest] = value
    reg = by_step.get("register")
    name = reg.data.params.get("registered_model_name", "") if reg else ""
    version = reg.data.tags.get("registered.version", "?") if reg else "?"
    gate = "passed" if reg and reg.data.metrics.get("gate/promote") == 1.0 else "not passed"
    champion = "none"
    if name:
        try:
            champion = client.get_model_version_by_alias(name, "champion").version
        except Exception:  # no alias yet
            champion = "none"
    return RunResult(parent.info.run_name, parent.info.run_id, scores, name, version, gate, champion)
