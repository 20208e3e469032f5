"""Will a training run fit, and what does a step cost? Per-GPU memory and FLOPs from the model's real shapes.

Parameter counts are exact: the model is built on the meta device from its configuration (the named Gemma-3
sizes, or any save_pretrained folder's config.json), so no weights are read. The byte counts follow what
the trainer does (loop.py, parallel.py):
- weights: fp32 master copies, sharded over every GPU by FSDP2 (whole on one GPU);
- gradients: fp32 for trainable parameters, sharded; optimizer: AdamW's two fp32 moments, sharded;
- working copies: under FSDP2 with bf16, the unsharded bf16 weights of the root group (embeddings tied to
  the output projection, projector, norms), held for the whole forward and backward, plus two decoder layers'
  (the one computing and the one prefetched) and the root's unsharded gradient before its reduce-scatter;
- activations: per layer and token about 34 x hidden bytes in bf16 with SDPA (Korthikanti et al., 2022,
  "Reducing Activation Recomputation in Large Transformer Models", without the attention-score term that SDPA
  does not keep); with activation checkpointing only each layer's input (2 x hidden bytes) is kept, plus one
  layer's full activations while it is recomputed. Text and the SigLIP tower (image patches) are counted apart;
- the loss: one chunk of labelled positions projected onto the vocabulary (bf16 logits, their fp32 copy and
  its gradient);
- a fixed 2 GiB for the CUDA context and kernels' workspaces, and 10% for allocator fragmentation.
FLOPs: 2 per parameter and token forward, 4 backward (2 where a frozen part only passes gradients on, none
below the first trainable part), plus attention's 4 x tokens x context x head dims per layer forward.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path

GIB = 2 ** 30
CONTEXT_BYTES = 2 * GIB
FRAGMENTATION = 0.10

# Gemma 3 image-text models' configurations (google/gemma-3-{4b,12b,27b}-it, config.json); the SigLIP tower
# is the same So400m/14 at 896 px in all three.
_VISION = dict(hidden_size=1152, image_size=896, intermediate_size=4304, num_attention_heads=16,
               num_hidden_layers=27, patch_size=14, vision_use_head=False)
_TEXT = {
    "gemma-3-4b": dict(hidden_size=2560, intermediate_size=10240, num_hidden_layers=34, num_attention_heads=8,
                       num_key_value_heads=4, head_dim=256, query_pre_attn_scalar=256),
    "gemma-3-12b": dict(hidden_size=3840, intermediate_size=15360, num_hidden_layers=48, num_attention_heads=16,
                        num_key_value_heads=8, head_dim=256, query_pre_attn_scalar=256),
    "gemma-3-27b": dict(hidden_size=5376, intermediate_size=21504, num_hidden_layers=62, num_attention_heads=32,
                        num_key_value_heads=16, head_dim=128, query_pre_attn_scalar=168),
}
NAMED = sorted(_TEXT)
LORA_DEFAULT_RANK = 16
LORA_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")  # parallel.add_lora


def named_config(name: str):
    from transformers import Gemma3Config, Gemma3TextConfig, SiglipVisionConfig

    text = Gemma3TextConfig(vocab_size=262208, sliding_window=1024, rope_theta=1_000_000.0, **_TEXT[name])
    return Gemma3Config(text_config=text, vision_config=SiglipVisionConfig(**_VISION), mm_tokens_per_image=256,
                        boi_token_index=255999, eoi_token_index=256000, image_token_index=262144)


def load_config(model: str):
    """A Gemma3Config from a named size or a folder (or config.json) of a save_pretrained model."""
    if model in _TEXT:
        return named_config(model)
    from transformers import AutoConfig

    path = Path(model)
    if not path.exists():
        raise ValueError(f"unknown model {model!r}: give one of {', '.join(NAMED)} or a model folder")
    if path.is_dir() and not (path / "config.json").exists():
        raise ValueError(f"{path} has no config.json: not a save_pretrained folder")
    return AutoConfig.from_pretrained(path.parent if path.name == "config.json" else path)


@dataclass(frozen=True)
class Counts:
    """Parameters per part, exact."""
    vision: int
    projector: int
    language_model: int    # decoder layers, final norm and embeddings (tied to the output projection)
    embeddings: int
    layer: int             # one decoder layer
    vision_layer: int      # one SigLIP encoder layer
    lora: int              # LoRA parameters at LORA_DEFAULT_RANK on the language model's projections

    @property
    def total(self) -> int:
        return self.vision + self.projector + self.language_model


@lru_cache(maxsize=16)
def _counts_of(config_json: str) -> Counts:
    import torch
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration

    config = Gemma3Config.from_dict(json.loads(config_json))
    with torch.device("meta"):
        model = Gemma3ForConditionalGeneration(config)
    inner = model.model

    def n(module):
        return sum(p.numel() for p in module.parameters())

    lm = inner.language_model
    lora = 0
    for layer in lm.layers[:1]:
        for name, mod in layer.named_modules():
            if name.rsplit(".", 1)[-1] in LORA_TARGETS:
                lora += LORA_DEFAULT_RANK * (mod.in_features + mod.out_features)
    return Counts(vision=n(inner.vision_tower), projector=n(inner.multi_modal_projector), language_model=n(lm),
                  embeddings=n(lm.embed_tokens), layer=n(lm.layers[0]),
                  vision_layer=n(inner.vision_tower.encoder.layers[0]), lora=lora * len(lm.layers))


def counts(config) -> Counts:
    return _counts_of(config.to_json_string(use_diff=False))


@dataclass
class Request:
    model: str = "gemma-3-27b"
    gpus: int = 1                 # per node
    nodes: int = 1
    gpu_memory_gb: float = 80.0
    batch: int = 1                # samples per GPU per micro-batch
    seq_len: int = 2048           # tokens per sample, image tokens included
    images: int = 1               # images per sample
    lora: bool = False
    activation_checkpointing: bool = False
    freeze_vision: bool = False
    cpu_offload: bool = False
    loss_chunk_rows: int = 1024

    @property
    def world(self) -> int:
        return self.gpus * self.nodes


@dataclass
class Plan:
    request: dict
    params: dict
    per_gpu_gb: float
    breakdown_gb: dict
    fits: bool
    flops_per_step: float
    flops_per_sample: float
    advice: list[str] = field(default_factory=list)

    def as_json(self) -> str:
        return json.dumps(asdict(self), indent=1)


def state_bytes(c: Counts, req: Request) -> dict[str, float]:
    """Bytes per GPU of weights, gradients and optimizer state (exact for the given parameter counts)."""
    world = req.world
    trainable = c.lora if req.lora else c.total - (c.vision if req.freeze_vision else 0)
    return {"weights": 4 * (c.total + (c.lora if req.lora else 0)) / world,
            "gradients": 4 * trainable / world,
            "optimizer": 8 * trainable / world}


def plan(req: Request, with_advice: bool = True) -> Plan:
    config = load_config(req.model)
    c = counts(config)
    text, vision = config.text_config, config.vision_config
    states = state_bytes(c, req)
    if req.cpu_offload:
        states = dict.fromkeys(states, 0.0)
    sharded = req.world > 1
    root = c.total - c.vision_layer * vision.num_hidden_layers - c.layer * text.num_hidden_layers
    working = 0.0
    if sharded:   # bf16 unsharded root group, two layers in flight, the root's unsharded gradient
        working = 2 * root + 2 * 2 * max(c.layer, c.vision_layer) + (0 if req.lora else 2 * root)
    patches = (vision.image_size // vision.patch_size) ** 2
    tokens = req.batch * req.seq_len
    image_tokens = req.batch * req.images * patches
    per_layer_text = 34 * text.hidden_size * tokens
    per_layer_vision = 34 * vision.hidden_size * image_tokens
    vision_trains = not req.freeze_vision and not req.lora
    if req.activation_checkpointing:
        acts = (2 * text.hidden_size * tokens * text.num_hidden_layers + per_layer_text
                + (2 * vision.hidden_size * image_tokens * vision.num_hidden_layers + per_layer_vision
                   if vision_trains else per_layer_vision))
    else:
        acts = (per_layer_text * text.num_hidden_layers
                + (per_layer_vision * vision.num_hidden_layers if vision_trains else per_layer_vision))
    logits = min(tokens, req.loss_chunk_rows) * text.vocab_size * (2 + 4 + 4)
    breakdown = {**states, "working_copies": working, "activations": acts, "loss": logits}
    subtotal = sum(breakdown.values()) + CONTEXT_BYTES
    total = subtotal * (1 + FRAGMENTATION)
    breakdown["context_and_fragmentation"] = total - sum(breakdown.values())
    flops_sample = sample_flops(config, c, req)
    result = Plan(request=asdict(req), params={**asdict(c), "total": c.total},
                  per_gpu_gb=round(total / GIB, 2), breakdown_gb={k: round(v / GIB, 2) for k, v in breakdown.items()},
                  fits=total / GIB <= req.gpu_memory_gb, flops_per_step=flops_sample * req.batch * req.world,
                  flops_per_sample=flops_sample)
    if not result.fits and with_advice:
        result.advice = advise(req)
    return result


def sample_flops(config, c: Counts, req: Request) -> float:
    """Training FLOPs of one sample (see the module docstring)."""
    return (text_flops(config, c, req.seq_len, req.lora)
            + req.images * image_flops(config, c, trains=not (req.freeze_vision or req.lora)))


def text_flops(config, c: Counts, seq_len: int, lora: bool = False) -> float:
    """Forward and backward FLOPs of the language model over one sequence of `seq_len` tokens (its embedding
    matrix counted once, as the output projection; lookups cost nothing)."""
    factor = 4 if lora else 6
    # attention has no weights: its backward is 2 x its forward
    return factor * c.language_model * seq_len + 3 * _attention_flops(config.text_config, seq_len)


def _attention_flops(text, seq_len: int) -> float:
    """Forward FLOPs of the language model's attention over `seq_len` causal tokens (scores and values, every layer)."""
    return 4 * seq_len * seq_len / 2 * text.num_attention_heads * text.head_dim * text.num_hidden_layers


def forward_flops(config, c: Counts, seq_len: int) -> float:
    """FLOPs of one forward pass of the language model over `seq_len` tokens (generation: the prompt and every
    generated token, each attending to what precedes it)."""
    return 2 * c.language_model * seq_len + _attention_flops(config.text_config, seq_len)


def image_flops(config, c: Counts, trains: bool = True) -> float:
    """Forward (and, when the tower trains, backward) FLOPs of the SigLIP tower and projector for one image."""
    vision = config.vision_config
    patches = (vision.image_size // vision.patch_size) ** 2
    factor = 4 if trains else 0
    attention = 4 * patches * patches * vision.hidden_size * vision.num_hidden_layers
    # the projector maps the pooled tokens (mm_tokens_per_image), not every patch
    return ((2 + factor) * (c.vision * patches + c.projector * config.mm_tokens_per_image)
            + (3 if trains else 1) * attention)


def batch_flops(config, c: Counts, batch: dict, freeze_vision: bool = False, lora: bool = False) -> float:
    """Useful training FLOPs of a collated batch: each sample at its own length (padding excluded)."""
    lengths = batch["attention_mask"].sum(dim=1).tolist()
    images = int(batch["pixel_values"].shape[0]) if batch.get("pixel_values") is not None else 0
    return (sum(text_flops(config, c, n, lora) for n in lengths)
            + images * image_flops(config, c, trains=not (freeze_vision or lora)))


def advise(req: Request) -> list[str]:
    """What to change so that it fits, each with the per-GPU memory it gives."""
    from dataclasses import replace

    options = []
    if not req.activation_checkpointing:
        options.append(("--activation-checkpointing", replace(req, activation_checkpointing=True)))
    for gpus in (2, 4, 8):
        if gpus > req.gpus:
            options.append((f"--gpus {gpus}", replace(req, gpus=gpus)))
    for nodes in (2, 4, 8):
        if nodes > req.nodes and req.gpus >= 8:
            options.append((f"--nodes {nodes}", replace(req, nodes=nodes)))
    if not req.freeze_vision:
        options.append(("--freeze-vision", replace(req, freeze_vision=True)))
    if not req.lora:
        options.append(("--lora", replace(req, lora=True)))
    if req.batch > 1:
        options.append((f"--batch {max(1, req.batch // 2)}", replace(req, batch=max(1, req.batch // 2))))
    out, any_fits = [], False
    for flag, changed in options:
        p = plan(changed, with_advice=False)
        any_fits |= p.fits
        out.append(f"{flag}: {p.per_gpu_gb:.1f} GB per GPU ({'fits' if p.fits else 'still too much'})")
    if not any_fits:   # the fewest GPUs that fit with activation checkpointing, as one change
        for gpus, nodes in ((2, 1), (4, 1), (8, 1), (8, 2), (8, 4), (8, 8), (8, 16)):
            if gpus * nodes <= req.world:
                continue
            p = plan(replace(req, gpus=gpus, nodes=nodes, activation_checkpointing=True), with_advice=False)
            if p.fits:
                nodes_flag = f" --nodes {nodes}" if nodes > 1 else ""
                out.append(f"--gpus {gpus}{nodes_flag} --activation-checkpointing: {p.per_gpu_gb:.1f} GB per GPU "
                           "(fits)")
                break
    return out


# Dense bf16 peak (TFLOP/s), memory (GB) and memory bandwidth (TB/s) per GPU, by a name in its device name ("NVIDIA
# H100 80GB HBM3") or its GPU feature discovery label ("NVIDIA-H100-80GB-HBM3"); the first key found in the name wins
# (vendors' data sheets).
ACCELERATORS = (("GH200", 989, 96, 4.0), ("H200", 989, 141, 4.8), ("H100 PCIe", 756, 80, 2.0),
                ("H100 NVL", 835, 94, 3.9), ("H100", 989, 80, 3.35), ("A100 SXM4 40GB", 312, 40, 1.555),
                ("A100 PCIE 40GB", 312, 40, 1.555), ("A100", 312, 80, 2.0), ("L40S", 362, 48, 0.864),
                ("A10", 125, 24, 0.6))


def accelerator(name: str) -> tuple[str, float, float, float] | None:
    """(key, peak FLOP/s, memory GB, memory bandwidth bytes/s) of the GPU called `name`, or None for a card not in
    ACCELERATORS."""
    spaced = name.replace("-", " ").replace("_", " ").upper()
    for key, tflops, memory, bandwidth in ACCELERATORS:
        if key.upper() in spaced:
            return key, tflops * 1e12, float(memory), bandwidth * 1e12
    return None


def requested_accelerator(node_selector: dict | None) -> tuple[str, tuple[str, float, float, float] | None]:
    """(the GPU product label a node selector asks for, '' when none; its accelerator() entry, None when unknown)."""
    label = next((v for k, v in (node_selector or {}).items() if k.endswith("gpu.product")), "")
    return label, accelerator(label) if label else None


def peak_flops(device) -> float | None:
    """Dense bf16 peak of the GPU (FLOP/s) for MFU; None on the CPU or an unknown card (SEAVL_PEAK_TFLOPS sets it)."""
    import os

    import torch

    if os.environ.get("SEAVL_PEAK_TFLOPS"):
        return float(os.environ["SEAVL_PEAK_TFLOPS"]) * 1e12
    if getattr(device, "type", str(device)) != "cuda":
        return None
    known = accelerator(torch.cuda.get_device_name(device))
    return known[1] if known else None
