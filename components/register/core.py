"""register: put the candidate in the MLflow Model Registry with its lineage, and decide on promotion.

The gate is a pure function of the evaluation summary; registration and the alias move are the only
writes. Weights are uploaded as artifacts of the step's MLflow run, so they live in the tracking server's
artifact store (S3 on a cluster) and the model version points at them.
"""
from __future__ import annotations

import json

from dataclasses import dataclass, field
from pathlib import Path

CHAMPION = "champion"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)


def decide(candidate: dict[str, float], base: dict[str, float], text_tolerance: float,
           caption_tolerance: float = 0.0) -> GateDecision:
    """Promote only if captioning is not worse than base (minus `caption_tolerance`) and the text score is
    not worse than base minus `text_tolerance` (the new model must not lose the base model's text ability).
    Inputs are `summarize()` tables: keys `summary/captioning` and `summary/text`."""
    reasons = []
    ok = True
    for key, tol, what in (("summary/captioning", caption_tolerance, "captioning"),
                           ("summary/text", text_tolerance, "text")):
        if key not in candidate or key not in base:
            ok = False
            reasons.append(f"{what}: no score to compare ({key} missing)")
            continue
        c, b = candidate[key], base[key]
        passed = c >= b - tol
        ok &= passed
        reasons.append(f"{what}: candidate {c:.4f} {'>=' if passed else '<'} base {b:.4f} - tolerance {tol:g}")
    return GateDecision(promote=ok, reasons=reasons)


def register(model_dir: Path, name: str, tags: dict[str, str], description: str = "") -> str:
    """Upload `model_dir` as artifacts of the active MLflow run and register it; returns the version."""
    import mlflow
    from mlflow.tracking import MlflowClient

    run = mlflow.active_run()
    if run is None:
        raise RuntimeError("register() needs an active MLflow run to hold the weights")
    mlflow.log_artifacts(str(model_dir), artifact_path="model")
    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="Gemma-3 SEA vision-language models")
    source = f"{run.info.artifact_uri.rstrip('/')}/model"
    version = client.create_model_version(name, source=source, run_id=run.info.run_id, tags=tags,
                                          description=description)
    return str(version.version)


def promote(name: str, version: str, alias: str = CHAMPION) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, str(version))


def gate(scores_json: str, text_tolerance: float, caption_tolerance: float = 0.0) -> GateDecision:
    """The gate on the evaluate step's scores.json ({"scores": {role: {metric: value}}})."""
    scores = json.loads(scores_json)["scores"]
    return decide(scores["candidate"], scores["base"], text_tolerance, caption_tolerance)


def run(ctx, model_dir: Path, scores_json: str, name: str, lineage: dict[str, str], text_tolerance: float,
        caption_tolerance: float, gate_verdict: bool) -> str:
    """The step: register the candidate with lineage tags and the gate's verdict and reasons; returns the
    version. `gate_verdict` is what the gate step decided; it must agree with these scores."""
    import mlflow

    from components.common import tracking

    scores = json.loads(scores_json)["scores"]
    decision = decide(scores["candidate"], scores["base"], text_tolerance, caption_tolerance)
    if decision.promote != gate_verdict:
        raise RuntimeError(f"gate verdict {gate_verdict} disagrees with the scores ({decision.reasons})")
    with tracking.step_run("register", ctx, params={"registered_model_name": name},
                           tags={f"lineage.{k}": v for k, v in lineage.items()}):
        summary = {f"{role}.{k.split('/')[-1]}": f"{v:.4f}" for role in ("candidate", "base")
                   for k, v in scores[role].items() if k.startswith("summary/")}
        tags = {**lineage, **summary, "gate.promote": str(decision.promote).lower(),
                "gate.reasons": "; ".join(decision.reasons)}
        version = register(Path(model_dir), name, tags, description="; ".join(decision.reasons))
        mlflow.log_metric("gate/promote", float(decision.promote))
        mlflow.set_tag("registered.version", version)
    return version


def run_promote(ctx, name: str, version: str, alias: str = CHAMPION) -> None:
    """The step behind the gate: move `alias` to `version`."""
    import mlflow

    from components.common import tracking

    with tracking.step_run("promote", ctx, params={"registered_model_name": name, "version": version,
                                                    "alias": alias}):
        promote(name, version, alias)
        mlflow.set_tag("promoted", f"{name}@{alias} -> v{version}")
