"""Conversations: building them, putting images in them, and batching them with training labels.

CPT and SFT share one collator: a caption pair becomes a one-turn conversation (user: image + caption
instruction, model: caption), so in both stages the labels are exactly the model turns. Image tokens,
<start_of_image>/<end_of_image>, prompts and padding are always -100: Gemma 3 computes the loss over every
position it is given labels for.
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


def assistant_mask(input_ids, tokenizer):
    """1 on every model turn's tokens (its text and its closing <end_of_turn>), 0 elsewhere.

    Found from the ids of Gemma's turn markers, `<start_of_turn>model\n ... <end_of_turn>`, rather than with
    apply_chat_template(return_assistant_tokens_mask=True): that mask comes out empty for conversations
    with images in transformers 5.17 (its character offsets predate the image-token expansion).
    """
    import torch

    sot = tokenizer.convert_tokens_to_ids("<start_of_turn>")
    eot = tokenizer.convert_tokens_to_ids("<end_of_turn>")
    header = tokenizer.encode("model\n", add_special_tokens=False)
    mask = torch.zeros_like(input_ids)
    for row, ids in enumerate(input_ids.tolist()):
        i, n = 0, len(ids)
        while i < n:
            if ids[i] == sot and ids[i + 1:i + 1 + len(header)] == header:
                start = i + 1 + len(header)
                end = start
                while end < n and ids[end] != eot:
                    end += 1
                mask[row, start:min(end + 1, n)] = 1  # the reply and its <end_of_turn>
                i = end
            i += 1
    return mask


def collate(processor, conversations: list[list[dict]], never_ids: list[int], max_length: int | None = None
            ) -> dict[str, Any]:
    """Tokenise a batch of conversations (images attached) into model inputs with `labels`."""
    batch = processor.apply_chat_template(conversations, tokenize=True, return_dict=True, return_tensors="pt",
                                          processor_kwargs={"padding": True})
    assistant = assistant_mask(batch["input_ids"], processor.tokenizer)
    batch["labels"] = mask_labels(batch["input_ids"], assistant, batch["attention_mask"], never_ids)
    if max_length is not None and batch["input_ids"].shape[1] > max_length:
        raise ValueError(f"a sample has {batch['input_ids'].shape[1]} tokens, more than max_length={max_length}; "
                         "shorten it or raise max_length (truncating would cut image tokens)")
    return dict(batch)
