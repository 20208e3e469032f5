"""Multiple-choice visual questions, scored cloze-style: every option is offered as the model's reply and the
most likely one (mean log-probability per token) is its answer; accuracy against the gold option.

Items (mc.jsonl): id, images, question, options, answer (index of the gold option), lang, task.
"""
from __future__ import annotations

from components.common.chat import attach_images
from components.common.records import load_image
from components.evaluate import metrics
from components.evaluate.tasks import Choose, EvalTask


def ask(item: dict) -> Choose:
    images = [load_image(p) for p in item["images"]]
    question = {"role": "user", "content": [{"type": "image"}] * len(images)
                + [{"type": "text", "text": item["question"]}]}
    return Choose([attach_images([question, {"role": "assistant", "content": [{"type": "text", "text": option}]}],
                                 images) for option in item["options"]])


def score(items: list[dict], chosen: list[int], lang: str) -> tuple[float, list[dict]]:
    gold = [int(r["answer"]) for r in items]
    return metrics.accuracy(chosen, gold), [
        {"id": r["id"], "output": r["options"][c], "reference": r["options"][g], "score": float(c == g)}
        for r, c, g in zip(items, chosen, gold, strict=True)]


TASK = EvalTask(name="multiple_choice", filename="mc.jsonl",
                required=("id", "images", "question", "options", "answer", "lang", "task"),
                image_fields=("images",), metric="accuracy", group="multiple_choice", ask=ask, score=score)
