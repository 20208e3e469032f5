"""A SEA-HELM suite run on one model: each task and language prompted as SEA-HELM prompts it, answered greedily
within SEA-HELM's token limit, scored with its metric, aggregated (aggregate.py).

A suite is a YAML file; relative paths in it are read from the suite's own folder (local or s3://):

    tasks:
      cvqa: {data: cvqa/test.parquet, languages: [id, ms, tl]}          # one dataset, filtered per language
      marvl: {data: {id: marvl/id.parquet, zh: marvl/zh.parquet}}         # one split per language
      world_cuisine_task1: {data: wc/task1.parquet, image_root: wc, languages: [en, id]}
      xm3600: {data: {en: xm3600/en.parquet, tl: xm3600/fil.parquet}}
      sentiment: {data: {id: text/sentiment/id.jsonl}}                   # SEA-HELM's own text task files
    judge: s3://.../open_clip_pytorch_model.bin      # XM3600's CLIP judge
    batch_size: 16
    max_items: 0          # > 0: the first N items of each task and language (a smoke run)
    max_new_tokens: 0     # > 0: a cap below SEA-HELM's limits (a smoke run; not comparable then)

Replies go to a `ResponseStore` batch by batch; a rerun with the same store reads them back and generates only the
missing ones (resume by item id). A reply is reused only for the same prompt configuration and token limit.
"""
from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from components.common import records, storage
from components.evaluate.seahelm import tasks as sh

log = logging.getLogger(__name__)
CHUNK = 256   # items prompted at a time: their images are decoded only while they are being answered


class SuiteTask(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data: str | dict[str, str] = Field(description="the dataset, or one split per language")
    languages: list[str] = Field(default_factory=list, description="languages to run; [] = every one given")
    image_root: str = Field("", description="WorldCuisines: where its images.tar.gz is unpacked")


class Suite(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tasks: dict[str, SuiteTask]
    judge: str = ""
    metricx: str = Field("", description="MetricX-24 checkpoint folder (with its mT5 tokenizer) for translation; "
                         "'' = chrF++ stands in")
    batch_size: int = Field(16, ge=1)
    max_items: int = Field(0, ge=0)
    max_new_tokens: int = Field(0, ge=0)
    examples: int = Field(2, ge=0, description="example outputs kept per task and language for the report")
    cloze_diagnostic: bool = Field(False, description="multiple choice: also score each gold label's log-likelihood "
                                   "as the reply (`cloze_accuracy`, a diagnostic outside SEA-HELM's aggregates)")
    base: str = Field("", description="where relative paths are read from (the suite file's folder)")

    def _path(self, uri: str) -> str:
        return uri if not uri or "://" in uri or uri.startswith("/") or not self.base else storage.join(self.base,
                                                                                                         uri)

    @property
    def judge_uri(self) -> str:
        return self._path(self.judge)

    @property
    def metricx_uri(self) -> str:
        return self._path(self.metricx)

    def runs(self) -> list[tuple[str, str, str, str]]:
        """(task, language, data URI, image root) of every run, checked against SEA-HELM's task list."""
        out = []
        for task, spec in self.tasks.items():
            if task not in sh.prompts():
                raise sh.EvalDataError(f"unknown SEA-HELM task {task!r}; known: {sorted(sh.prompts())}")
            langs = spec.languages or (list(spec.data) if isinstance(spec.data, dict)
                                       else list(sh.prompts()[task]["languages"]))
            for lang in langs:
                sh.config(task, lang)   # refused here when the task does not run in that language
                data = spec.data.get(lang) if isinstance(spec.data, dict) else spec.data
                if not data:
                    raise sh.EvalDataError(f"{task}: no data for {lang}")
                out.append((task, lang, self._path(data), self._path(spec.image_root)))
        if any(t == "xm3600" for t, *_ in out) and not self.judge:
            raise sh.EvalDataError("xm3600 is scored with a CLIP judge: the suite needs `judge:`")
        return out

    def uris(self) -> list[str]:
        """Every URI the suite reads (its datasets, image roots and judge): what its fingerprint covers."""
        return sorted({u for _, _, data, root in self.runs() for u in (data, root) if u}
                      | {u for u in (self.judge_uri, self.metricx_uri) if u})

    def limit(self, task: str, lang: str) -> int:
        limit = sh.config(task, lang)["max_tokens"]
        return min(limit, self.max_new_tokens) if self.max_new_tokens else limit

    def prompt_key(self, task: str, lang: str) -> str:
        """What a reply depends on besides the model: SEA-HELM's configuration of the task and language, and the
        token limit. A reply stored under another key is never reused."""
        blob = json.dumps([sh.config(task, lang), self.limit(task, lang)], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def images(self):
        """The bytes of every image the suite shows a model (what training data must not contain)."""
        for task, lang, data, root in self.runs():
            for item in sh.load_items(task, lang, data, root):
                yield from item.images


def load_suite(uri: str) -> Suite:
    """The suite at `uri` (a YAML file, or a folder holding suite.yaml)."""
    import yaml

    uri = str(uri)
    if not uri.endswith((".yaml", ".yml")):
        uri = storage.join(uri, "suite.yaml")
    if not storage.exists(uri):
        raise sh.EvalDataError(f"no evaluation suite at {uri}")
    try:
        doc = yaml.safe_load(storage.read_text(uri)) or {}
    except yaml.YAMLError as err:
        raise sh.EvalDataError(f"the evaluation suite {uri} is not valid YAML: {err}") from None
    if not isinstance(doc, dict):
        raise sh.EvalDataError(f"the evaluation suite {uri} must hold a mapping (tasks:, judge:, ...), not a "
                               f"{type(doc).__name__}")
    return Suite(**{**doc, "base": storage.parent(uri)})


def item_digest(item) -> str:
    """A hash of what an item shows the model (its template fields and image bytes): a stored reply is reused
    only for the same item content, so a corrected dataset, or WorldCuisines' reshuffle after a row is added,
    never meets an old reply under the same id."""
    h = hashlib.sha256(json.dumps(getattr(item, "fields", {}), sort_keys=True, ensure_ascii=False).encode())
    for data in item.images:
        h.update(hashlib.sha256(data or b"").digest())
    return h.hexdigest()[:16]


class ResponseStore:
    """A model's replies: `<root>/<task>/<lang>/part-*.jsonl`, lines {"id", "response", "prompt": key, "item":
    digest}. One small file per batch (S3 has no append), so a run killed at any point keeps every batch it
    finished. A reply counts only under the same prompt key (SEA-HELM's configuration and the token limit) and
    the same item digest."""

    def __init__(self, root: str):
        self.root = str(root)
        self.owner = ""   # the model claim() named: the folder is marked as its own with the first reply kept

    def folder(self, task: str, lang: str) -> str:
        return storage.join(self.root, task, lang)

    def load(self, task: str, lang: str, prompt_key: str) -> dict[str, tuple[str, str]]:
        """{item id: (reply, item digest)} stored under `prompt_key`."""
        folder = self.folder(task, lang)
        if not storage.exists(folder):
            return {}
        return {str(row["id"]): (row["response"], row.get("item", "")) for row in records.iter_rows(folder)
                if row.get("prompt") == prompt_key}

    def add(self, task: str, lang: str, prompt_key: str, replies: dict[str, tuple[str, str]]) -> None:
        """Keep {item id: (reply, item digest)}."""
        if replies:
            if self.owner:
                storage.write_bytes(storage.join(self.root, "MODEL"), self.owner.encode())
                self.owner = ""
            lines = "".join(json.dumps({"id": k, "response": r, "prompt": prompt_key, "item": d},
                                       ensure_ascii=False) + "\n" for k, (r, d) in replies.items())
            storage.write_bytes(storage.join(self.folder(task, lang), f"part-{uuid.uuid4().hex}.jsonl"),
                                lines.encode())

    def claim(self, model: str) -> None:
        """Refuse a folder that holds another model's replies (`seavl evaluate --out` reused for a new model). The
        folder is marked as `model`'s when its first reply is kept, so a run refused before it answers anything
        leaves nothing behind."""
        marker = storage.join(self.root, "MODEL")
        owner = storage.read_text(marker).strip() if storage.exists(marker) else self.owner
        if owner and owner != model:
            raise sh.EvalDataError(f"{self.root} holds the replies of {owner}, not {model}: choose another "
                                   "output folder")
        if not storage.exists(marker):
            self.owner = model


def _pictures(item) -> list:
    from PIL import Image

    return [Image.open(io.BytesIO(b)).convert("RGB") for b in item.images]


def answer_all(model, processor, suite: Suite, task: str, lang: str, items: list, store: ResponseStore
               ) -> dict[str, str]:
    """{item id: reply} for every item: stored replies read back, the rest generated (and stored) chunk by chunk."""
    from components.evaluate import inference

    key = suite.prompt_key(task, lang)
    digests = {i.id: item_digest(i) for i in items}
    stored = store.load(task, lang, key)
    replies = {i: r for i, (r, d) in stored.items() if digests.get(i) == d}
    todo = [i for i in items if i.id not in replies]
    if len(todo) < len(items):
        log.info("%s/%s: %d of %d replies from %s", task, lang, len(items) - len(todo), len(items), store.root)
    for start in range(0, len(todo), CHUNK):
        chunk = todo[start:start + CHUNK]
        conversations = [sh.conversation(task, lang, getattr(i, "fields", {}), _pictures(i)) for i in chunk]

        def keep(positions: list[int], out: list[str], chunk=chunk) -> None:
            store.add(task, lang, key, {chunk[p].id: (r, digests[chunk[p].id])
                                        for p, r in zip(positions, out, strict=True)})

        out = inference.generate(model, processor, conversations, suite.limit(task, lang), suite.batch_size,
                                 on_batch=keep, progress=f"{task}/{lang} {start + len(chunk)}/{len(todo)}")
        replies.update({i.id: r for i, r in zip(chunk, out, strict=True)})
    return replies


def cloze_accuracy(model, processor, suite: Suite, task: str, lang: str, items: list) -> float:
    """Share (0-100) of items whose gold label, as the tagged reply "<tag> <label>", is the most likely of the
    task's labels: how a model ranks the options when it is not asked to write the answer."""
    from components.evaluate import inference

    config = sh.config(task, lang)
    labels = sorted({i.label for i in items})
    hits = 0
    for start in range(0, len(items), CHUNK):
        chunk = items[start:start + CHUNK]
        flat = []
        for item in chunk:
            user = sh.conversation(task, lang, item.fields, _pictures(item))
            flat += [user + [{"role": "assistant", "content": [{"type": "text", "text": f"{config['answer_tag']} "
                                                                                         f"{label}"}]}]
                     for label in labels]
        scores = inference.option_scores(model, processor, flat, suite.batch_size)
        for k, item in enumerate(chunk):
            mine = scores[k * len(labels):(k + 1) * len(labels)]
            hits += labels[max(range(len(labels)), key=mine.__getitem__)] == item.label
    return 100 * hits / len(items)


@dataclass
class SuiteResult:
    """One model's suite run: per task and language SEA-HELM's metrics and per-item scores, and the aggregates."""
    model: str
    tasks: dict[str, dict] = field(default_factory=dict)        # "task/lang" -> {"n", "metric", metrics...}
    items: dict[str, list[dict]] = field(default_factory=dict)  # "task/lang" -> per-item records
    aggregate: dict = field(default_factory=dict)
    capped_tokens: int | None = None
    skipped: dict[str, str] = field(default_factory=dict)      # "task/lang" -> why it has no score

    def to_json(self) -> str:
        return json.dumps({"model": self.model, "capped_tokens": self.capped_tokens, "tasks": self.tasks,
                           "aggregate": self.aggregate, "items": self.items, "skipped": self.skipped},
                          ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> SuiteResult:
        doc = json.loads(text)
        return cls(doc["model"], doc["tasks"], doc.get("items", {}), doc["aggregate"], doc.get("capped_tokens"),
                   doc.get("skipped", {}))

    def add(self, suite: Suite, task: str, lang: str, items: list, replies: dict[str, str],
            extra: dict | None = None) -> None:
        """Score one task and language. A set that SEA-HELM's normalisation cannot score (fewer than two distinct
        gold labels, e.g. a small `max_items`) is recorded as skipped, with why, instead of failing the run."""
        from components.evaluate.seahelm.mcq import TooFewLabels

        key = f"{task}/{lang}"
        try:
            scored = sh.score_responses(task, lang, items, replies, suite.judge_uri, suite.metricx_uri)
        except TooFewLabels as err:
            log.warning("%s not scored: %s", key, err)
            self.skipped[key] = str(err)
            return
        self.tasks[key] = {"n": len(items), "metric": sh.headline(task, scored.metrics), **scored.metrics,
                           **(extra or {})}
        examples = {i.id: replies.get(i.id) for i in items[:suite.examples]}
        self.items[key] = [{**r, "response": examples[r["id"]]} if r["id"] in examples else r for r in scored.items]

    def finish(self) -> SuiteResult:
        """SEA-HELM's aggregates over the tasks and languages it runs (XM3600 in a language SEA-HELM does not run
        is reported on its own, outside them, so that the aggregates stay comparable)."""
        from components.evaluate.seahelm.aggregate import aggregate

        headline = {(task, lang): v[v["metric"]] for task, lang, v in
                    ((*k.split("/"), v) for k, v in self.tasks.items())
                    if lang in sh.prompts()[task]["languages"]}
        self.aggregate = aggregate(headline, sh.prompts())
        return self


def run_suite(model_uri: str, suite: Suite, store: ResponseStore, gpus: int = 1, backend: str = "auto"
              ) -> SuiteResult:
    """Run every task and language of `suite` on the model at `model_uri` (local or s3://), with the inference
    `backend` (auto, transformers or vllm: components/evaluate/inference.py). Each task and language is scored as
    soon as it is answered, so its images are held only while it runs."""
    from components.evaluate import inference

    runs = suite.runs()
    for task, lang, data, image_root in runs:   # bad data fails here, before a large model is loaded
        sh.load_items(task, lang, data, image_root, images=False)
    backend = "transformers" if suite.cloze_diagnostic else backend   # log-likelihoods need transformers
    model, processor = inference.load(storage.localize(model_uri), gpus=gpus, backend=backend,
                                      max_images=2 if "marvl" in suite.tasks else 1)
    result = SuiteResult(model=model_uri, capped_tokens=suite.max_new_tokens or None)
    for task, lang, data, image_root in runs:
        items = sh.load_items(task, lang, data, image_root)
        items = items[:suite.max_items] if suite.max_items else items
        replies = answer_all(model, processor, suite, task, lang, items, store)
        extra = ({"cloze_accuracy": cloze_accuracy(model, processor, suite, task, lang, items)}
                 if suite.cloze_diagnostic and task in sh.MCQ_TASKS else None)
        result.add(suite, task, lang, items, replies, extra)
    del model
    return result.finish()
