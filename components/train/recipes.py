"""The two training recipes. Each reads top to bottom: setup -> data -> model -> train -> save.

Stage 1, CPT: caption modeling on curated image-caption pairs, from the base model.
Stage 2, SFT: instruction tuning on conversations, from the CPT model; loss on assistant turns only.
Both are the same machinery (loop.py) fed different samples. Neither touches MLflow: each returns a
`TrainResult` and streams figures through the `log_metrics(metrics, step)` callback it is given, which only
rank 0 calls. Run in one process, or once per process of a torchrun/accelerate launch (launch.py).
"""
from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from components.common import storage
from components.common.tracking import Logged
from components.train import loop
from components.train.loop import TrainConfig

LogFn = Callable[[dict, int], None]
STAGES = {"cpt": "captions", "sft": "conversations"}


def _no_log(metrics: dict, step: int) -> None:
    pass


class OutOfMemory(RuntimeError):
    """Training ran out of GPU memory; the message says what `seavl plan` advises."""


@dataclass
class TrainResult:
    """What one stage did: optimizer steps, losses (every step), wall time, samples in its data."""
    steps: int
    first_loss: float
    final_loss: float
    train_seconds: float
    samples: int = 0
    losses: list[float] = field(default_factory=list)
    resumed_from: str = ""

    def logged(self, stage: str, cfg: TrainConfig, init_model: str, data: str) -> Logged:
        """The stage's config as params; its first and final loss and wall time as `<stage>/...` figures."""
        return Logged(params={**cfg.model_dump(), "init_model": init_model, "data": data},
                      pipeline_metrics={f"{stage}/first_loss": self.first_loss, f"{stage}/final_loss": self.final_loss,
                                        f"{stage}/train_seconds": self.train_seconds})


def run(stage: str, init_model: str, data: str, out: str, cfg: TrainConfig, log_metrics: LogFn = _no_log,
        checkpoint_uri: str = "", data_id: str = "") -> TrainResult:
    """Train one stage from `init_model` on `data` into the save_pretrained folder `out` (local or s3://).

    `checkpoint_uri`: where checkpoints go and where a restart finds them ('' = no checkpoints). `data_id`
    names the data in the checkpoints' identity (its content fingerprint when known; the URI otherwise)."""
    import torch
    from accelerate.utils import set_seed
    from transformers import AutoConfig

    from components.common.models import check_weights, load_processor
    from components.train import parallel, plan
    from components.train.checkpoints import Checkpoints
    from components.train.data import Stream

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}: one of {', '.join(STAGES)}")
    dist = parallel.setup()
    set_seed(cfg.seed)
    model_dir = _localize(init_model, dist)
    check_weights(model_dir)   # before transformers reads it: a folder it cannot use is named as such
    processor = load_processor(model_dir)
    model_config = AutoConfig.from_pretrained(model_dir)

    def count_tokens(texts: list[str]) -> list[int]:
        return [len(ids) for ids in processor.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    stream = Stream(STAGES[stage], data, cfg.batch_size, replay_uri=cfg.replay_data,
                    replay_fraction=cfg.replay_fraction, window_batches=cfg.window_batches,
                    shuffle_units=cfg.shuffle_units, seed=cfg.seed,
                    image_tokens=model_config.mm_tokens_per_image, count_tokens=count_tokens)
    module, vlm, peft_model = loop.load_model(model_dir, cfg, dist)
    checkpoints = None
    if checkpoint_uri:
        identity = {"stage": stage, "init_model": _model_identity(model_dir), "data": data_id or data,
                    "config": cfg.trajectory(), "world_size": dist.world}
        checkpoints = Checkpoints(checkpoint_uri, identity, keep=cfg.keep_checkpoints)
    counts = plan.counts(model_config)
    lora = cfg.lora_rank > 0

    def flops(batch: dict) -> float:
        return plan.batch_flops(model_config, counts, batch, cfg.freeze_vision, lora)

    try:
        result = loop.train(module, lambda start: loop.make_loader(stream, processor, model_config, cfg, dist, start),
                            cfg, dist, log_metrics, checkpoints, flops=flops, peak_flops=plan.peak_flops(dist.device))
    except torch.OutOfMemoryError as err:
        raise OutOfMemory(_oom_advice(model_dir, cfg, dist, err)) from err
    if storage.is_remote(out):
        with tempfile.TemporaryDirectory() as tmp:
            loop.save_model(module, vlm, peft_model, processor, Path(tmp) / "model", cfg, dist, model_dir)
            if dist.main:
                storage.publish(Path(tmp) / "model", out)
    elif dist.main:   # written beside `out` and put in its place whole: a killed step leaves no half model
        with storage.folder_in_place(Path(out)) as work:
            loop.save_model(module, vlm, peft_model, processor, work, cfg, dist, model_dir)
    else:
        loop.save_model(module, vlm, peft_model, processor, Path(out), cfg, dist, model_dir)
    dist.barrier()
    if dist.sharded:
        torch.distributed.destroy_process_group()
    return TrainResult(samples=len(stream), **result)


def _oom_advice(model_dir: Path, cfg: TrainConfig, dist, err: Exception) -> str:
    from components.train import plan

    seq_len = cfg.max_length or 2048
    req = plan.Request(model=str(model_dir), gpus=dist.world, batch=cfg.batch_size, seq_len=seq_len,
                       lora=cfg.lora_rank > 0, activation_checkpointing=cfg.activation_checkpointing,
                       freeze_vision=cfg.freeze_vision, cpu_offload=cfg.cpu_offload,
                       gpu_memory_gb=_gpu_memory_gb(dist), loss_chunk_rows=cfg.loss_chunk_rows)
    advice = plan.advise(req)
    return (f"out of GPU memory ({str(err).splitlines()[0]}). seavl plan (assuming {seq_len}-token samples) "
            f"advises: " + ("; ".join(advice) if advice else "a smaller batch_size or more GPUs"))


def _gpu_memory_gb(dist) -> float:
    import torch

    if dist.device.type != "cuda":
        return 80.0
    return torch.cuda.get_device_properties(dist.device).total_memory / 2 ** 30


def _localize(uri: str, dist) -> Path:
    """The model folder on this node: the node's first process copies it, the others then find it cached."""
    first = dist.local_rank == 0
    if first:
        path = storage.localize(uri)
    dist.barrier()
    return path if first else storage.localize(uri)


def _model_identity(model_dir: Path) -> str:
    """The initial model in a checkpoint's identity: a hash of its config.json and of its weight files' names and
    sizes (cheap at 50 GB; the same model copied elsewhere keeps it)."""
    model_dir = Path(model_dir)
    h = hashlib.sha256((model_dir / "config.json").read_bytes())
    for p in sorted(model_dir.glob("*.safetensors")):
        h.update(f"{p.name}:{p.stat().st_size}".encode())
    return h.hexdigest()[:16]


def cpt(base_model: str, captions: str, out_dir: Path, cfg: TrainConfig, log_metrics: LogFn = _no_log,
        checkpoint_uri: str = "", data_id: str = "") -> TrainResult:
    """Continued pre-training on captions (labels on caption tokens only), with optional text replay."""
    return run("cpt", base_model, captions, str(out_dir), cfg, log_metrics, checkpoint_uri, data_id)


def sft(init_model: str, conversations: str, out_dir: Path, cfg: TrainConfig, log_metrics: LogFn = _no_log,
        checkpoint_uri: str = "", data_id: str = "") -> TrainResult:
    """Supervised fine-tuning on conversations (labels on assistant turns only), with optional text replay."""
    return run("sft", init_model, conversations, str(out_dir), cfg, log_metrics, checkpoint_uri, data_id)
