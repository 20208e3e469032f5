"""Running a model on evaluation requests: greedy generation, and option log-likelihood for multiple choice.

With a small vocabulary single-letter answers may not be single tokens, so multiple-choice items are
scored cloze-style: each option is the model's reply to the question and the option with the highest
mean log-probability per token wins (length-normalised, so long options are not penalised).
"""
from __future__ import annotations

from pathlib import Path


def load(model_dir: Path):
    from components.common.models import load_vlm

    model, processor = load_vlm(model_dir)
    model.eval()
    return model, processor


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]


def generate(model, processor, conversations: list[list[dict]], max_new_tokens: int, batch_size: int) -> list[str]:
    """Greedy replies to each conversation (images attached), decoded without special tokens."""
    import torch

    tokenizer = processor.tokenizer
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation continues from the last position of every row
    outputs: list[str] = []
    try:
        for chunk in _chunks(conversations, batch_size):
            batch = processor.apply_chat_template(chunk, add_generation_prompt=True, tokenize=True,
                                                  return_dict=True, return_tensors="pt",
                                                  processor_kwargs={"padding": True})
            with torch.no_grad():
                out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False)
            outputs += processor.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    finally:
        tokenizer.padding_side = side
    return [o.strip() for o in outputs]


def option_scores(model, processor, conversations: list[list[dict]], batch_size: int) -> list[float]:
    """Mean log-probability per token of each conversation's assistant turns."""
    import torch

    from components.common.chat import IGNORE, collate, special_image_ids

    never = special_image_ids(model.config)
    scores: list[float] = []
    for chunk in _chunks(conversations, batch_size):
        batch = collate(processor, chunk, never)
        labels = batch.pop("labels")
        with torch.no_grad():
            logits = model(**batch).logits[:, :-1].float()
        target = labels[:, 1:]
        mask = target != IGNORE
        logp = torch.log_softmax(logits, dim=-1).gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
        scores += ((logp * mask).sum(1) / mask.sum(1).clamp(min=1)).tolist()
    return scores


def answer(model, processor, requests: list, max_new_tokens: int, batch_size: int) -> list:
    """The model's answer to each request, in order: the reply (str) to a `Generate`, the index of the most
    likely option (int; the first on ties) of a `Choose`."""
    from components.evaluate.tasks import Generate

    answers: list = [None] * len(requests)
    gen = [i for i, r in enumerate(requests) if isinstance(r, Generate)]
    replies = generate(model, processor, [requests[i].conversation for i in gen], max_new_tokens, batch_size)
    for i, reply in zip(gen, replies, strict=True):
        answers[i] = reply
    choose = [i for i, r in enumerate(requests) if not isinstance(r, Generate)]
    flat = [option for i in choose for option in requests[i].options]
    logp = iter(option_scores(model, processor, flat, batch_size))
    for i in choose:
        values = [next(logp) for _ in requests[i].options]
        answers[i] = max(range(len(values)), key=values.__getitem__)
    return answers
