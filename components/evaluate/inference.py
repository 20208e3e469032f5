"""Running a model on evaluation requests: greedy generation, and option log-likelihood (a diagnostic).

Two backends. `transformers`: on a GPU machine the model is loaded in bf16 and placed on the step's GPUs
(`device_map="auto"`: spread layer by layer over them when it does not fit one); on the CPU it stays fp32.
Requests are batched by length (sorted, so that a batch pads little), left-padded, answered greedily, and returned
in their original order. `vllm` (when installed, on GPUs; SEA-HELM serves its models with vLLM): the model is
served in this process, tensor-parallel over the step's GPUs, and vLLM schedules the requests itself; prompts
are rendered with the model's own chat template, images passed beside them. `auto` takes vLLM where it can.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

BACKENDS = ("auto", "transformers", "vllm")


class BackendUnavailable(RuntimeError):
    """The inference backend asked for cannot run here (unknown, or vLLM without the package or a GPU)."""


def vllm_available() -> bool:
    import importlib.util

    import torch

    return importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


def load(model_dir: Path, gpus: int = 1, backend: str = "auto", max_images: int = 2):
    """(model, processor): a `VllmModel` (backend vllm, or auto where vLLM is installed and there are GPUs), else
    the transformers model: bf16 on the first `gpus` GPUs when there are any (spread layer by layer when it does
    not fit one), fp32 on the CPU; in eval mode."""
    import torch

    from components.common.models import load_vlm

    if backend not in BACKENDS:
        raise BackendUnavailable(f"unknown inference backend {backend!r}; known: {BACKENDS}")
    if backend == "vllm" or (backend == "auto" and vllm_available()):
        if not vllm_available():
            raise BackendUnavailable("backend 'vllm' needs the vllm package and a GPU (the GPU image is built with "
                               "WITH_VLLM=1); use backend 'transformers' or 'auto'")
        from components.common.models import check_weights, load_processor

        check_weights(Path(model_dir))
        return VllmModel(Path(model_dir), gpus, max_images), load_processor(Path(model_dir))
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

    if isinstance(model, VllmModel):
        return model.generate(processor, conversations, max_new_tokens, batch_size, on_batch, progress)
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
    """Mean log-probability per token of each conversation's assistant turns (transformers backend)."""
    import torch

    if isinstance(model, VllmModel):
        raise BackendUnavailable("option log-likelihoods (the cloze diagnostic) need the transformers backend")

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


class VllmModel:
    """A model served by vLLM in this process: bf16, tensor-parallel over `gpus`, greedy, at most `max_images`
    images per prompt (MARVL shows two)."""

    def __init__(self, model_dir: Path, gpus: int, max_images: int = 2):
        from vllm import LLM

        self.llm = LLM(model=str(model_dir), tensor_parallel_size=gpus, dtype="bfloat16", seed=0,
                       limit_mm_per_prompt={"image": max_images})

    @staticmethod
    def request(processor, conversation: list[dict]) -> dict:
        """The prompt as the model's chat template renders it (an image placeholder where each image goes) and
        the images, in order."""
        prompt = processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
        images = [c["image"] for m in conversation if isinstance(m["content"], list) for c in m["content"]
                  if c.get("type") == "image"]
        return {"prompt": prompt, "multi_modal_data": {"image": images}} if images else {"prompt": prompt}

    def generate(self, processor, conversations: list[list[dict]], max_new_tokens: int, batch_size: int,
                 on_batch: Callable[[list[int], list[str]], None] | None = None, progress: str = "") -> list[str]:
        """Greedy replies; handed to vLLM `batch_size` x 8 at a time, so that `on_batch` keeps what is done."""
        from tqdm import tqdm
        from vllm import SamplingParams

        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        step = batch_size * 8
        outputs: list[str] = []
        for start in tqdm(range(0, len(conversations), step), desc=progress or "generate", unit="chunk",
                          disable=not conversations):
            chunk = conversations[start:start + step]
            done = self.llm.generate([self.request(processor, c) for c in chunk], params, use_tqdm=False)
            replies = [d.outputs[0].text.strip() for d in done]
            outputs += replies
            if on_batch is not None:
                on_batch(list(range(start, start + len(chunk))), replies)
        return outputs
