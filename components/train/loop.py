"""The training machinery CPT and SFT share: setup, the loop, checkpoints, saving. Functions, not a class tree.

A recipe calls them top to bottom: `init` (seeding, precision, accelerate) -> `load_model` -> `make_loader`
-> `train` -> `save_model`. Checkpoints are accelerate states (model, optimizer, scheduler, RNG) every
`checkpoint_every` steps; a restarted step resumes from the newest one and skips the batches it had seen.
"""
from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from pydantic import BaseModel, Field

log = logging.getLogger(__name__)


class TrainConfig(BaseModel):
    """One stage's training settings (CPT and SFT each get one)."""
    max_steps: int = Field(300, description="optimizer steps")
    batch_size: int = Field(16, description="samples per device per micro-batch")
    grad_accum: int = Field(1, description="micro-batches per optimizer step")
    learning_rate: float = 2e-3
    warmup_steps: int = Field(20, description="linear warm-up, then linear decay to lr_floor x lr")
    lr_floor: float = 0.05
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    mixed_precision: str = Field("no", description="'no', 'bf16' or 'fp16' (accelerate)")
    freeze_vision: bool = Field(False, description="keep the SigLIP tower fixed (train projector + LM)")
    seed: int = 0
    log_every: int = 10
    checkpoint_every: int = Field(0, description="0 = only at the end")
    num_workers: int = 0
    replay_data: str = Field("", description="text-only conversations (JSONL) mixed in; '' = none")
    replay_fraction: float = Field(0.0, description="replay samples added, as a fraction of the stage's own")


def init(cfg: TrainConfig, project_dir: Path):
    """All side effects of setup in one place: seeding, precision, the Accelerator (and its process group)."""
    from accelerate import Accelerator
    from accelerate.utils import ProjectConfiguration, set_seed

    set_seed(cfg.seed)
    return Accelerator(
        mixed_precision=cfg.mixed_precision, gradient_accumulation_steps=cfg.grad_accum,
        project_config=ProjectConfiguration(project_dir=str(project_dir), automatic_checkpoint_naming=True,
                                            total_limit=2),
    )


def load_model(model_dir: Path, freeze_vision: bool = False):
    """A Gemma-3 VLM and its processor from a save_pretrained folder, in fp32 for training."""
    from components.common.models import load_vlm

    model, processor = load_vlm(model_dir)
    if freeze_vision:
        model.model.vision_tower.requires_grad_(False)
    return model, processor


def make_loader(samples, processor, model_config, cfg: TrainConfig):
    import torch
    from torch.utils.data import DataLoader

    from components.common.chat import collate, special_image_ids

    generator = torch.Generator().manual_seed(cfg.seed)
    return DataLoader(samples, batch_size=cfg.batch_size, shuffle=True, drop_last=len(samples) > cfg.batch_size,
                      generator=generator, num_workers=cfg.num_workers,
                      collate_fn=partial(collate, processor, never_ids=special_image_ids(model_config)))


def lr_lambda(cfg: TrainConfig) -> Callable[[int], float]:
    def f(step: int) -> float:
        warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
        decay = max(cfg.lr_floor, 1.0 - step / max(1, cfg.max_steps))
        return warm * decay
    return f


def train(accelerator, model, loader, cfg: TrainConfig, log_metrics: Callable[[dict, int], None]) -> dict:
    """Run `cfg.max_steps` optimizer steps; returns steps, first and final loss, every loss, wall time."""
    import torch

    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(cfg))
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    step, skip = resume(accelerator, len(loader), cfg)
    model.train()
    losses: list[float] = []
    window = {"samples": 0, "tokens": 0, "t0": time.perf_counter()}
    started = time.perf_counter()
    epoch = step * cfg.grad_accum // max(1, len(loader))
    while step < cfg.max_steps:
        if hasattr(loader, "set_epoch"):
            loader.set_epoch(epoch)
        batches = accelerator.skip_first_batches(loader, skip) if skip else loader
        skip = 0
        for batch in batches:
            with accelerator.accumulate(model):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if accelerator.sync_gradients and cfg.max_grad_norm:
                    accelerator.clip_grad_norm_(params, cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            window["samples"] += batch["input_ids"].shape[0]
            window["tokens"] += int(batch["attention_mask"].sum())
            if not accelerator.sync_gradients:
                continue
            step += 1
            losses.append(loss.item())
            if step % cfg.log_every == 0 or step == cfg.max_steps:
                dt = time.perf_counter() - window["t0"]
                log_metrics({"train/loss": losses[-1], "train/lr": scheduler.get_last_lr()[0],
                             "train/samples_per_s": window["samples"] / dt,
                             "train/tokens_per_s": window["tokens"] / dt, "train/epoch": epoch}, step)
                window.update(samples=0, tokens=0, t0=time.perf_counter())
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0 and step < cfg.max_steps:
                accelerator.save_state()
            if step >= cfg.max_steps:
                break
        epoch += 1
    elapsed = time.perf_counter() - started
    return {"steps": step, "first_loss": losses[0] if losses else math.nan,
            "final_loss": sum(losses[-10:]) / max(1, len(losses[-10:])) if losses else math.nan,
            "train_seconds": elapsed, "losses": losses}


def resume(accelerator, batches_per_epoch: int, cfg: TrainConfig) -> tuple[int, int]:
    """Load the newest checkpoint under the project dir, if any; returns (step, batches to skip this epoch)."""
    ckpt_root = Path(accelerator.project_dir) / "checkpoints"
    ckpts = sorted(ckpt_root.glob("checkpoint_*"), key=lambda p: int(p.name.split("_")[-1])) \
        if ckpt_root.exists() else []
    if not ckpts:
        return 0, 0
    accelerator.load_state(str(ckpts[-1]))
    accelerator.project_configuration.iteration = int(ckpts[-1].name.split("_")[-1]) + 1
    step = accelerator._schedulers[0].scheduler.last_epoch  # the scheduler steps once per optimizer step
    micro = step * cfg.grad_accum
    log.info("resumed from %s at step %d", ckpts[-1], step)
    return step, micro % max(1, batches_per_epoch)


def save_model(accelerator, model, processor, out_dir: Path) -> None:
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        unwrapped.save_pretrained(out_dir, safe_serialization=True)
        processor.save_pretrained(out_dir)

