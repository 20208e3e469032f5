"""register: the promotion gate, and the candidate's entry in the MLflow Model Registry.

The gate is a pure function of the compared scores and its configuration, decided once (the `gate` step);
registration records its verdict and reasons. A version is an MLflow model (pyfunc, loaded by
components/common/vlm_pyfunc.py) logged by the register step's run: its `weights/` are the save_pretrained
folder, uploaded once to the tracking server's artifact store (S3 on a cluster), with checksums, a model card and
the evaluation's headline metrics; the version is created only after the upload is complete. Registry writes go
through the MLflow client.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

CHAMPION = "champion"
CHALLENGER = "challenger"          # every registered candidate, passed the gate or not
WEIGHTS_TAG = "weights_fingerprint"  # content fingerprint of a version's weights: one version per set of weights


class Thresholds(BaseModel):
    """What the candidate must show against one model, in SEA-HELM points (0-100), on the 95% paired bootstrap
    interval of its difference (candidate minus that model; components/evaluate/core.py gate_groups)."""
    model_config = ConfigDict(extra="forbid")

    captioning_gain: float = Field(0.0, description="overall captioning (XM3600): the interval's lower bound "
                                   "must be at least this")
    text_regression: float = Field(1.0, ge=0, description="overall text (SEA-HELM's other competencies): the "
                                   "lower bound must be at least minus this")
    vqa_regression: float = Field(3.0, ge=0, description="overall multiple-choice VQA (CVQA, MARVL, "
                                  "WorldCuisines): the lower bound must be at least minus this")
    language_floor: float = Field(5.0, ge=0, description="each language's captioning, VQA and text: fails when "
                                  "the whole interval lies below minus this (a collapse beyond doubt)")


class GateConfig(BaseModel):
    """The promotion gate (pipeline parameter `gate`). The defaults are the release's thresholds, against the base
    and against the current champion alike: captioning must be shown to be at least as good (the interval's lower
    bound at least 0, so a champion gives way only to a candidate whose captioning is measurably not worse); text
    must be shown to lose at most 1 point and multiple-choice VQA at most 3; and no language may be worse by more
    than 5 points in any group beyond doubt (its whole interval below -5)."""
    model_config = ConfigDict(extra="forbid")

    base: Thresholds = Thresholds()
    champion: Thresholds = Thresholds()


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        verdict = "**promote**" if self.promote else "**do not promote**"
        return f"Gate: {verdict}\n\n" + "".join(f"- {r}\n" for r in self.reasons)


def gated_groups(scores) -> set[str]:
    """The gate's groups (captioning, vqa, text) the candidate was scored on in a language SEA-HELM aggregates."""
    from components.evaluate.seahelm import tasks as sh
    from components.evaluate.seahelm.bootstrap import group_of

    out = set()
    for key in scores.by_role.get("candidate", {}):
        task, _, rest = key.partition("/")
        if task in sh.prompts() and rest.split("/")[0] in sh.prompts()[task]["languages"]:
            out.add(group_of(task, sh.prompts()))
    return out


def _interval(d: dict) -> str:
    return f"{d['mean']:+.2f} [{d['low']:+.2f}, {d['high']:+.2f}]"


def decide(groups: dict[str, dict], config: GateConfig, compare_champion: bool = True,
           expected: set[str] | None = None) -> GateDecision:
    """The gate's verdict on the candidate's differences (`groups`: "<role>/<group>/<lang | overall>" ->
    {"mean", "low", "high", "n"}, 95% intervals) against the base and, when there is one, the champion: each
    overall group's lower bound against its threshold (the aggregates pool many items: the candidate must show it
    is within them), and every language's groups against the floor (one language is scored on fewer items: it
    fails only when its whole interval lies below the floor). Nothing to compare with the base never promotes, and
    neither does a group the candidate was scored on (`expected`: captioning, vqa, text) that has no paired
    difference (replies missing, or ids that do not match)."""
    checks = {"captioning": "captioning_gain", "vqa": "vqa_regression", "text": "text_regression"}
    reasons, ok = [], True
    roles = ["base"] + (["champion"] if compare_champion else [])
    if not compare_champion:
        reasons.append("no champion yet: compared with the base only")
    for role in roles:
        mine = {k[len(role) + 1:]: v for k, v in groups.items() if k.startswith(f"{role}/")}
        if not mine:
            ok = False
            reasons.append(f"vs {role}: no scores to compare")
            continue
        limits = getattr(config, role)
        for group, name in checks.items():
            d = mine.get(f"{group}/overall")
            if d is None:
                missing = group in (expected or set())
                ok &= not missing
                reasons.append(f"vs {role}, {group}: " + ("scored, but no item pairs with the other model's: "
                                                          "cannot be judged" if missing else "not in the suite"))
                continue
            value = getattr(limits, name)
            required = value if name == "captioning_gain" else -value
            passed = d["low"] >= required
            ok &= passed
            reasons.append(f"vs {role}, {group} (overall): {_interval(d)}, lower bound "
                           f"{'>=' if passed else '<'} {required:+.2f} ({name} {value:g})")
        for key, d in sorted(mine.items()):
            group, lang = key.split("/")
            if lang != "overall" and d["high"] < -limits.language_floor:
                ok = False
                reasons.append(f"vs {role}, {group} ({lang}): {_interval(d)}, the whole interval below "
                               f"-{limits.language_floor:g} (language_floor)")
    return GateDecision(promote=ok, reasons=reasons)


def model_card(name: str, lineage: dict[str, str], data: dict[str, dict], scores, decision: str) -> str:
    """The model card stored with a version (README.md): what it was trained on, how it scored beside the base,
    the champion and the reference models, where the figures depart from SEA-HELM's, and its limits."""
    roles = scores.roles
    keys = ["overall/vision", "overall/text", "seahelm/total"] + sorted(
        {k for t in scores.by_role.values() for k in t if k.startswith("seahelm/") and k.endswith("/score")})
    keys = [k for k in keys if any(k in t for t in scores.by_role.values())]
    rows = "".join(f"| {k} | " + " | ".join(f"{scores.by_role[r][k]:.2f}" if k in scores.by_role[r] else "–"
                                             for r in roles) + " |\n" for k in keys)
    def count(value) -> str:
        try:
            return f"{int(float(value)):,}"
        except (TypeError, ValueError):
            return str(value)

    datasets = "".join(f"- {kind}: {count(d.get('rows', '?'))} rows after curation, from `{d.get('uri', '?')}` "
                       f"(content fingerprint `{str(d.get('fingerprint', ''))[:16]}`)\n" for kind, d in data.items())
    lineage_lines = "".join(f"- {k}: `{v}`\n" for k, v in sorted(lineage.items()))
    notes = "".join(f"- {n}\n" for n in scores.notes)
    return f"""# {name}

A Gemma-3 vision-language model for Southeast Asia: continued pre-training on image-caption pairs, then
supervised fine-tuning on instruction conversations, starting from `{lineage.get('base_model', '?')}`.

## Training data
{datasets}
## Evaluation (SEA-HELM, 0-100)
| score | {' | '.join(roles)} |
|---|{'---|' * len(roles)}
{rows}
{decision}

Where these figures depart from SEA-HELM's:
{notes}
## Limitations
- Scores are on this run's evaluation suite; compare with published SEA-HELM figures task by task, where the
  task, metric and language match.
- Languages and tasks outside the suite were not measured; a model that improves captioning can lose ground on
  others, which is why the gate weighs text and VQA per language.
- Greedy decoding; the model can state wrong facts about an image with confidence. Do not use it where a
  wrong answer causes harm without a person checking it.

## Lineage
{lineage_lines}
Load: `mlflow.pyfunc.load_model("models:/{name}/<version>")` (rows with `prompt` and `image` bytes or
`image_uri`), or `seavl pull models:/{name}/<version> --out DIR` for the save_pretrained folder.
"""


def version_tags(scores: dict[str, dict[str, float]], promote: bool, reasons: str,
                 lineage: dict[str, str]) -> dict[str, str]:
    """Tags of a registered version: its lineage, the overall scores of candidate and base, the gate's verdict."""
    overall = {f"{role}.{key.split('/')[-1]}": f"{value:.4f}" for role in ("candidate", "base")
               for key, value in scores.get(role, {}).items() if key.startswith("overall/") or key == "seahelm/total"}
    return {**lineage, **overall, "gate.promote": str(promote).lower(),
            "gate.reasons": reasons[:4900]}


PIP_REQUIREMENTS = ("torch", "transformers", "accelerate", "pillow", "pandas", "fsspec", "s3fs")


def _requirements() -> list[str]:
    """The loader's requirements, pinned to the versions this step runs (a CUDA or CPU build suffix dropped)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for name in PIP_REQUIREMENTS:
        try:
            out.append(f"{name}=={version(name).split('+')[0]}")
        except PackageNotFoundError:
            out.append(name)
    return out


def signature():
    """The request and response of a version (components/common/vlm_pyfunc.py)."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, ParamSchema, ParamSpec, Schema

    from components.common.vlm_pyfunc import MAX_NEW_TOKENS

    return ModelSignature(
        inputs=Schema([ColSpec("string", "prompt"), ColSpec("binary", "image", required=False),
                       ColSpec("string", "image_uri", required=False)]),
        outputs=Schema([ColSpec("string")]),
        params=ParamSchema([ParamSpec("max_new_tokens", "long", MAX_NEW_TOKENS)]))


def flavor_files(out: Path, checksums: dict[str, str], card: str, metadata: dict[str, str]) -> Path:
    """The MLflow model files of a version, everything but the weights: MLmodel (pyfunc, loaded by
    components/common/vlm_pyfunc.py, copied in as code), requirements, the signature, `checksums.json` (sha256 of
    every file of the weights folder: vlm_pyfunc.checksums) and the model card (`README.md`)."""
    import json

    import mlflow

    from components.common import vlm_pyfunc

    mlflow.pyfunc.save_model(str(out), loader_module="vlm_pyfunc", code_paths=[vlm_pyfunc.__file__],
                             pip_requirements=_requirements(), signature=signature(), metadata=metadata)
    (out / vlm_pyfunc.CHECKSUMS).write_text(json.dumps(checksums, indent=1), encoding="utf-8")
    (out / "README.md").write_text(card, encoding="utf-8")
    return out


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
    as the `save_pretrained` folder it was registered from, its files checked against the version's checksums,
    with its model card as README.md; returns (the version, the folder). PullError says what is wrong."""
    import shutil
    import tempfile

    import mlflow
    from mlflow.exceptions import MlflowException

    from components.common import storage, tracking
    from components.common.models import check_weights
    from components.common.vlm_pyfunc import ChecksumMismatch, weights_folder

    if not uri.startswith("models:/") or not (("@" in uri) or uri.rstrip("/").count("/") >= 2):
        raise PullError(f"{uri!r} is not a registered version: give models:/NAME@ALIAS or models:/NAME/VERSION")
    out = Path(out).absolute()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise PullError(f"{out} exists and is not an empty folder: choose a new one")
    tracking.configure()
    try:
        found = storage.registered_version(uri)
    except MlflowException as err:
        raise PullError(f"{uri}: no such registered version ({err.message})") from None
    name, version = found.name, found.version
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}-"))  # same disk: moved, not copied
    try:
        mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(staging))
        try:
            folder = weights_folder(staging)
        except ChecksumMismatch as err:
            raise PullError(f"version {version} of {name}: {err}") from None
        if not (folder / "config.json").exists():
            raise PullError(f"version {version} of {name} holds no save_pretrained folder (no config.json)")
        check_weights(folder)
        if folder != staging and (staging / "README.md").exists() and not (folder / "README.md").exists():
            (staging / "README.md").rename(folder / "README.md")
        if out.exists():
            out.rmdir()
        folder.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(version), out
