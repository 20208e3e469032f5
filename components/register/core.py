"""register: the promotion gate, and the candidate's entry in the MLflow Model Registry.

The gate is a pure function of the compared scores, decided once (the `gate` step); registration records its
verdict and reasons. The weights are uploaded as artifacts of the register step's run (by the tracking
wrapper), so they live in the tracking server's artifact store (S3 on a cluster) and the version points there.
Registry writes go through the MLflow client.
"""
from __future__ import annotations

from dataclasses import dataclass, field

CHAMPION = "champion"


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        verdict = "**promote**" if self.promote else "**do not promote**"
        return f"Gate: {verdict}\n\n" + "".join(f"- {r}\n" for r in self.reasons)


def decide(candidate: dict[str, float], base: dict[str, float], text_tolerance: float,
           caption_tolerance: float = 0.0) -> GateDecision:
    """Promote only if captioning is not worse than base (minus `caption_tolerance`) and the text score is
    not worse than base minus `text_tolerance` (the new model must not lose the base model's text ability).
    Inputs are score tables with `overall/captioning` and `overall/text`."""
    reasons = []
    ok = True
    for key, what, tol in (("overall/captioning", "captioning", caption_tolerance),
                           ("overall/text", "text", text_tolerance)):
        if key not in candidate or key not in base:
            ok = False
            reasons.append(f"{what}: no score to compare ({key} missing)")
            continue
        c, b = candidate[key], base[key]
        passed = c >= b - tol
        ok &= passed
        reasons.append(f"{what}: candidate {c:.4f} {'>=' if passed else '<'} base {b:.4f} - tolerance {tol:g}")
    return GateDecision(promote=ok, reasons=reasons)


def version_tags(scores: dict[str, dict[str, float]], promote: bool, reasons: str,
                 lineage: dict[str, str]) -> dict[str, str]:
    """Tags of a registered version: its lineage, the overall scores of candidate and base, the gate's verdict."""
    overall = {f"{role}.{key.split('/')[-1]}": f"{value:.4f}" for role in ("candidate", "base")
               for key, value in scores.get(role, {}).items() if key.startswith("overall/")}
    return {**lineage, **overall, "gate.promote": str(promote).lower(), "gate.reasons": reasons}


def create_version(name: str, source: str, run_id: str, tags: dict[str, str], description: str = "") -> str:
    """Register `source` (the uploaded weights) as a new version of `name`, created if needed; returns it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    try:
        client.get_registered_model(name)
    except mlflow.exceptions.MlflowException:
        client.create_registered_model(name, description="Gemma-3 SEA vision-language models")
    return str(client.create_model_version(name, source=source, run_id=run_id, tags=tags,
                                           description=description).version)


def set_champion(name: str, version: str, alias: str = CHAMPION) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, str(version))
