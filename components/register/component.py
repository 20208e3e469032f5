"""KFP components for the gate, registration and the gated promotion."""
from kfp import dsl
from kfp.dsl import Artifact, Input, Markdown, Model, Output

from components.common.images import CPU_IMAGE


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def gate(scores: Input[Artifact], settings: dict, reasons: Output[Markdown]) -> bool:
    """Decide whether the candidate may become champion: its captioning, VQA and text scores against the base's
    and the current champion's, on the 95% intervals of the differences, overall and per language.

    Args:
        scores: every role's scores side by side, with the gate's groups (compare).
        settings: the gate's thresholds ({} = the release's): every key of GateConfig (components/register/core.py).
        reasons: the verdict and each comparison behind it (Markdown).

    Returns:
        True when the candidate may be promoted.
    """
    from pathlib import Path

    from components.common.scores import Scores
    from components.register.core import GateConfig, decide, gated_groups

    side_by_side = Scores.from_json(Path(scores.path).read_text(encoding="utf-8"))
    decision = decide(side_by_side.groups, GateConfig(**settings),
                      compare_champion="champion" in side_by_side.by_role, expected=gated_groups(side_by_side))
    Path(reasons.path).write_text(decision.markdown(), encoding="utf-8")
    print("\n".join(decision.reasons))
    return decision.promote


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
def register(
    candidate: Input[Model],
    scores: Input[Artifact],
    promote: bool,
    gate_reasons: Input[Markdown],
    registered_model_name: str,
    lineage: dict,
    training_data: dict,
) -> str:
    """Register the candidate in the MLflow Model Registry as an MLflow model, with its lineage, model card,
    metrics and the gate's verdict.

    Args:
        candidate: the model to register (train_sft).
        scores: every role's scores side by side (compare); the headline figures are attached to the model.
        promote: the gate's verdict.
        gate_reasons: the gate's reasons (Markdown).
        registered_model_name: the MLflow Model Registry name.
        lineage: what the version was made from: data_fingerprint, base_model, base_fingerprint, git_commit,
            training_fingerprint, config_hash (the pipeline run id and the image tag are added here).
        training_data: {"<captions | conversations>_<uri | rows | fingerprint>": value}, for the model card.

    Returns:
        The model version: a new one, or the version already registered with the same weights (by content
        fingerprint), whichever pipeline run registered it. Either way it gets the `challenger` alias.
    """
    import tempfile
    from pathlib import Path

    from components.common import storage
    from components.common.images import running_image
    from components.common.scores import Scores
    from components.common.tracking import Logged, kfp_run_id, log_model_version, tracked_step
    from components.common.vlm_pyfunc import checksums
    from components.register.core import (
        CHALLENGER,
        WEIGHTS_TAG,
        find_version,
        flavor_files,
        model_card,
        set_champion,
        version_tags,
    )

    reasons = Path(gate_reasons.path).read_text(encoding="utf-8")
    sums = checksums(Path(candidate.path))   # read once: 54 GB for a 27B model
    weights = storage.fingerprint(candidate.path, hashes=sums)
    lineage = {**{k: str(v) for k, v in lineage.items()}, "pipeline_run_id": kfp_run_id(), "image": running_image(),
               WEIGHTS_TAG: weights}
    side_by_side = Scores.from_json(Path(scores.path).read_text(encoding="utf-8"))
    with tracked_step("register") as step:
        known = find_version(registered_model_name, weights)
        step.record(Logged(params={"registered_model_name": registered_model_name},
                           pipeline_metrics={"gate/promote": float(promote)},
                           tags={f"lineage.{k}": v for k, v in lineage.items()}))
        if known:
            version = known
        else:
            data = {kind: {field: training_data.get(f"{kind}_{field}", "?") for field in ("uri", "rows", "fingerprint")}
                    for kind in ("captions", "conversations")}
            card = model_card(registered_model_name, lineage, data, side_by_side, reasons)
            tags = version_tags(side_by_side.by_role, promote, reasons, lineage)
            files = flavor_files(Path(tempfile.mkdtemp()) / "model", sums, card, tags)
            version = log_model_version(registered_model_name, step.run_id, Path(candidate.path), files, tags,
                                        {f"eval/{k}": v for k, v in side_by_side.by_role["candidate"].items()},
                                        description=reasons, identity=WEIGHTS_TAG)
        set_champion(registered_model_name, version, alias=CHALLENGER)
        step.record(Logged(tags={"registered.version": version, "registered.reused": str(bool(known)).lower()}))
    if known:
        print(f"version {known} of {registered_model_name} already holds these weights ({weights[:12]}): "
              "not registered again")
    return version


@dsl.component(base_image=CPU_IMAGE, install_kfp_package=False)
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
