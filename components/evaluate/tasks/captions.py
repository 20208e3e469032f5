"""Captioning: describe the image in the item's language; CIDEr-D against the item's reference captions.

Items (captions.jsonl): id, image, lang, references, optional task (the name scores are reported under).
"""
from __future__ import annotations

from components.common.chat import attach_images, caption_conversation
from components.common.languages import caption_prompt
from components.common.records import load_image
from components.evaluate import metrics
from components.evaluate.tasks import EvalTask, Generate


def ask(item: dict) -> Generate:
    user_turn = caption_conversation("", caption_prompt(item["lang"]))[0]
    return Generate(attach_images([user_turn], [load_image(item["image"])]))


def score(items: list[dict], captions: list[str], lang: str) -> tuple[float, list[dict]]:
    value, per_item = metrics.cider({r["id"]: r["references"] for r in items},
                                    {r["id"]: c for r, c in zip(items, captions, strict=True)}, lang)
    return value, [{"id": r["id"], "output": c, "reference": r["references"][0], "score": per_item.get(r["id"])}
                   for r, c in zip(items, captions, strict=True)]


TASK = EvalTask(name="captions", filename="captions.jsonl", required=("id", "image", "lang", "references"),
                image_fields=("image",), metric="cider", group="captioning", ask=ask, score=score)
