"""KFP components for the gate, registration and the gated promotion."""
from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model, Output

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE)
def gate(scores: Input[Artifact], text_tolerance: float, vision_tolerance: float, language_tolerance: float,
         reasons: Output[Markdown]) -> bool:
    """Decide whether the candidate may become champion: its SEA-HELM vision and text scores, overall and in each
    language, not below the base's minus the tolerances.

    Args:
        scores: every role's scores side by side (compare).
        text_tolerance: how far (points, 0-100) the candidate's text scores may fall below the base's.
        vision_tolerance: how far (points, 0-100) its vision scores may fall below the base's.
        language_tolerance: how far its vision or text score in any one language may fall below the base's.
        reasons: the verdict and each comparison behind it (Markdown).

    Returns:
        True when the candidate may be promoted.
    """
    from pathlib import Path

    from components.common.scores import Scores
    from components.register.core import decide

    tables = Scores.from_json(Path(scores.path).read_text(encoding="utf-8")).by_role
    decision = decide(tables["candidate"], tables["base"], text_tolerance, vision_tolerance,
                      language_tolerance)
    Path(reasons.path).write_text(decision.markdown(), encoding="utf-8")
    print("\n".join(decision.reasons))
    return decision.promote


@dsl.component(base_image=CPU_IMAGE)
def register(
    candidate: Input[Model],
    scores: Input[Artifact],
    promote: bool,
    gate_reasons: Input[Markdown],
    registered_model_name: str,
    data_fingerprint: str,
    base_model: str,
    base_fingerprint: str,
    git_commit: str,
) -> str:
    """Register the candidate in the MLflow Model Registry with its lineage and the gate's verdict.

    Args:
        candidate: the model to register (train_sft).
        scores: every role's scores side by side (compare); the overall figures become version tags.
        promote: the gate's verdict.
        gate_reasons: the gate's reasons (Markdown).
        registered_model_name: the MLflow Model Registry name.
        data_fingerprint: content fingerprint of the curated captions the model was trained on.
        base_model: the model training started from.
        base_fingerprint: content fingerprint of base_model.
        git_commit: the code version that built the model.

    Returns:
        The model version: a new one, or the version already registered with the same weights (by content
        fingerprint), whichever pipeline run registered it. Either way it gets the `challenger` alias.
    """
    from pathlib import Path

    from components.common import storage
    from components.common.scores import Scores
    from components.common.tracking import Logged, kfp_run_id, tracked_step
    from components.register.core import (
        CHALLENGER,
        WEIGHTS_TAG,
        create_version,
        find_version,
        set_champion,
        version_tags,
    )

    reasons = Path(gate_reasons.path).read_text(encoding="utf-8")
    weights = storage.fingerprint(candidate.path)
    lineage = {"data_fingerprint": data_fingerprint, "base_model": base_model, "base_fingerprint": base_fingerprint,
               "git_commit": git_commit, "pipeline_run_id": kfp_run_id(), WEIGHTS_TAG: weights}
    tables = Scores.from_json(Path(scores.path).read_text(encoding="utf-8")).by_role
    with tracked_step("register") as step:
        known = find_version(registered_model_name, weights)
        step.record(Logged(params={"registered_model_name": registered_model_name},
                           pipeline_metrics={"gate/promote": float(promote)},
                           tags={f"lineage.{k}": v for k, v in lineage.items()},
                           artifacts={} if known else {"model": Path(candidate.path)}))
        version = known or create_version(registered_model_name, step.artifact_uri("model"), step.run_id,
                                          version_tags(tables, promote, reasons, lineage), description=reasons)
        set_champion(registered_model_name, version, alias=CHALLENGER)
        step.record(Logged(tags={"registered.version": version, "registered.reused": str(bool(known)).lower()}))
    if known:
        print(f"version {known} of {registered_model_name} already holds these weights ({weights[:12]}): "
              "not registered again")
    return version


@dsl.component(base_image=CPU_IMAGE)
def promote(registered_model_name: str, version: str):
    """Move the `champion` alias to the registered version (runs only when the gate passed).

    Args:
        registered_model_name: the MLflow Model Registry name.
        version: the version that becomes champion.
    """
    from components.common.tracking import Logged, tracked_step
    from components.register.core import CHAMPION, set_champion

    with tracked_step("promote") as step:
        set_champion(registered_model_name, version)
        step.record(Logged(params={"registered_model_name": registered_model_name, "version": version,
                                   "alias": CHAMPION},
                           tags={"promoted": f"{registered_model_name}@{CHAMPION} -> v{version}"}))
