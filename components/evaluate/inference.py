"""Running a model on evaluation requests: greedy generation, and option log-likelihood for multiple choice.

On a GPU machine the model is loaded in bf16 and placed on the step's GPUs (`device_map="auto"`: spread layer by
layer over them when it does not fit one); on the CPU it stays fp32. Requests are batched by length (sorted, so
that a batch pads little), left-padded, answered greedily, and returned in their original order.

With a small vocabulary single-letter answers may not be single tokens, so multiple-choice items are
scored cloze-style: each option is the model's reply to the question and the option with the highest
mean log-probability per token wins (length-normalised, so long options are not penalised).
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def load(model_dir: Path, gpus: int = 1):
    """(model, processor): bf16 on the first `gpus` GPUs when there are any (spread layer by layer when it does
    not fit one), fp32 on the CPU; in eval mode."""
    import torch

    from components.common.models import load_vlm

    if torch.cuda.is_available():
        visible = torch.cuda.device_count()
        memory = {i: torch.cuda.get_device_properties(i).total_memory for i in range(min(gpus, visible))}
        model, processor = load_vlm(model_dir, dtype="bfloat16", device="auto", max_memory=memory)
    else:
        model, processor = load_vlm(model_dir)
    model.eval()
    return model, processor


def _on_model(batch: dict, model) -> dict:
    """The batch where the model reads its inputs (the input embeddings' device: the first GPU of a spread
    model), images in the model's dtype."""
    device = model.get_input_embeddings().weight.device
    batch = {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}
    if "pixel_values" in batch:
        batch["pixel_values"] = batch["pixel_values"].to(model.dtype)
    return batch


def _length(conversation: list[dict]) -> int:
    """A cheap size of a request for batching: characters of text, an image counted as 1,000."""
    size = 0
    for m in conversation:
        content = m["content"]
        for c in ([{"type": "text", "text": content}] if isinstance(content, str) else content):
            size += 1000 if c.get("type") == "image" else len(c.get("text", ""))
    return size


def _batches(conversations: list, batch_size: int) -> list[list[int]]:
    """Positions grouped into batches of similar length, longest first (an out-of-memory shows at once)."""
    order = sorted(range(len(conversations)), key=lambda i: -_length(conversations[i]))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def generate(model, processor, conversations: list[list[dict]], max_new_tokens: int, batch_size: int,
             on_batch: Callable[[list[int], list[str]], None] | None = None, progress: str = "") -> list[str]:
    """Greedy replies to each conversation (images attached), decoded without special tokens, in input order.
    `on_batch(positions, replies)` is called as each batch is done (the response cache writes them)."""
    import torch
    from tqdm import tqdm

    tokenizer = processor.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the last position of every row
    outputs: list[str | None] = [None] * len(conversations)
    try:
        for positions in tqdm(_batches(conversations, batch_size), desc=progress or "generate", unit="batch",
                              disable=not conversations):
            batch = processor.apply_chat_template([conversations[i] for i in positions], add_generation_prompt=True,
                                                  tokenize=True, return_dict=True, return_tensors="pt",
                                                  processor_kwargs={"padding": True})
            batch = _on_model(batch, model)
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
            replies = [r.strip() for r in processor.batch_decode(out[:, batch["input_ids"].shape[1]:],
                                                                 skip_special_tokens=True)]
            for i, reply in zip(positions, replies, strict=True):
                outputs[i] = reply
            if on_batch is not None:
                on_batch(positions, replies)
    finally:
        tokenizer.padding_side = side
    return outputs


def option_scores(model, processor, conversations: list[list[dict]], batch_size: int) -> list[float]:
    """Mean log-probability per token of each conversation's assistant turns."""
    import torch

    from components.common.chat import IGNORE, collate, special_image_ids

    never = special_image_ids(model.config)
    scores: list[float | None] = [None] * len(conversations)
    for positions in _batches(conversations, batch_size):
        batch = collate(processor, [conversations[i] for i in positions], never)
        labels = batch.pop("labels")
        batch = _on_model(batch, model)
        with torch.no_grad():
            logits = model(**batch).logits[:, :-1].float()
        target = labels[:, 1:].to(logits.device)
        mask = target != IGNORE
        logp = torch.log_softmax(logits, dim=-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        for i, value in zip(positions, ((logp * mask).sum(1) / mask.sum(1).clamp(min=1)).tolist(), strict=True):
            scores[i] = value
    return scores
