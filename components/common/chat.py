"""Conversations: building them, putting images in them, and batching them with training labels.

CPT and SFT share one collator: a caption pair becomes a one-turn conversation (user: image + caption
instruction, model: caption), so in both stages the labels are exactly the model turns that the chat
template marks with {% generation %}. Image tokens, <start_of_image>/<end_of_image>, prompts and padding
are always -100: Gemma 3 computes the loss over every position it is given labels for.
"""
from __future__ import annotations

from typing import Any

IGNORE = -100


def caption_conversation(caption: str, prompt: str) -> list[dict]:
    """A caption pair as a chat: the image and an instruction from the user, the caption from the model."""
    return [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": prompt}]},
        {"role": "assistant", "content": [{"type": "text", "text": caption}]},
    ]


def attach_images(messages: list[dict], images: list) -> list[dict]:
    """Put the loaded images into the conversation's image slots, in order."""
    it = iter(images)
    out = []
    for m in messages:
        content = m["content"]
        if isinstance(content, list):
            content = [dict(c, image=next(it)) if c.get("type") == "image" else c for c in content]
        out.append({**m, "content": content})
    rest = list(it)
    if rest:
        raise ValueError(f"conversation has fewer image slots than images ({len(rest)} left over)")
    return out


def mask_labels(input_ids, assistant_mask, attention_mask, never_ids: list[int]):
    """Labels = input_ids on assistant tokens, IGNORE elsewhere and on every id in `never_ids`."""
    import torch

    labels = input_ids.clone()
    keep = assistant_mask.bool() & attention_mask.bool()
    for token_id in never_ids:
        keep &= input_ids != token_id
    labels[~keep] = IGNORE
    return labels


def special_image_ids(model_config) -> list[int]:
    """Ids that are never trained on: image soft tokens and the image delimiters (taken from the model config,
    since processor attribute names changed meaning between transformers versions)."""
    return [model_config.image_token_id, model_config.boi_token_id, model_config.eoi_token_id]


def collate(processor, conversations: list[list[dict]], never_ids: list[int], max_length: int | None = None
            ) -> dict[str, Any]:
    """Tokenise a batch of conversations (images attached) into model inputs with `labels`."""
    batch = processor.apply_chat_template(
        conversations, tokenize=True, return_dict=True, return_tensors="pt",
        return_assistant_tokens_mask=True, processor_kwargs={"padding": True},
    )
    assistant = batch.pop("assistant_masks")
    if not hasattr(assistant, "bool"):
        import torch
        assistant = torch.as_tensor(assistant)
    batch["labels"] = mask_labels(batch["input_ids"], assistant, batch["attention_mask"], never_ids)
    if max_length is not None and batch["input_ids"].shape[1] > max_length:
        raise ValueError(f"a sample has {batch['input_ids'].shape[1]} tokens, more than max_length={max_length}; "
                         "shorten it or raise max_length (truncating would cut image tokens)")
    return dict(batch)
