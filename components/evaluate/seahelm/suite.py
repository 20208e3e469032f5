"""A SEA-HELM suite run on one model: each task and language prompted as SEA-HELM prompts it, answered greedily
within SEA-HELM's token limit, scored with its metric, aggregated (aggregate.py).

A suite is a YAML file:

    tasks:
      cvqa: {data: s3://.../cvqa/test, languages: [id, ms, tl]}        # one dataset, filtered per language
      marvl: {data: {id: s3://.../marvl/id, zh: s3://.../marvl/zh}}     # one split per language
      world_cuisine_task1: {data: s3://.../wc/task1, image_root: s3://.../wc, languages: [en, id]}
      xm3600: {data: {en: s3://.../xm3600/en, id: s3://.../xm3600/id}}
    judge: /models/open_clip_pytorch_model.bin      # XM3600's CLIP judge
    batch_size: 16
    max_items: 0          # > 0: the first N items of each task and language (a smoke run)
    max_new_tokens: 0     # > 0: a cap below SEA-HELM's limits (a smoke run; not comparable then)

Replies are written to `<out>/responses/<task>/<lang>.jsonl` batch by batch; a rerun into the same folder reads
them back and generates only the missing ones (resume by item id). Scores go to `<out>/scores.json`.
"""
from __future__ import annotations

import io
import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from components.common import storage
from components.evaluate.seahelm import tasks as sh


class SuiteTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str | dict[str, str] = Field(description="the dataset, or one split per language")
    languages: list[str] = Field(default_factory=list, description="languages to run; [] = every one given")
    image_root: str = Field("", description="WorldCuisines: where its images.tar.gz is unpacked")


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks: dict[str, SuiteTask]
    judge: str = ""
    batch_size: int = Field(16, ge=1)
    max_items: int = Field(0, ge=0)
    max_new_tokens: int = Field(0, ge=0)

    def runs(self) -> list[tuple[str, str, str, str]]:
        """(task, language, data URI, image root) of every run, checked against SEA-HELM's task list."""
        out = []
        for task, spec in self.tasks.items():
            if task not in sh.prompts():
                raise sh.EvalDataError(f"unknown SEA-HELM task {task!r}; known: {sorted(sh.prompts())}")
            known = sh.prompts()[task]["languages"]
            langs = spec.languages or (list(spec.data) if isinstance(spec.data, dict) else list(known))
            for lang in langs:
                if lang not in known:
                    raise sh.EvalDataError(f"SEA-HELM runs {task} in {sorted(known)}, not {lang!r}")
                data = spec.data.get(lang) if isinstance(spec.data, dict) else spec.data
                if not data:
                    raise sh.EvalDataError(f"{task}: no data for {lang}")
                out.append((task, lang, data, spec.image_root))
        return out


def load_suite(path: Path) -> Suite:
    import yaml

    return Suite(**(yaml.safe_load(Path(path).read_text()) or {}))


def _items(task: str, lang: str, data: str, image_root: str) -> list:
    if task == "xm3600":
        return sh.xm3600(data, lang)
    if task.startswith("world_cuisine"):
        return sh.MCQ_TASKS[task](data, lang, image_root=image_root)
    return sh.MCQ_TASKS[task](data, lang)


def _pictures(item) -> list:
    from PIL import Image

    raw = [item.image] if hasattr(item, "references") else item.images
    return [Image.open(io.BytesIO(b)).convert("RGB") for b in raw]


def run_suite(model_uri: str, suite: Suite, out_dir: Path) -> dict:
    """Run every task and language of `suite` on the model; returns (and writes) the scores."""
    from components.evaluate import inference
    from components.evaluate.seahelm.aggregate import aggregate

    runs = suite.runs()
    out_dir = Path(out_dir)
    model, processor = inference.load(storage.localize(model_uri))
    per_task: dict[tuple[str, str], dict] = {}
    for task, lang, data, image_root in runs:
        items = _items(task, lang, data, image_root)
        if suite.max_items:
            items = items[:suite.max_items]
        cache = out_dir / "responses" / task / f"{lang}.jsonl"
        responses = sh.read_predictions(str(cache)) if cache.exists() else {}
        todo = [i for i in items if i.id not in responses]
        limit = sh.prompts()[task]["languages"][lang]["max_tokens"]
        if suite.max_new_tokens:
            limit = min(limit, suite.max_new_tokens)
        conversations = [sh.conversation(task, lang, getattr(i, "fields", {}), _pictures(i)) for i in todo]

        def keep(positions: list[int], replies: list[str], todo=todo, cache=cache) -> None:
            cache.parent.mkdir(parents=True, exist_ok=True)
            with cache.open("a", encoding="utf-8") as f:
                for p, reply in zip(positions, replies, strict=True):
                    f.write(json.dumps({"id": todo[p].id, "response": reply}, ensure_ascii=False) + "\n")

        replies = inference.generate(model, processor, conversations, limit, suite.batch_size, on_batch=keep,
                                     progress=f"{task}/{lang}")
        responses.update({i.id: r for i, r in zip(todo, replies, strict=True)})
        metrics = sh.score_responses(task, lang, items, responses, suite.judge)
        per_task[(task, lang)] = {"n": len(items), "metric": sh.prompts()[task]["metric"], **metrics}
    headline = {(t, lang): m[m["metric"]] for (t, lang), m in per_task.items()}
    result = {"model": model_uri, "capped_tokens": suite.max_new_tokens or None,
              "tasks": {f"{t}/{lang}": m for (t, lang), m in per_task.items()},
              "aggregate": aggregate(headline, sh.prompts())}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "scores.json").write_text(json.dumps(result, indent=1, ensure_ascii=False), encoding="utf-8")
    return result
