"""Loading a Gemma-3 vision-language model and its processor from a save_pretrained folder.

Only safetensors weights are loaded: a pickle checkpoint (`*.bin`, `*.pt`) can run code when unpickled, so a
folder that has only those is refused. Remote code is never trusted.
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class ModelFolderError(ValueError):
    """A model folder that cannot be used: missing, no config, or no safetensors weights."""


def check_weights(model_dir: Path) -> None:
    """Refuse a folder without config.json or without safetensors weights, naming what it holds instead."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelFolderError(f"model folder {model_dir} does not exist")
    if not (model_dir / "config.json").exists():
        raise ModelFolderError(f"{model_dir} has no config.json: not a save_pretrained folder")
    if not any(model_dir.glob("*.safetensors")):
        pickles = sorted(p.name for p in model_dir.iterdir() if p.suffix in PICKLE_SUFFIXES)
        held = f"it holds only pickle weights ({', '.join(pickles[:3])}), which are refused" if pickles \
            else "it holds no weights"
        raise ModelFolderError(f"{model_dir} has no .safetensors weights: {held}. Convert the model with "
                               "save_pretrained(..., safe_serialization=True).")
    index = model_dir / "model.safetensors.index.json"
    if index.exists():
        listed = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        missing = [name for name in listed if not (model_dir / name).exists()]
        if missing:
            raise ModelFolderError(f"{model_dir} is incomplete: {index.name} lists {len(missing)} weight file(s) that "
                                   f"are not there ({', '.join(missing[:3])}); was its copy or upload cut off?")
    for path in sorted(model_dir.glob("*.safetensors")):
        _check_whole(path)


def _check_whole(path: Path) -> None:
    """A safetensors file holds every byte its header promises (from the header alone: cheap at 50 GB)."""
    size = path.stat().st_size
    try:
        with open(path, "rb") as f:
            (header_len,) = struct.unpack("<Q", f.read(8))
            if header_len > size:
                raise ValueError("header longer than the file")
            header = json.loads(f.read(header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError) as err:
        raise ModelFolderError(f"{path} is not a readable safetensors file ({err}): was it cut off?") from None
    if 8 + header_len + end > size:
        raise ModelFolderError(f"{path} is truncated: {size} bytes of the {8 + header_len + end} its header "
                               "announces; was its copy or upload cut off?")


def load_processor(model_dir: Path):
    from transformers import AutoProcessor

    return AutoProcessor.from_pretrained(model_dir, trust_remote_code=False)


def load_vlm(model_dir: Path, dtype: str = "float32", device: str | None = None, max_memory: dict | None = None):
    """(model, processor) with SDPA attention. Flash-attention is not an option for Gemma 3: it would drop the
    bidirectional mask over image tokens."""
    import torch
    from transformers import Gemma3ForConditionalGeneration

    check_weights(model_dir)
    model = Gemma3ForConditionalGeneration.from_pretrained(model_dir, dtype=getattr(torch, dtype),
                                                           attn_implementation="sdpa", use_safetensors=True,
                                                           device_map=device, max_memory=max_memory)
    return model, load_processor(model_dir)
