"""Processes, devices and how the model is spread over them: one CPU process, one GPU, or FSDP2 across GPUs and
nodes. Functions with side effects on the model, each named for what it does.

Sharding is torch's FSDP2 (`fully_shard`), with the policy accelerate's FSDP2 plugin applies: one group per
decoder layer (Gemma3DecoderLayer) and per SigLIP encoder layer, the rest (embeddings tied to the output
projection, projector, norms) in the root group, parameters and optimizer state kept in fp32 and sharded,
compute in bf16 with fp32 gradient reduction. It is called directly rather than through
`Accelerator.prepare`, because accelerate engages FSDP only on GPU backends; calling it directly runs the same
path on two CPU processes (gloo, the tests) as on GPUs (NCCL).
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
from torch import nn

from components.train.plan import LORA_TARGETS

log = logging.getLogger(__name__)

SHARDED_LAYERS = ("Gemma3DecoderLayer", "SiglipEncoderLayer")


@dataclass
class Dist:
    """This process's place: rank, world size, device; `sharded` when FSDP2 is in use."""
    rank: int
    world: int
    local_rank: int
    device: torch.device
    sharded: bool = False

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            torch.distributed.barrier()

    def all_sum(self, value: torch.Tensor) -> torch.Tensor:
        if self.world > 1:
            value = value.clone()
            torch.distributed.all_reduce(value)
        return value


def setup(device: str = "auto") -> Dist:
    """Join the process group when launched by torchrun/accelerate (WORLD_SIZE > 1); pick the device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available() and device != "cpu"
    if cuda:
        torch.cuda.set_device(local_rank)
    if world > 1 and not torch.distributed.is_initialized():
        # Rank 0 alone downloads, loads and saves a 27B model while the others wait in a collective.
        torch.distributed.init_process_group(backend="cpu:gloo,cuda:nccl" if cuda else "gloo",
                                             timeout=timedelta(hours=2))
    return Dist(rank, world, local_rank, torch.device("cuda", local_rank) if cuda else torch.device("cpu"),
                sharded=world > 1)


def freeze(model: nn.Module, vision: bool, projector: bool, language_model: bool) -> None:
    """Keep the chosen parts fixed: the SigLIP tower, the multimodal projector, the language model."""
    parts = {"vision_tower": vision, "multi_modal_projector": projector, "language_model": language_model}
    for name, frozen in parts.items():
        if frozen:
            getattr(model.model, name).requires_grad_(False)
    if language_model:
        model.lm_head.requires_grad_(False)   # tied to the embeddings: frozen with them
    if not any(p.requires_grad for p in model.parameters()):
        raise ValueError("every part of the model is frozen: nothing would train")


def add_lora(model: nn.Module, rank: int, alpha: int, dropout: float, targets: tuple[str, ...] = LORA_TARGETS):
    """LoRA adapters (peft) on the language model's projections; the base weights are frozen. Returns the peft
    model; its base model, with the adapters injected in place, is what the loop trains."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=alpha, lora_dropout=dropout,
                        target_modules=rf".*language_model.*\.({'|'.join(targets)})")
    return get_peft_model(model, config)


def checkpoint_activations(model: nn.Module) -> None:
    """Recompute each decoder and encoder layer's activations in the backward pass instead of keeping them."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if hasattr(model, "enable_input_require_grads"):
        model.enable_input_require_grads()


def shard(module: nn.Module, dist: Dist, mixed_precision: str, cpu_offload: bool) -> nn.Module:
    """FSDP2 over every rank: per-layer groups, then the root (see the module docstring)."""
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    kwargs = {}
    if mixed_precision == "bf16":
        kwargs["mp_policy"] = MixedPrecisionPolicy(param_dtype=torch.bfloat16, reduce_dtype=torch.float32)
    if cpu_offload:
        kwargs["offload_policy"] = CPUOffloadPolicy()
    for m in module.modules():
        if type(m).__name__ in SHARDED_LAYERS:
            fully_shard(m, **kwargs)
    fully_shard(module, **kwargs)
    return module


def compile_layers(module: nn.Module) -> None:
    """Regional compilation: each decoder and encoder layer compiled on its own (one graph reused per layer)."""
    torch._dynamo.config.cache_size_limit = max(64, torch._dynamo.config.cache_size_limit)
    for m in module.modules():
        if type(m).__name__.removeprefix("FSDP") in SHARDED_LAYERS:
            m.compile()


def full_state_dict(module: nn.Module, dist: Dist) -> dict[str, torch.Tensor]:
    """The whole model's weights on rank 0's CPU (gathered from the shards when sharded); {} on other ranks."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    if not dist.sharded:
        return {k: v.detach().cpu() for k, v in module.state_dict().items()}
    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def grad_norm_clip(params: list[torch.Tensor], max_norm: float) -> float:
    """Clip the global gradient norm (across shards) and return it before clipping."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm if max_norm > 0 else float("inf"))
    if hasattr(norm, "full_tensor"):
        norm = norm.full_tensor()
    return float(norm)
