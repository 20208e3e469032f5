"""SEA-HELM tasks over the public datasets' own schemas (Parquet files or folders, local or s3://).

Each adapter turns a dataset's rows for one language into items: the dataset's own id, the gold label, the
fields of SEA-HELM's prompt template, and the images. Prompts, answer tags and generation limits come from
prompts.yaml, copied from SEA-HELM's task configurations.
"""
from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from components.common import records, storage


class EvalDataError(ValueError):
    """Evaluation data that cannot be scored as SEA-HELM scores it: said with what is wrong."""


@lru_cache(maxsize=1)
def prompts() -> dict:
    import yaml

    return yaml.safe_load((Path(__file__).parent / "prompts.yaml").read_text(encoding="utf-8"))


# XM3600's 36 languages (SEA-HELM calls the split `fil` tl). SEA-HELM prompts six of them in their own language;
# the others are prompted with its English prompt and tag (the report says so).
XM3600_LANGUAGES = ("ar", "bn", "cs", "da", "de", "el", "en", "es", "fa", "fi", "tl", "fr", "he", "hi", "hr", "hu",
                    "id", "it", "ja", "ko", "mi", "nl", "no", "pl", "pt", "quz", "ro", "ru", "sv", "sw", "te", "th",
                    "tr", "uk", "vi", "zh")


def runs_in(task: str) -> list[str]:
    """The languages `task` can run in here: SEA-HELM's, and for XM3600 any of its 36."""
    return list(XM3600_LANGUAGES) if task == "xm3600" else list(prompts()[task]["languages"])


def config(task: str, lang: str) -> dict:
    """SEA-HELM's configuration of `task` in `lang` (preamble, template, answer tag, token limit); XM3600 in a
    language SEA-HELM does not run takes its English one."""
    if task not in prompts():
        raise EvalDataError(f"unknown SEA-HELM task {task!r}; known: {sorted(prompts())}")
    languages = prompts()[task]["languages"]
    if lang in languages:
        return languages[lang]
    if task == "xm3600" and lang in XM3600_LANGUAGES:
        return languages["en"]
    raise EvalDataError(f"SEA-HELM runs {task} in {sorted(runs_in(task))}, not {lang!r}")


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
        if images and not image:
            raise EvalDataError(f"CVQA item {row['ID']} has no image bytes")
        items.append(Item(str(row["ID"]), "ABCD"[int(label)], fields, [image] if image else []))
    if hidden:
        raise EvalDataError(f"{len(hidden)} CVQA item(s) for {lang} have no answer (Label {-1}, e.g. {hidden[:3]}): "
                            "the public test split hides its labels for the leaderboard. Use a split with answers.")
    if not items:
        raise EvalDataError(f"{uri} holds no CVQA items with Subset {CVQA_SUBSETS[lang]} ({lang})")
    return items


# MARVL: the true/false words SEA-HELM's prompt asks for, per language (seahelm_tasks/vision/marvl)
MARVL_LABELS = {"id": {True: "Benar", False: "Salah"}, "ta": {True: "உண்மை", False: "பொய்"},
                "zh": {True: "正确", False: "错误"}}


def marvl(uri: str, lang: str, images: bool = True) -> list[Item]:
    """floschne/marvl rows of the language's split (a Parquet file or folder of that split), two images (left
    first), gold = the language's word for the boolean `label`; Chinese hypotheses converted from Traditional
    to Simplified characters (OpenCC t2s), as SEA-HELM does."""
    if lang not in MARVL_LABELS:
        raise EvalDataError(f"MARVL has no SEA-HELM language {lang!r}; known: {sorted(MARVL_LABELS)}")
    convert = None
    if lang == "zh":
        import opencc

        convert = opencc.OpenCC("t2s.json").convert
    columns = ["id", "hypothesis", "label"] + (["left_img", "right_img"] if images else [])
    items = []
    for row in records.iter_rows(uri, columns=columns):
        if row["label"] is None:
            raise EvalDataError(f"MARVL item {row['id']} has no label")
        hypothesis = convert(row["hypothesis"]) if convert else row["hypothesis"]
        pictures = [(row.get(k) or {}).get("bytes") for k in ("left_img", "right_img")] if images else []
        if images and not all(pictures):
            raise EvalDataError(f"MARVL item {row['id']} lacks one of its two images")
        items.append(Item(str(row["id"]), MARVL_LABELS[lang][bool(row["label"])], {"hypothesis": hypothesis},
                          [p for p in pictures if p]))
    if not items:
        raise EvalDataError(f"{uri} holds no MARVL items")
    return items


# WorldCuisines: SEA-HELM's language -> the dataset's `lang`, and the prompt types of each task
WORLD_CUISINES_LANGS = {"en": "en", "id": "id_formal", "th": "th", "tl": "tl", "zh": "zh_cn", "jv": "jv_krama",
                        "su": "su_loma"}
WORLD_CUISINES_PROMPT_TYPES = {"task1": (1, 3, 4), "task2": (2,)}
WORLD_CUISINES_SEED = 3722236


def world_cuisines(task: str):
    """The adapter of worldcuisines/vqa-v1.1 `task1` or `task2` (its test_large split as Parquet; images are the
    files its `image_path` names, under `image_root`, the dataset's images.tar.gz unpacked)."""
    def load(uri: str, lang: str, images: bool = True, image_root: str = "") -> list[Item]:
        import numpy as np

        if lang not in WORLD_CUISINES_LANGS:
            raise EvalDataError(f"WorldCuisines has no SEA-HELM language {lang!r}; known: "
                                f"{sorted(WORLD_CUISINES_LANGS)}")
        rows = [r for r in records.iter_rows(uri, columns=["qa_id", "lang", "prompt_type", "question", "options",
                                                             "mcq_answer_index", "image_path"])
                if r["lang"] == WORLD_CUISINES_LANGS[lang]]
        # SEA-HELM moves the correct option to a balanced, seeded position, prompt type by prompt type
        rng = np.random.default_rng(seed=WORLD_CUISINES_SEED)
        items = []
        pictures: dict[str, bytes] = {}   # a dish's image serves several questions: read it once
        for prompt_type in WORLD_CUISINES_PROMPT_TYPES[task]:
            subset = [r for r in rows if r["prompt_type"] == prompt_type]
            if len(subset) % 5:
                raise EvalDataError(f"WorldCuisines {task}/{lang} prompt type {prompt_type} has {len(subset)} items, "
                                    "not a multiple of 5: SEA-HELM's reshuffle of the gold position needs that")
            targets = [0, 1, 2, 3, 4] * (len(subset) // 5)
            rng.shuffle(targets)
            for row, target in zip(subset, targets, strict=True):
                options = list(row["options"])
                if len(options) != 5:
                    raise EvalDataError(f"WorldCuisines item {row['qa_id']} has {len(options)} options, not 5")
                options.insert(int(target), options.pop(int(row["mcq_answer_index"])))
                fields = {"question": row["question"], **{f"option_{k}": o for k, o in zip("abcde", options,
                                                                                           strict=True)}}
                where = storage.join(image_root, row["image_path"]) if image_root \
                    else records.resolve(uri, row["image_path"])
                if images and where not in pictures:
                    pictures[where] = records.read_image_bytes(where)
                picture = pictures.get(where)
                items.append(Item(str(row["qa_id"]), "ABCDE"[int(target)], fields, [picture] if picture else []))
        if not items:
            raise EvalDataError(f"{uri} holds no WorldCuisines {task} items in {WORLD_CUISINES_LANGS[lang]}")
        return items

    return load


MCQ_TASKS = {"cvqa": cvqa, "marvl": marvl, "world_cuisine_task1": world_cuisines("task1"),
             "world_cuisine_task2": world_cuisines("task2")}


@dataclass
class CaptionItem:
    id: str
    references: list[str]
    image: bytes | None = None

    @property
    def images(self) -> list:
        """The image, as a list like every item's (what the prompt shows)."""
        return [self.image] if self.image else []


def xm3600(uri: str, lang: str, images: bool = True) -> list[CaptionItem]:
    """floschne/xm3600 rows of one language split (Parquet of that split; SEA-HELM's tl is the split `fil`):
    the image and its reference captions."""
    config("xm3600", lang)
    items = []
    for row in records.iter_rows(uri, columns=["image_id", "captions"] + (["image"] if images else [])):
        refs = [c for c in (row["captions"] or []) if c and c.strip()]
        if not refs:
            raise EvalDataError(f"XM3600 image {row['image_id']} has no reference caption")
        image = (row.get("image") or {}).get("bytes") if images else None
        if images and not image:
            raise EvalDataError(f"XM3600 image {row['image_id']} has no image bytes")
        items.append(CaptionItem(str(row["image_id"]), refs, image))
    if not items:
        raise EvalDataError(f"{uri} holds no XM3600 items")
    return items


# SEA-HELM's text tasks this project runs; each reads SEA-HELM's own files (aisingapore/NLU-*, NLR-*, NLG-*,
# Safety-*: one language's `eval` split, rows {"id", "label", "prompts": [{template fields}]}).
TEXT_TASKS = ("sentiment", "qa", "belebele-qa-mc", "causal", "nli", "toxicity", "translation-en-xx",
              "translation-xx-en", "abssum")
# SEA-HELM's other text tasks, not run here: LLM-judged (mt-bench, kalahi-judge, syntax-criteria, the judged
# safeguard sets), instruction following (if-eval), linguistic diagnostics (mp-r, pragmatics) and the knowledge
# and culture sets (global_mmlu_lite, thai_exam, kalahi-mc, metaphor).
NOT_RUN = ("metaphor", "if-eval", "mt-bench-judge", "kalahi-mc", "kalahi-judge", "global_mmlu_lite", "thai_exam",
           "mp-r", "pragmatic-single", "pragmatic-pair", "syntax-criteria")
ALL_SEAHELM_TEXT_TASKS = TEXT_TASKS + NOT_RUN
# Where this project scores with another metric than SEA-HELM's (and why), the report says so.
SUBSTITUTES = {"normalized_metricx_wmt24_scores": ("chrf_score", "chrF++ (sacrebleu) in place of MetricX-24: the "
                                                   "suite names no MetricX checkpoint (`metricx:`)")}


def seahelm_text(uri: str, lang: str, images: bool = False) -> list[Item]:
    """One language's split of a SEA-HELM text task (JSONL, Parquet, or a `datasets.save_to_disk` folder of it):
    the row's `id`, its `label` (a list for QA: every accepted answer) and the first prompt's template fields."""
    items = []
    for row in records.iter_rows(uri, columns=["id", "label", "prompts"]):
        prompts_ = row.get("prompts") or []
        if row.get("label") is None or not prompts_:
            raise EvalDataError(f"{uri}: row {row.get('id')} needs a label and prompts (SEA-HELM's text schema)")
        label = row["label"]
        items.append(Item(str(row["id"]), list(label) if isinstance(label, (list, tuple)) else str(label),
                          dict(prompts_[0])))
    if not items:
        raise EvalDataError(f"{uri} holds no items")
    return items


def load_items(task: str, lang: str, data: str, image_root: str = "", images: bool = True) -> list:
    """The items of one task and language from the dataset at `data`, in the dataset's own schema; ids must be
    unique (replies are kept and scored by id)."""
    if task == "xm3600":
        items = xm3600(data, lang, images=images)
    elif task.startswith("world_cuisine"):
        items = MCQ_TASKS[task](data, lang, images=images, image_root=image_root)
    elif task in MCQ_TASKS:
        items = MCQ_TASKS[task](data, lang, images=images)
    elif task in TEXT_TASKS:
        items = seahelm_text(data, lang)
    else:
        raise EvalDataError(f"unknown task {task!r}; known: {sorted([*MCQ_TASKS, 'xm3600', *TEXT_TASKS])}")
    seen: set[str] = set()
    twice = sorted({i.id for i in items if i.id in seen or seen.add(i.id)})
    if twice:
        raise EvalDataError(f"{data}: {len(twice)} {task}/{lang} item id(s) appear more than once, e.g. {twice[:3]}")
    return items


def headline(task: str, metrics: dict | None = None) -> str:
    """The metric that stands for `task` in the aggregates: SEA-HELM's where `metrics` (the task's computed
    figures; None: not known yet) hold it, else its substitute here."""
    metric = prompts()[task]["metric"]
    if metric in SUBSTITUTES and (metrics is None or metric not in metrics):
        return SUBSTITUTES[metric][0]
    return metric


def images_per_item(task: str) -> int:
    """Images each item of `task` shows the model: none for the text tasks, MARVL's two, one otherwise."""
    return 0 if task in TEXT_TASKS else 2 if task == "marvl" else 1


def kind(task: str) -> str:
    """How a task is scored: mcq, caption, qa, translation or summary."""
    metric = prompts()[task]["metric"]
    return {"normalized_accuracy": "mcq", "normalized_refclipscore": "caption", "normalized_f1": "qa",
            "normalized_rougel_f1": "summary"}.get(metric, "translation")


OPEN_CLIP_CHECKPOINT = "open_clip_pytorch_model.bin"


@lru_cache(maxsize=1)
def make_metricx(path: str):
    from components.evaluate.seahelm.text import MetricX

    return MetricX(str(storage.localize(path)))


@lru_cache(maxsize=1)
def make_judge(path: str):
    """The CLIP judge at `path`: SEA-HELM's open_clip xlm-roberta-large-ViT-H-14 (GPU image) as a checkpoint file,
    or a folder holding `open_clip_pytorch_model.bin` and `hf/`, a Hugging Face cache with its tokenizer; else a
    transformers CLIPModel folder."""
    from components.evaluate.seahelm import refclip

    if not path:
        raise EvalDataError("xm3600 is scored with a CLIP judge: give its path (--judge)")
    if path.endswith((".bin", ".pt", ".safetensors")):
        checkpoint = storage.localize(path)
        cache = checkpoint.parent / "hf"   # a Hugging Face cache with its tokenizer, beside it
        return refclip.OpenClipJudge(str(checkpoint), hf_cache=str(cache) if cache.exists() else "")
    local = storage.localize(path)
    if (local / OPEN_CLIP_CHECKPOINT).exists():
        cache = local / "hf"
        return refclip.OpenClipJudge(str(local / OPEN_CLIP_CHECKPOINT), hf_cache=str(cache) if cache.exists() else "")
    return refclip.TransformersClipJudge(local)


def read_predictions(uri: str) -> dict[str, str]:
    """{id: response} from JSONL lines {"id": ..., "response": ...} (ids as the dataset's own)."""
    out: dict[str, str] = {}
    for n, row in enumerate(records.iter_rows(uri), start=1):   # a file, or a folder of parts
        if "id" not in row or "response" not in row:
            raise EvalDataError(f"{uri} line {n}: each line needs \"id\" and \"response\", got {sorted(row)}")
        key = str(row["id"])
        if key in out:
            raise EvalDataError(f"{uri}: id {key} appears twice")
        out[key] = row["response"]
    return out


def score_predictions(task: str, lang: str, data: str, predictions: str, judge: str = "", metricx: str = "") -> dict:
    """SEA-HELM's metrics for responses produced elsewhere: {"task", "lang", "n", "metrics"}."""
    config(task, lang)
    items = load_items(task, lang, data, images=task == "xm3600")
    responses = read_predictions(predictions)
    missing = [i.id for i in items if i.id not in responses]
    if missing:
        raise EvalDataError(f"{len(missing)} of {len(items)} {task}/{lang} items have no prediction, e.g. "
                            f"{missing[:3]}")
    unknown = sorted(set(responses) - {i.id for i in items})
    if unknown:
        raise EvalDataError(f"{len(unknown)} prediction id(s) are not {task}/{lang} items, e.g. {unknown[:3]}")
    return {"task": task, "lang": lang, "n": len(items),
            "metrics": score_responses(task, lang, items, responses, judge, metricx).metrics}


@dataclass
class Scored:
    """One task and language scored: SEA-HELM's metrics, and per item what the bootstrap and the report need
    ({"id", "gold", "answer" (the extracted answer), "score" (0-100)})."""
    metrics: dict
    items: list[dict]


def extract_answer(response: str | None, answer_tag: str) -> str:
    """The rest of the line after the answer tag (`<tag>[\\s\\r\\n`*]*(.*)`), else the whole response: how SEA-HELM
    reads captions, QA answers, translations and summaries."""
    import re

    if not response:
        return ""
    found = re.search(re.escape(answer_tag) + r"[\s\r\n`*]*(.*)", response)
    return (found.group(1) if found and found.group(1) is not None else response).strip()


def score_responses(task: str, lang: str, items: list, responses: dict[str, str], judge: str = "",
                    metricx: str = "") -> Scored:
    """SEA-HELM's metrics of one task and language from {item id: response}; translation with MetricX-24 when
    `metricx` names its checkpoint folder (chrF++ always, beside it)."""
    from components.evaluate.seahelm import text

    settings = config(task, lang)
    how = kind(task)
    raw = [responses.get(i.id) for i in items]
    if how == "mcq":
        from components.evaluate.seahelm.mcq import extract_label, mcq_metrics

        labels = sorted({i.label for i in items})
        preds = [extract_label(r, settings["answer_tag"], labels) for r in raw]
        metrics = mcq_metrics([i.label for i in items], preds)
        metrics.pop("n")
        return Scored(metrics, [{"id": i.id, "gold": i.label, "answer": p, "score": 100.0 * (p == i.label)}
                                for i, p in zip(items, preds, strict=True)])
    answers = [extract_answer(r, settings["answer_tag"]) for r in raw]
    golds = [i.references if how == "caption" else i.label for i in items]
    if how == "caption":
        from components.evaluate.metrics import TooFewItems, cider
        from components.evaluate.seahelm.refclip import refclipscore

        metrics, per = refclipscore(make_judge(judge), [i.image for i in items], answers, golds)
        with contextlib.suppress(TooFewItems):   # CIDEr-D as a secondary figure (SEA-HELM computes none)
            metrics["cider"] = cider({i.id: i.references for i in items},
                                     {i.id: a for i, a in zip(items, answers, strict=True)}, lang)[0]
    elif how == "qa":
        metrics, per = text.qa_metrics(answers, [g if isinstance(g, list) else [g] for g in golds], lang)
    elif how == "summary":
        mean, per = text.rouge_l(answers, [g[0] if isinstance(g, list) else g for g in golds], lang)
        metrics = {"rougel_f1": mean, "normalized_rougel_f1": max(mean, 0.0)}
    else:
        refs = [g if isinstance(g, list) else [g] for g in golds]
        metrics = {"chrf_score": text.chrf_pp(answers, refs)}
        per = text.sentence_chrf_pp(answers, refs)
        if metricx:
            found = make_metricx(metricx).scores([i.fields.get("text", "") for i in items], answers,
                                                 [r[0] for r in refs])
            mx, per = text.metricx_metrics(found)
            metrics.update(mx)
    metrics["null_count"] = sum(1 for a in answers if not a)
    return Scored(metrics, [{"id": i.id, "gold": g, "answer": a, "score": s}
                            for i, g, a, s in zip(items, golds, answers, per, strict=True)])


def dumps(result: dict) -> str:
    return json.dumps(result, ensure_ascii=False)


def conversation(task: str, lang: str, fields: dict, images: list) -> list[dict]:
    """SEA-HELM's zero-shot prompt for one item: a single user turn whose text is the preamble (answer tag filled
    in), a blank line and the task template filled with the item's fields, stripped; then the images, in order
    (text before images, as SEA-HELM sends them). `images` are whatever the processor takes (PIL images)."""
    settings = config(task, lang)
    text = (settings["preamble"].format(answer_tag=settings["answer_tag"]) + "\n\n"
            + settings["task_template"].format(**fields)).strip()
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         *({"type": "image", "image": image} for image in images)]}]
