"""The training machinery CPT and SFT share. Functions, not a class tree; a recipe calls them top to bottom:

    dist = parallel.setup()  ->  load_model  ->  Stream + loader  ->  train  ->  save_model

- One CPU process (the demo), one GPU, or FSDP2 over every process of a torchrun/accelerate launch
  (parallel.py); bf16 compute with fp32 master weights and optimizer state.
- Batches are length-grouped (data.py) and the loss is computed at labelled positions only (loss.py).
- Gradient accumulation: the micro-batches of one optimizer step are fetched first, their labelled tokens
  counted on every rank, and each micro-batch's loss sum divided by that total, so the step's gradient is the
  mean over every labelled token of the accumulated global batch, not a mean of micro-batch means.
- Warm-up then cosine decay to `min_lr_ratio x learning_rate`.
- Checkpoints (checkpoints.py) every `checkpoint_every` steps at `checkpoint_uri`; a restart resumes from the
  newest complete one, data position included, and ends with the same weights as an uninterrupted run.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)

LogFn = Callable[[dict, int], None]

# Settings that do not change the trajectory: a checkpoint may be resumed with other values of these.
OPERATIONAL = {"log_every", "checkpoint_every", "keep_checkpoints", "num_workers", "compile_layers",
               "activation_checkpointing", "cpu_offload", "save_dtype"}


class TrainConfig(BaseModel):
    """One stage's training settings (CPT and SFT each get one). Unknown keys are refused by name."""
    model_config = ConfigDict(extra="forbid")

    max_steps: int = Field(300, ge=1, description="optimizer steps")
    batch_size: int = Field(16, ge=1, description="samples per process per micro-batch")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    learning_rate: float = Field(2e-3, gt=0, description="peak learning rate")
    warmup_steps: int = Field(20, ge=0, description="linear warm-up steps, then cosine decay")
    min_lr_ratio: float = Field(0.05, ge=0, le=1, description="the cosine decays to this fraction of the peak")
    weight_decay: float = 0.0
    max_grad_norm: float = Field(1.0, description="global gradient-norm clip; 0 = no clipping")
    mixed_precision: Literal["no", "bf16"] = Field("no", description="'bf16': bf16 compute, fp32 master weights")
    freeze_vision: bool = Field(False, description="keep the SigLIP tower fixed")
    freeze_projector: bool = Field(False, description="keep the multimodal projector fixed")
    freeze_language_model: bool = Field(False, description="keep the language model (and embeddings) fixed")
    lora_rank: int = Field(0, ge=0, description="LoRA adapters of this rank on the language model; 0 = full")
    lora_alpha: int = 16
    lora_dropout: float = 0.0
    activation_checkpointing: bool = Field(False, description="recompute layer activations in backward")
    cpu_offload: bool = Field(False, description="FSDP2: keep sharded parameters and optimizer state on CPU")
    compile_layers: bool = Field(False, description="torch.compile each decoder/encoder layer (GPU)")
    loss_chunk_rows: int = Field(1024, ge=1, description="labelled positions projected onto the vocabulary at once")
    window_batches: int = Field(64, ge=1, description="batches per length-sorting window")
    shuffle_units: int = Field(16, ge=1, description="data units (row groups, shards) whose rows are shuffled "
                               "together; more mixes better and holds more rows in memory")
    max_length: int = Field(0, ge=0, description="refuse samples longer than this many tokens; 0 = no limit")
    save_dtype: Literal["bf16", "fp32"] = Field("bf16", description="dtype of the saved model")
    seed: int = 0
    log_every: int = Field(10, ge=1)
    checkpoint_every: int = Field(0, ge=0, description="optimizer steps between checkpoints; 0 = none")
    keep_checkpoints: int = Field(2, ge=1, description="complete checkpoints kept")
    num_workers: int = Field(0, ge=0, description="DataLoader worker processes per rank")
    replay_data: str = Field("", description="text-only conversations mixed in; '' = none")
    replay_fraction: float = Field(0.0, ge=0, le=1, description="replay samples, as a fraction of the stage's own")

    def trajectory(self) -> dict:
        """The settings that shape the weights (a checkpoint must match them to be resumed)."""
        return {k: v for k, v in self.model_dump().items() if k not in OPERATIONAL}


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    """Linear warm-up over `warmup_steps`, then cosine decay to `min_lr_ratio` at `max_steps`."""
    def f(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        span = max(1, cfg.max_steps - cfg.warmup_steps)
        progress = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return f


def load_model(model_dir: Path, cfg: TrainConfig, dist):
    """(module to train, the VLM inside it, peft model or None), placed and sharded.

    Sharded: rank 0 reads the weights, the other ranks build the model on the meta device, every rank shards
    it, and the weights are broadcast from rank 0 into the shards: one copy in host memory per node, not one
    per process."""
    from components.common.models import check_weights
    from components.train import parallel
    from components.train.loss import LabelledLoss

    check_weights(model_dir)
    if cfg.cpu_offload and dist.device.type != "cuda":
        raise ValueError("cpu_offload moves FSDP2's sharded state from the GPUs to host memory: it needs GPUs")
    vlm = _build(model_dir, meta=dist.sharded and not dist.main)
    parallel.freeze(vlm, cfg.freeze_vision, cfg.freeze_projector, cfg.freeze_language_model)
    peft_model = None
    if cfg.lora_rank:
        peft_model = parallel.add_lora(vlm, cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)
        vlm = peft_model.get_base_model()
    if cfg.activation_checkpointing:
        parallel.checkpoint_activations(vlm)
    module = LabelledLoss(vlm, cfg.loss_chunk_rows, sharded=dist.sharded)
    if cfg.compile_layers:   # before sharding: each layer compiled once, then wrapped by FSDP2
        parallel.compile_layers(module)
    if not dist.sharded:
        module.to(dist.device)
    else:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        full = dict(module.state_dict()) if dist.main else {}
        buffers = dict(module.named_buffers())
        parallel.shard(module, dist, cfg.mixed_precision, cfg.cpu_offload)
        module.to_empty(device="cpu" if cfg.cpu_offload else dist.device)   # offloaded shards live in host memory
        for m in module.modules():   # buffers (position ids, rotary tables) are used where the compute is
            for name, buf in m._buffers.items():
                if buf is not None:
                    m._buffers[name] = buf.to(dist.device)
        set_model_state_dict(module, full, options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True))
        for name, buf in module.named_buffers():  # non-persistent buffers (rotary tables) are not in a state dict
            if dist.main:
                buf.copy_(buffers[name].to(buf.device))
            torch.distributed.broadcast(buf, src=0)
        del full
    return module, vlm, peft_model


def _build(model_dir: Path, meta: bool):
    from transformers import AutoConfig, Gemma3ForConditionalGeneration

    if not meta:
        return Gemma3ForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32,
                                                              attn_implementation="sdpa")
    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        return Gemma3ForConditionalGeneration._from_config(config, dtype=torch.float32, attn_implementation="sdpa")


def make_loader(stream, processor, model_config, cfg: TrainConfig, dist, start: int):
    """Collated micro-batches for this rank from micro-batch `start` on (data.iterable)."""
    from functools import partial

    from torch.utils.data import DataLoader

    from components.common.chat import collate, special_image_ids
    from components.train.data import iterable

    fn = partial(collate, processor, never_ids=special_image_ids(model_config), max_length=cfg.max_length or None)
    # its own generator: iter() would otherwise draw from the global one, restored from the checkpoint
    return DataLoader(iterable(stream, fn, dist.rank, dist.world, start), batch_size=None,
                      num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0,
                      prefetch_factor=4 if cfg.num_workers else None, generator=torch.Generator(),
                      pin_memory=dist.device.type == "cuda")


MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "pixel_values", "labels")


def train(module, loader, cfg: TrainConfig, dist, log_metrics: LogFn, checkpoints=None,
          flops: Callable[[dict], float] | None = None, peak_flops: float | None = None) -> dict:
    """Run up to `cfg.max_steps` optimizer steps; returns steps, first and final loss, every loss, wall time."""
    from components.train import parallel

    params = [p for p in module.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay,
                                  fused=dist.device.type == "cuda")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    step = position = 0   # optimizer steps taken; micro-batches this rank has consumed
    latest = checkpoints.latest() if checkpoints else None
    if latest:
        restored = checkpoints.load(latest, module, optimizer, scheduler, dist)
        step, position = restored.step, restored.position
    batches = iter(loader(position))
    autocast = torch.autocast(dist.device.type, dtype=torch.bfloat16,
                              enabled=cfg.mixed_precision == "bf16" and not dist.sharded)
    module.train()
    losses: list[float] = []
    window = _Window(dist, flops, peak_flops)
    started = time.perf_counter()
    while step < cfg.max_steps:
        micro = [next(batches) for _ in range(cfg.grad_accum)]
        position += len(micro)
        loss_sum, labelled = accumulate(module, micro, dist, autocast)
        for batch in micro:
            window.add(batch)
        grad_norm = parallel.grad_norm_clip(params, cfg.max_grad_norm)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        step += 1
        loss = float(dist.all_sum(loss_sum) / max(1, labelled))
        losses.append(loss)
        if step % cfg.log_every == 0 or step == cfg.max_steps:
            figures = window.flush()
            if dist.main:
                log_metrics({"train/loss": loss, "train/lr": scheduler.get_last_lr()[0], "train/grad_norm": grad_norm,
                             **figures}, step)
        if checkpoints and cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.max_steps:
            checkpoints.save(step, position, module, optimizer, scheduler, dist)
    elapsed = time.perf_counter() - started
    return {"steps": step, "first_loss": losses[0] if losses else math.nan,
            "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])) if losses else math.nan,
            "train_seconds": elapsed, "losses": losses, "resumed_from": latest or ""}


def accumulate(module, micro: list[dict], dist, autocast=None) -> tuple[torch.Tensor, int]:
    """Forward and backward over the micro-batches of one optimizer step; returns (this rank's loss sum, labelled
    tokens of the step on all ranks). Each micro-batch's loss sum is divided by the step's labelled tokens on
    every rank, so the gradient is the mean over all of them; FSDP averages gradients over ranks, hence the
    world size in the scale. Under FSDP2 gradients are reduce-scattered after every micro-batch and add up in
    their shards: skipping the sync would keep a whole unsharded fp32 gradient per GPU (110 GB at 27B)."""
    import contextlib

    labelled = int(dist.all_sum(torch.tensor(sum(int((b["labels"][:, 1:] != -100).sum()) for b in micro),
                                             device=dist.device)))
    scale = dist.world / max(1, labelled)
    loss_sum = torch.zeros((), device=dist.device)
    for batch in micro:
        inputs = {k: batch[k].to(dist.device, non_blocking=True) for k in MODEL_INPUTS if k in batch}
        with autocast or contextlib.nullcontext():
            part, _ = module(**inputs)
        (part * scale).backward()
        loss_sum += part.detach()
    return loss_sum, labelled


class _Window:
    """Throughput figures since the last log line: samples/s, useful tokens/s, padding, MFU, peak memory."""

    def __init__(self, dist, flops=None, peak_flops=None):
        self.dist, self.flops_fn, self.peak_flops = dist, flops, peak_flops
        self.reset()

    def reset(self):
        self.samples = self.tokens = self.slots = self.flops = 0
        self.t0 = time.perf_counter()

    def add(self, batch) -> None:
        self.samples += int(batch["input_ids"].shape[0])
        self.tokens += int(batch["attention_mask"].sum())
        self.slots += int(batch["attention_mask"].numel())
        if self.flops_fn:
            self.flops += self.flops_fn(batch)

    def flush(self) -> dict:
        dt = time.perf_counter() - self.t0
        totals = self.dist.all_sum(torch.tensor([self.samples, self.tokens, self.slots, self.flops],
                                                dtype=torch.float64, device=self.dist.device)).tolist()
        samples, tokens, slots, flops = totals
        out = {"train/samples_per_s": samples / dt, "train/tokens_per_s": tokens / dt,
               "train/padding_fraction": 1 - tokens / max(1, slots)}
        if flops and self.peak_flops:
            out["train/mfu"] = flops / dt / (self.peak_flops * self.dist.world)
        if self.dist.device.type == "cuda":
            out["train/peak_memory_gb"] = torch.cuda.max_memory_allocated(self.dist.device) / 2 ** 30
        self.reset()
        return out


def save_model(module, vlm, peft_model, processor, out_dir: Path, cfg: TrainConfig, dist, init_model: Path) -> None:
    """A save_pretrained folder (safetensors shards, bf16 unless fp32 is asked) with the processor; LoRA adapters
    merged into the weights. Gathered from the shards onto rank 0, written by rank 0."""
    from components.train import parallel

    full = parallel.full_state_dict(module, dist)
    if dist.main:
        dtype = torch.bfloat16 if cfg.save_dtype == "bf16" else torch.float32
        state = {k.removeprefix("vlm."): v for k, v in full.items()}
        model = vlm
        if peft_model is not None:
            model = _merged(init_model, state, cfg) if dist.sharded else peft_model.merge_and_unload()
            state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        elif dist.sharded:
            model = _build(init_model, meta=True)
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        out_dir.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(out_dir, state_dict=state, safe_serialization=True, max_shard_size="5GB")
        _record_dtype(out_dir / "config.json", str(dtype).removeprefix("torch."))
        processor.save_pretrained(out_dir)
    dist.barrier()


def _record_dtype(config_json: Path, dtype: str) -> None:
    """save_pretrained writes the dtype of the model in memory (fp32 master weights); record the saved one, so
    that `dtype="auto"` loads the weights as they are stored."""
    import json

    config = json.loads(config_json.read_text())
    for section in (config, *(v for v in config.values() if isinstance(v, dict) and "dtype" in v)):
        section["dtype"] = dtype
    config_json.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def _merged(init_model: Path, state: dict, cfg: TrainConfig):
    """Rank 0 of a sharded LoRA run: the base model with the trained adapters loaded and merged in (peft)."""
    from components.train import parallel

    peft_model = parallel.add_lora(_build(init_model, meta=True), cfg.lora_rank, cfg.lora_alpha, cfg.lora_dropout)
    peft_model.get_base_model().load_state_dict(state, assign=True)   # the gathered tensors, not a copy
    return peft_model.merge_and_unload()
