"""Read a pipeline run back from MLflow: scores per role, registered version, gate verdict, reused steps."""
from __future__ import annotations

from dataclasses import dataclass, field

from components.common.scores import ROLES


@dataclass
class RunResult:
    run_name: str
    parent_run_id: str
    scores: dict[str, dict[str, float]]   # role -> {"<task>/<lang>/<metric>": value}
    model_name: str
    version: str
    gate: str
    champion: str
    reused: dict[str, str] = field(default_factory=dict)  # step -> the earlier step run KFP's cache served
    skipped: str = ""   # why nothing was trained (skip_if_unchanged), '' when the run trained
    params: dict[str, str] = field(default_factory=dict)  # the pipeline run's parameters
    started: int = 0    # start time, ms since the epoch

    @property
    def roles(self) -> list[str]:
        return [r for r in ROLES if r in self.scores] + sorted(r for r in self.scores if r not in ROLES)

    @property
    def keys(self) -> list[str]:
        """The headline figures: overall vision and text, SEA-HELM's total and each language's score (every
        task and metric is in the compare step's report)."""
        keys = {k for table in self.scores.values() for k in table
                if k.startswith("overall/") or k == "seahelm/total" or (k.startswith("seahelm/")
                                                                         and k.endswith("/score"))}
        return sorted(keys, key=lambda k: (not k.startswith("overall/"), k != "seahelm/total", k))


def for_run(kfp_run_id: str) -> RunResult:
    """The result of the pipeline run tagged with `kfp_run_id`."""
    from components.common import tracking

    client = tracking.mlflow_client()
    parent = tracking.find_pipeline_run(client, kfp_run_id)
    if parent is None:
        raise RuntimeError(f"no MLflow pipeline run for KFP run {kfp_run_id} at {tracking.tracking_uri()}")
    return from_run(client, parent)


def from_run(client, parent) -> RunResult:
    """The result of the MLflow pipeline run `parent`."""
    from components.common import tracking

    children = client.search_runs([parent.info.experiment_id],
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
    champion = (tracking.champion(name)[0] or "none") if name else "none"
    reused = {k[len(tracking.REUSED_TAG):]: v for k, v in parent.data.tags.items()
              if k.startswith(tracking.REUSED_TAG)}
    skipped = parent.data.tags.get("seavl.skip_reason", "") if parent.data.tags.get("seavl.skipped") == "true" else ""
    if skipped:
        name = parent.data.params.get("registered_model_name", "")
        champion = (tracking.champion(name)[0] or "none") if name else "none"
    return RunResult(parent.info.run_name, parent.info.run_id, scores, name, version, gate, champion, reused,
                     skipped, dict(parent.data.params), parent.info.start_time)
