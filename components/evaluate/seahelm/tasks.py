"""SEA-HELM tasks over the public datasets' own schemas (Parquet files or folders, local or s3://).

Each adapter turns a dataset's rows for one language into items: the dataset's own id, the gold label, the
fields of SEA-HELM's prompt template, and the images. Prompts, answer tags and generation limits come from
prompts.yaml, copied from SEA-HELM's task configurations.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from components.common import records


class EvalDataError(ValueError):
    """Evaluation data that cannot be scored as SEA-HELM scores it: said with what is wrong."""


@lru_cache(maxsize=1)
def prompts() -> dict:
    import yaml

    return yaml.safe_load((Path(__file__).parent / "prompts.yaml").read_text(encoding="utf-8"))


@dataclass
class Item:
    id: str
    label: str
    fields: dict = field(default_factory=dict)
    images: list = field(default_factory=list)   # image bytes, in prompt order


# CVQA: SEA-HELM's language -> the dataset's `Subset` (seahelm_tasks/vision/cvqa/cvqa_dataloader.py)
CVQA_SUBSETS = {"id": "('Indonesian', 'Indonesia')", "ms": "('Malay', 'Malaysia')", "tl": "('Filipino', 'Philippines')",
                "zh": "('Chinese', 'Singapore')", "ta": "('Tamil', 'India')", "jv": "('Javanese', 'Indonesia')",
                "su": "('Sundanese', 'Indonesia')"}


def cvqa(uri: str, lang: str, images: bool = True) -> list[Item]:
    """afaji/cvqa rows of one language (filtered by `Subset`), gold = "ABCD"[Label].

    CVQA's public test split may hide its answers (`Label` -1, scored on a leaderboard); SEA-HELM's loader would
    turn -1 into "D". Such items are refused here rather than scored against a made-up answer."""
    if lang not in CVQA_SUBSETS:
        raise EvalDataError(f"CVQA has no SEA-HELM language {lang!r}; known: {sorted(CVQA_SUBSETS)}")
    columns = ["ID", "Subset", "Question", "Options", "Label"] + (["image"] if images else [])
    items, hidden = [], []
    for row in records.iter_rows(uri, columns=columns):
        if row["Subset"] != CVQA_SUBSETS[lang]:
            continue
        label = row["Label"]
        if label is None or not 0 <= int(label) < 4:
            hidden.append(str(row["ID"]))
            continue
        options = list(row["Options"] or [])
        if len(options) != 4:
            raise EvalDataError(f"CVQA item {row['ID']} has {len(options)} options; SEA-HELM's template takes 4")
        fields = {"question": row["Question"], **{f"option_{k}": o for k, o in zip("abcd", options, strict=True)}}
        image = (row.get("image") or {}).get("bytes") if images else None
        items.append(Item(str(row["ID"]), "ABCD"[int(label)], fields, [image] if image else []))
    if hidden:
        raise EvalDataError(f"{len(hidden)} CVQA item(s) for {lang} have no answer (Label {-1}, e.g. {hidden[:3]}): "
                            "the public test split hides its labels for the leaderboard. Use a split with answers.")
    if not items:
        raise EvalDataError(f"{uri} holds no CVQA items with Subset {CVQA_SUBSETS[lang]} ({lang})")
    return items


MCQ_TASKS = {"cvqa": cvqa}


def read_predictions(uri: str) -> dict[str, str]:
    """{id: response} from JSONL lines {"id": ..., "response": ...} (ids as the dataset's own)."""
    out: dict[str, str] = {}
    for n, row in enumerate(records.iter_rows(uri), start=1):
        if "id" not in row or "response" not in row:
            raise EvalDataError(f"{uri} line {n}: each line needs \"id\" and \"response\", got {sorted(row)}")
        key = str(row["id"])
        if key in out:
            raise EvalDataError(f"{uri}: id {key} appears twice")
        out[key] = row["response"]
    return out


def score_predictions(task: str, lang: str, data: str, predictions: str) -> dict:
    """SEA-HELM's metrics for responses produced elsewhere: {"task", "lang", "n", "metrics"}."""
    from components.evaluate.seahelm.mcq import extract_label, mcq_metrics

    if task not in MCQ_TASKS:
        raise EvalDataError(f"unknown task {task!r}; scorable: {sorted(MCQ_TASKS)}")
    config = prompts()[task]["languages"].get(lang)
    if config is None:
        raise EvalDataError(f"SEA-HELM runs {task} in {sorted(prompts()[task]['languages'])}, not {lang!r}")
    items = MCQ_TASKS[task](data, lang, images=False)
    responses = read_predictions(predictions)
    missing = [i.id for i in items if i.id not in responses]
    if missing:
        raise EvalDataError(f"{len(missing)} of {len(items)} {task}/{lang} items have no prediction, e.g. "
                            f"{missing[:3]}")
    unknown = sorted(set(responses) - {i.id for i in items})
    if unknown:
        raise EvalDataError(f"{len(unknown)} prediction id(s) are not {task}/{lang} items, e.g. {unknown[:3]}")
    labels = sorted({i.label for i in items})
    preds = [extract_label(responses[i.id], config["answer_tag"], labels) for i in items]
    metrics = mcq_metrics([i.label for i in items], preds)
    n = metrics.pop("n")
    return {"task": task, "lang": lang, "n": n, "metrics": metrics}


def dumps(result: dict) -> str:
    return json.dumps(result, ensure_ascii=False)
