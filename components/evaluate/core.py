"""evaluate: score the candidate side by side with the base model (and the CPT model and the current
champion, when given) on held-out captioning, multiple-choice and text items.

Pure core: `evaluate_models` takes model folders and an evaluation folder and returns a `Scores` table;
`write_report` renders it. Metric names follow `eval/<role>/<task>/<lang>/<metric>`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, Field

from components.common import records, storage
from components.common.chat import attach_images, caption_conversation
from components.common.prompts import caption_prompt
from components.evaluate import metrics, scoring

log = logging.getLogger(__name__)
ROLES = ("base", "cpt", "candidate", "champion")  # report column order


class EvalConfig(BaseModel):
    max_new_tokens: int = Field(32, description="caption and text replies are cut here")
    batch_size: int = 32
    max_items_per_task: int = Field(0, description="0 = all; else the first N items of each task and language")


@dataclass
class EvalSet:
    """Held-out items, read from a folder with captions.jsonl, mc.jsonl and text.jsonl (any may be absent)."""
    captions: list[dict] = field(default_factory=list)
    mc: list[dict] = field(default_factory=list)
    text: list[dict] = field(default_factory=list)

    @classmethod
    def load(cls, eval_dir: str, max_per_task: int = 0) -> "EvalSet":
        def read(name: str, required: tuple[str, ...], image_fields: tuple[str, ...]) -> list[dict]:
            uri = storage.join(eval_dir, name)
            if not storage.exists(uri):
                return []
            rows = records.read_jsonl(uri)
            for row in rows:
                records.require(row, required, uri)
                for f in image_fields:
                    if f in row:
                        row[f] = [records.resolve(uri, p) for p in row[f]] if isinstance(row[f], list) \
                            else records.resolve(uri, row[f])
            return _cap(rows, max_per_task)

        es = cls(captions=read("captions.jsonl", records.EVAL_CAPTION_REQUIRED, ("image",)),
                 mc=read("mc.jsonl", records.EVAL_MC_REQUIRED, ("images",)),
                 text=read("text.jsonl", records.EVAL_TEXT_REQUIRED, ()))
        if not (es.captions or es.mc or es.text):
            raise FileNotFoundError(f"no evaluation items under {eval_dir} (captions.jsonl, mc.jsonl, text.jsonl)")
        return es


def _cap(rows: list[dict], n: int) -> list[dict]:
    if not n:
        return rows
    seen: dict[tuple, int] = {}
    out = []
    for row in rows:
        key = (row.get("task"), row["lang"])
        seen[key] = seen.get(key, 0) + 1
        if seen[key] <= n:
            out.append(row)
    return out


def _groups(rows: list[dict], default_task: str) -> dict[tuple[str, str], list[dict]]:
    out: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        out.setdefault((row.get("task", default_task), row["lang"]), []).append(row)
    return out


def score_model(model_dir: Path, items: EvalSet, cfg: EvalConfig) -> tuple[dict[str, float], list[dict]]:
    """Scores {"<task>/<lang>/<metric>": value} of one model, and its per-item outputs."""
    model, processor = scoring.load(model_dir)
    scores: dict[str, float] = {}
    samples: list[dict] = []

    caption_convs = [attach_images([caption_conversation("", caption_prompt(r["lang"]))[0]],
                                   [records.load_image(r["image"])]) for r in items.captions]
    captions = scoring.generate(model, processor, caption_convs, cfg.max_new_tokens, cfg.batch_size)
    by_id = {r["id"]: c for r, c in zip(items.captions, captions)}
    for (task, lang), rows in _groups(items.captions, "captions").items():
        score, per_item = metrics.cider({r["id"]: r["references"] for r in rows},
                                        {r["id"]: by_id[r["id"]] for r in rows}, lang)
        scores[f"{task}/{lang}/cider"] = score
        samples += [{"task": task, "lang": lang, "id": r["id"], "output": by_id[r["id"]],
                     "reference": r["references"][0], "score": per_item[r["id"]]} for r in rows]

    pairs = [(r, k) for r in items.mc for k in range(len(r["options"]))]
    convs = [attach_images([{"role": "user", "content": [{"type": "image"}] * len(r["images"])
                             + [{"type": "text", "text": r["question"]}]},
                            {"role": "assistant", "content": [{"type": "text", "text": r["options"][k]}]}],
                           [records.load_image(p) for p in r["images"]]) for r, k in pairs]
    option_logp = scoring.option_scores(model, processor, convs, cfg.batch_size)
    chosen: dict[str, tuple[int, float]] = {}
    for (r, k), lp in zip(pairs, option_logp):
        if r["id"] not in chosen or lp > chosen[r["id"]][1]:
            chosen[r["id"]] = (k, lp)
    for (task, lang), rows in _groups(items.mc, "mc").items():
        scores[f"{task}/{lang}/accuracy"] = metrics.accuracy([chosen[r["id"]][0] for r in rows],
                                                             [int(r["answer"]) for r in rows])

    text_convs = [[{"role": "user", "content": [{"type": "text", "text": r["prompt"]}]}] for r in items.text]
    replies = scoring.generate(model, processor, text_convs, cfg.max_new_tokens, cfg.batch_size)
    by_id = {r["id"]: c for r, c in zip(items.text, replies)}
    for (task, lang), rows in _groups(items.text, "text").items():
        scores[f"{task}/{lang}/chrf"] = metrics.chrf([by_id[r["id"]] for r in rows], [r["references"] for r in rows])
        samples += [{"task": task, "lang": lang, "id": r["id"], "output": by_id[r["id"]],
                     "reference": r["references"][0]} for r in rows]
    return scores, samples


def summarize(scores: dict[str, float]) -> dict[str, float]:
    """Per task and metric, the mean over languages: `<task>/all/<metric>`; and the three gate figures."""
    groups: dict[tuple[str, str], list[float]] = {}
    for key, value in scores.items():
        task, _lang, metric = key.split("/")
        groups.setdefault((task, metric), []).append(value)
    out = {f"{task}/all/{metric}": sum(v) / len(v) for (task, metric), v in groups.items()}
    for name, metric in (("captioning", "cider"), ("multiple_choice", "accuracy"), ("text", "chrf")):
        vals = [v for (t, m), vs in groups.items() if m == metric for v in vs]
        if vals:
            out[f"summary/{name}"] = sum(vals) / len(vals)
    return out


@dataclass
class Scores:
    """{role: {"<task>/<lang>/<metric>": value}} plus the per-item outputs, for every model evaluated."""
    by_role: dict[str, dict[str, float]]
    samples: dict[str, list[dict]]

    def flat_metrics(self) -> dict[str, float]:
        return {f"eval/{role}/{key}": value for role, table in self.by_role.items() for key, value in table.items()}

    def to_json(self) -> str:
        return json.dumps({"scores": self.by_role, "samples": self.samples}, ensure_ascii=False, indent=1)


def evaluate_models(models: dict[str, str], eval_dir: str, cfg: EvalConfig) -> Scores:
    """Score every model in `models` ({role: model URI}) on the same items."""
    items = EvalSet.load(eval_dir, cfg.max_items_per_task)
    by_role, samples = {}, {}
    for role, uri in models.items():
        log.info("evaluating %s (%s)", role, uri)
        table, outputs = score_model(storage.localize(uri), items, cfg)
        by_role[role] = {**table, **summarize(table)}
        samples[role] = outputs
    return Scores(by_role, samples)


def run(ctx, models: dict[str, str], eval_dir: str, out_dir: Path, cfg: EvalConfig,
        registered_model_name: str = "") -> Scores:
    """The step: add the current champion when one is registered, evaluate everything side by side, log
    `eval/<role>/<task>/<lang>/<metric>` to the step's run and its parent, and write the report."""
    import mlflow

    from components.common import tracking
    from components.evaluate.report import write_report

    out_dir = Path(out_dir)
    with tracking.step_run("evaluate", ctx, params={**cfg.model_dump(), "eval_dir": eval_dir,
                                                     **{f"model.{k}": v for k, v in models.items()}}):
        models = dict(models)
        source = tracking.alias_source(registered_model_name) if registered_model_name else None
        if source:
            models["champion"] = str(tracking.download_artifacts(source, out_dir / "champion"))
        scores = evaluate_models(models, eval_dir, cfg)
        flat = scores.flat_metrics()
        mlflow.log_metrics(flat)
        tracking.log_to_parent(flat)
        paths = write_report(scores, out_dir / "report", title="Candidate vs base")
        mlflow.log_artifacts(str(out_dir / "report"), artifact_path="report")
    return scores
