"""evaluate: score one model on the configured evaluation tasks; compare: put the tables of several models side
by side in a report.

Pure core: `evaluate_model` takes a model URI, the evaluation data folder and an `EvalConfig` and returns
the model's score table (`<task>/<lang>/<metric>` plus aggregates) and per-item outputs. Each model is its own
pipeline task, so KFP caches each on its own inputs: the base model is scored once per evaluation set, the
champion once per version. `compare` joins the tables by role.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field

from pydantic import BaseModel, Field

from components.common import records, storage
from components.common.languages import LANGUAGES
from components.common.scores import Scores, aggregate
from components.common.tracking import Logged
from components.evaluate import inference
from components.evaluate.tasks import DEFAULT_TASKS, EvalTask, get_task

log = logging.getLogger(__name__)


class EvalConfig(BaseModel):
    tasks: str = Field(DEFAULT_TASKS, description="comma-separated task names (tasks/)")
    languages: str = Field(",".join(LANGUAGES), description="comma-separated languages to score; '' = all")
    max_new_tokens: int = Field(32, description="generated replies are cut here")
    batch_size: int = 32
    max_items_per_task: int = Field(0, description="0 = all; else the first N items of each task and language")
    gpus: int = Field(1, ge=1, description="GPUs the model may be spread over (when the machine has GPUs)")
    response_cache: str = Field("", description="URI where replies are kept as they are generated, so that an "
                                "interrupted evaluation resumes by item id; '' = none")

    @property
    def task_list(self) -> list[EvalTask]:
        return [get_task(name) for name in records.split_list(self.tasks)]


@dataclass
class ModelScores:
    """One model's score table and per-item outputs."""
    model: str
    table: dict[str, float] = field(default_factory=dict)
    samples: list[dict] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "scores": self.table, "samples": self.samples}, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> ModelScores:
        doc = json.loads(text)
        return cls(doc["model"], doc["scores"], doc["samples"])

    def logged(self, role: str, eval_data: str, cfg: EvalConfig, model_uri: str = "") -> Logged:
        """The role, the model (`model_uri` where it was read from a local copy) and the config as params; the
        table as `eval/<role>/...` pipeline metrics."""
        return Logged(params={"role": role, "model": model_uri or self.model or "(none)", "eval_data": eval_data,
                              **cfg.model_dump()},
                      pipeline_metrics={f"eval/{role}/{k}": v for k, v in self.table.items()})


def load_items(task: EvalTask, eval_data: str, languages: list[str], limit: int = 0) -> list[dict]:
    """The task's items under `eval_data` in `languages` (all when empty), image paths resolved, at most
    `limit` per (task, language) when `limit` > 0. An absent items file means no items."""
    uri = storage.join(eval_data, task.filename)
    if not storage.exists(uri):
        return []
    seen: dict[tuple, int] = {}
    items = []
    for row in records.read_jsonl(uri):
        records.require(row, task.required, uri)
        if languages and row["lang"] not in languages:
            continue
        key = (row.get("task"), row["lang"])
        seen[key] = seen.get(key, 0) + 1
        if limit and seen[key] > limit:
            continue
        for f in task.image_fields:
            value = row[f]
            row[f] = ([records.resolve(uri, v) for v in value] if isinstance(value, list)
                      else records.resolve(uri, value))
        items.append(row)
    return items


def _by_group(items: list[dict], default_task: str) -> dict[tuple[str, str], list[int]]:
    """Item positions by (reported task name, language), in first-seen order."""
    out: dict[tuple[str, str], list[int]] = {}
    for i, row in enumerate(items):
        out.setdefault((row.get("task", default_task), row["lang"]), []).append(i)
    return out


def evaluate_model(model_uri: str, eval_data: str, cfg: EvalConfig, model_id: str = "") -> ModelScores:
    """Score the model at `model_uri` on every configured task. An empty URI (no champion yet) scores nothing.
    `model_id` names the model in the response cache (its content fingerprint or artifact URI; default the URI)."""
    if not model_uri:
        return ModelScores(model="")
    tasks = cfg.task_list
    languages = records.split_list(cfg.languages)
    items = {t.name: load_items(t, eval_data, languages, cfg.max_items_per_task) for t in tasks}
    if not any(items.values()):
        raise FileNotFoundError(f"no evaluation items under {eval_data} for tasks {[t.name for t in tasks]} "
                                f"(files {[t.filename for t in tasks]}) and languages {languages or 'all'}")
    model, processor = inference.load(storage.localize(model_uri), gpus=cfg.gpus)
    result = ModelScores(model=model_uri)
    groups: dict[str, str] = {}  # reported task name -> the overall figure it counts towards
    for task in tasks:
        rows = items[task.name]
        log.info("%s: %d %s items", model_uri, len(rows), task.name)
        cache = (ResponseCache(cfg.response_cache, model_id or model_uri, task, cfg.max_new_tokens)
                 if cfg.response_cache else None)
        answers = _answers(model, processor, task, rows, cfg, cache)
        for (name, lang), idx in _by_group(rows, task.name).items():
            value, per_item = task.score([rows[i] for i in idx], [answers[i] for i in idx], lang)
            result.table[f"{name}/{lang}/{task.metric}"] = value
            groups[name] = task.group
            result.samples += [{"task": name, "lang": lang, **s} for s in per_item]
    result.table.update(aggregate(result.table, groups))
    return result


class ResponseCache:
    """A model's answers to one task, kept as they are produced: `<root>/<key>/<task>/part-*.jsonl`, lines
    {"key": "<lang>/<id>", "answer": ...}. The key hashes the model URI, the generation limit and the task's code
    (its prompts), so a changed prompt never reuses an old answer. One small file per batch: S3 has no append."""

    def __init__(self, root: str, model_uri: str, task: EvalTask, max_new_tokens: int):
        import hashlib
        import inspect
        import sys

        source = inspect.getsource(sys.modules[task.ask.__module__])
        key = hashlib.sha256(json.dumps([model_uri, max_new_tokens, source]).encode()).hexdigest()[:16]
        self.folder = storage.join(root, key, task.name)

    def load(self) -> dict[str, object]:
        fs, path = storage.filesystem(self.folder)
        if not fs.exists(path):
            return {}
        out = {}
        for part in sorted(fs.find(path)):
            if part.endswith(".jsonl"):
                with fs.open(part, "rb") as f:
                    for line in f:
                        if line.strip():
                            row = json.loads(line)
                            out[row["key"]] = row["answer"]
        return out

    def add(self, answers: dict[str, object]) -> None:
        import uuid

        if answers:
            lines = "".join(json.dumps({"key": k, "answer": v}, ensure_ascii=False) + "\n" for k, v in answers.items())
            storage.write_bytes(storage.join(self.folder, f"part-{uuid.uuid4().hex}.jsonl"), lines.encode())


def _answers(model, processor, task: EvalTask, rows: list[dict], cfg: EvalConfig, cache: ResponseCache | None
             ) -> list:
    """The model's answer to every item: those in the cache read back, the rest produced (and cached)."""
    keys = [f"{r['lang']}/{r['id']}" for r in rows]
    known = cache.load() if cache else {}
    todo = [i for i, k in enumerate(keys) if k not in known]
    if known:
        log.info("%s: %d of %d answers from the response cache", task.name, len(rows) - len(todo), len(rows))

    def keep(positions: list[int], replies: list) -> None:
        cache.add({keys[todo[p]]: reply for p, reply in zip(positions, replies, strict=True)})

    fresh = inference.answer(model, processor, [task.ask(rows[i]) for i in todo], cfg.max_new_tokens,
                             cfg.batch_size, on_batch=keep if cache else None, progress=task.name)
    if cache:   # multiple-choice answers come at the end, not batch by batch
        cache.add({keys[i]: a for i, a in zip(todo, fresh, strict=True) if not isinstance(a, str)})
    answers = [known.get(k) for k in keys]
    for i, a in zip(todo, fresh, strict=True):
        answers[i] = a
    return answers


def compare(by_role: dict[str, ModelScores]) -> Scores:
    """The side-by-side table of every role that has a model (an empty champion is left out)."""
    return Scores({role: s.table for role, s in by_role.items() if s.model},
                  {role: s.samples for role, s in by_role.items() if s.model})


def overall_metrics(scores: Scores) -> dict[str, float]:
    """The overall figures of every role, `<role>/overall/<group>`: the headline of a comparison."""
    return {f"{role}/{key}": value for role, table in scores.by_role.items() for key, value in table.items()
            if key.startswith("overall/")}
