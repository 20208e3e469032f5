"""register: the promotion gate, and the candidate's entry in the MLflow Model Registry.

The gate is a pure function of the compared scores, decided once (the `gate` step); registration records its
verdict and reasons. The weights are uploaded as artifacts of the register step's run (by the tracking
wrapper), so they live in the tracking server's artifact store (S3 on a cluster) and the version points there.
Registry writes go through the MLflow client.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

CHAMPION = "champion"
CHALLENGER = "challenger"          # every registered candidate, passed the gate or not
WEIGHTS_TAG = "weights_fingerprint"  # content fingerprint of a version's weights: one version per set of weights


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


def find_version(name: str, weights_fingerprint: str) -> str | None:
    """The version of `name` already registered with these weights (by content fingerprint), if any."""
    from mlflow.tracking import MlflowClient

    found = MlflowClient().search_model_versions(f"name = '{name}' and tags.{WEIGHTS_TAG} = '{weights_fingerprint}'")
    return str(min(int(v.version) for v in found)) if found else None


def set_champion(name: str, version: str, alias: str = CHAMPION) -> None:
    from mlflow.tracking import MlflowClient

    MlflowClient().set_registered_model_alias(name, alias, str(version))


class PullError(ValueError):
    """A registered version that cannot be fetched as asked: the URI, the name, alias or version, or the folder."""


def pull(uri: str, out: Path) -> tuple[str, Path]:
    """Download the registered version `models:/NAME@ALIAS` or `models:/NAME/VERSION` into `out` (absent or empty)
    as the `save_pretrained` folder it was registered from; returns (the version, the folder). The folder must
    hold a config.json and safetensors weights, or PullError says what is wrong."""
    import mlflow
    from mlflow.exceptions import MlflowException

    from components.common import tracking
    from components.common.models import check_weights

    if not uri.startswith("models:/") or not (("@" in uri) or uri.rstrip("/").count("/") >= 2):
        raise PullError(f"{uri!r} is not a registered version: give models:/NAME@ALIAS or models:/NAME/VERSION")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PullError(f"{out} exists and is not an empty folder: choose a new one")
    client = tracking.mlflow_client()
    ref = uri[len("models:/"):].strip("/")
    try:
        if "@" in ref:
            name, alias = ref.split("@", 1)
            version = client.get_model_version_by_alias(name, alias).version
        else:
            name, version = ref.rsplit("/", 1)
            version = client.get_model_version(name, version).version
    except MlflowException as err:
        raise PullError(f"{uri}: no such registered version ({err.message})") from None
    out.mkdir(parents=True, exist_ok=True)
    mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(out))
    if not (out / "config.json").exists():
        raise PullError(f"version {version} of {name} holds no save_pretrained folder (no config.json in {out})")
    check_weights(out)
    return str(version), out
