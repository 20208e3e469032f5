"""Text-only generation (translation in the demo): a reply to the item's prompt, corpus chrF against its
references. This is where a model that forgot its base model's text ability shows it.

Items (text.jsonl): id, prompt, references, lang, task.
"""
from __future__ import annotations

from components.evaluate import metrics
from components.evaluate.tasks import EvalTask, Generate


def ask(item: dict) -> Generate:
    return Generate([{"role": "user", "content": [{"type": "text", "text": item["prompt"]}]}])


def score(items: list[dict], replies: list[str], lang: str) -> tuple[float, list[dict]]:
    return metrics.chrf(replies, [r["references"] for r in items]), [
        {"id": r["id"], "output": reply, "reference": r["references"][0]}
        for r, reply in zip(items, replies, strict=True)]


TASK = EvalTask(name="text", filename="text.jsonl", required=("id", "prompt", "references", "lang", "task"),
                image_fields=(), metric="chrf", group="text", ask=ask, score=score)
