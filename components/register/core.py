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
           vision_tolerance: float = 0.0, language_tolerance: float = 5.0) -> GateDecision:
    """Promote only if, on SEA-HELM's 0-100 scale, the candidate's vision score is not below the base's minus
    `vision_tolerance` and its text score (the mean of SEA-HELM's other competencies) not below the base's minus
    `text_tolerance` (the new model must not lose what its base had), both overall (`overall/vision`,
    `overall/text`), and in no language (`seahelm/<lang>/vision`, `.../text`) below the base's minus
    `language_tolerance`: one language is scored on fewer items, so its figure moves more by chance."""
    reasons = []
    ok = True
    for side, tol in (("vision", vision_tolerance), ("text", text_tolerance)):
        key = f"overall/{side}"
        if key not in candidate or key not in base:
            ok = False
            reasons.append(f"{side}: no score to compare ({key} missing)")
            continue
        keys = [key] + sorted(k for k in candidate if k.startswith("seahelm/") and k.endswith(f"/{side}")
                              and k in base)
        for k in keys:
            c, b, limit = candidate[k], base[k], tol if k == key else language_tolerance
            passed = c >= b - limit
            ok &= passed
            if k == key or not passed:
                where = "overall" if k == key else k.split("/")[1]
                reasons.append(f"{side} ({where}): candidate {c:.2f} {'>=' if passed else '<'} base {b:.2f} - "
                               f"tolerance {limit:g}")
    return GateDecision(promote=ok, reasons=reasons)


def version_tags(scores: dict[str, dict[str, float]], promote: bool, reasons: str,
                 lineage: dict[str, str]) -> dict[str, str]:
    """Tags of a registered version: its lineage, the overall scores of candidate and base, the gate's verdict."""
    overall = {f"{role}.{key.split('/')[-1]}": f"{value:.4f}" for role in ("candidate", "base")
               for key, value in scores.get(role, {}).items() if key.startswith("overall/") or key == "seahelm/total"}
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
