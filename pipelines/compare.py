"""Pipeline runs side by side, read back from MLflow (`seavl compare`): the parameters that differ, the
candidate's scores per benchmark and language, and the gate's decision; and a plot of the headline scores."""
from __future__ import annotations

import contextlib
from pathlib import Path

from components.common import tracking
from pipelines.results import RunResult, from_run

# parameters that name the run rather than configure it
NOT_COMPARED = {"git_commit"}


class UnknownRun(LookupError):
    """A run id that names no pipeline run on the tracking server."""


def latest(n: int, experiment: str | None = None) -> list[RunResult]:
    """The `n` most recent pipeline runs (in `experiment`, else in any), newest first."""
    client = tracking.mlflow_client()
    if experiment:
        found = client.get_experiment_by_name(experiment)
        if found is None:
            raise UnknownRun(f"no MLflow experiment named {experiment!r}")
        ids = [found.experiment_id]
    else:
        ids = tracking.experiment_ids(client)
    runs = []
    for start in range(0, len(ids), 100):   # the newest n of each batch of experiments, then of them all
        runs += client.search_runs(ids[start:start + 100], max_results=n, order_by=["attributes.start_time DESC"],
                                   filter_string=f"tags.`{tracking.PIPELINE_RUN_TAG}` LIKE '%'")
    runs = sorted(runs, key=lambda r: r.info.start_time, reverse=True)[:n]
    return [from_run(client, r) for r in runs]


def by_id(run_ids: list[str]) -> list[RunResult]:
    """Pipeline runs named by MLflow run id or by KFP run id, in the order given."""
    from mlflow.exceptions import MlflowException

    client = tracking.mlflow_client()
    out = []
    for rid in run_ids:
        run = None
        with contextlib.suppress(MlflowException):   # not an MLflow run id: perhaps a KFP one
            run = client.get_run(rid)
        if run is None or tracking.PIPELINE_RUN_TAG not in run.data.tags:
            run = tracking.find_pipeline_run(client, rid)
        if run is None:
            raise UnknownRun(f"{rid} is neither the MLflow id nor the KFP id of a pipeline run at "
                             f"{tracking.tracking_uri()}")
        out.append(from_run(client, run))
    return out


def headline_keys(runs: list[RunResult]) -> list[str]:
    """The candidate's score keys to show: overall, SEA-HELM's total and languages, then each benchmark and
    language on its headline metric."""
    from components.evaluate.seahelm import tasks as sh

    keys: set[str] = set()
    for run in runs:
        table = run.scores.get("candidate", {})
        keys |= {k for k in table if k.startswith("overall/") or k.startswith("seahelm/")}
        for key in table:
            parts = key.split("/")
            if len(parts) == 3 and parts[0] in sh.prompts():
                metrics = {k.split("/")[2] for k in table if k.startswith(f"{parts[0]}/{parts[1]}/")}
                if parts[2] == sh.headline(parts[0], metrics):
                    keys.add(key)
    order = {"overall": 0, "seahelm": 1}
    return sorted(keys, key=lambda k: (order.get(k.split("/")[0], 2), k != "seahelm/total", k))


def differing_params(runs: list[RunResult]) -> dict[str, list[str]]:
    """{parameter: value in each run} for the parameters whose values differ between the runs."""
    names = sorted({k for r in runs for k in r.params} - NOT_COMPARED)
    values = {k: [r.params.get(k, "–") for r in runs] for k in names}
    return {k: v for k, v in values.items() if len(set(v)) > 1}


def decision(run: RunResult) -> str:
    if run.skipped:
        return "skipped (unchanged)"
    if run.version in ("", "?"):
        return "not registered"
    return f"v{run.version}, gate {run.gate}"


def plot(runs: list[RunResult], out: Path) -> Path:
    """A grouped bar chart of the candidate's overall, total and per-language SEA-HELM scores in each run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    keys = [k for k in headline_keys(runs) if k.startswith("overall/") or k == "seahelm/total"
            or (k.startswith("seahelm/") and k.endswith("/score"))]
    width = 0.8 / max(len(runs), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(keys) + 2), 4.5))
    x = np.arange(len(keys))
    for i, run in enumerate(runs):
        table = run.scores.get("candidate", {})
        ax.bar(x + i * width - 0.4 + width / 2, [table.get(k, np.nan) for k in keys], width,
               label=f"{run.run_name} ({decision(run)})")
    ax.set_xticks(x, [k.removesuffix("/score").replace("seahelm/", "") for k in keys], rotation=45, ha="right")
    ax.set_ylabel("candidate, SEA-HELM 0-100")
    ax.set_ylim(0, 100)
    ax.legend(fontsize=7, loc="upper right")
    ax.set_title("pipeline runs compared")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out
