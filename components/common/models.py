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


def check_weights(model_dir) -> dict[str, dict]:
    """Refuse a folder (a local path, or any URI: an S3 prefix) without config.json or without safetensors weights,
    naming what it holds instead, or whose weights are incomplete: a shard its index lists that is missing, or a
    file shorter than its header announces (a copy or upload that was cut off). Reads the listing, the index and
    each safetensors header, never the weights. Returns {relative name: fsspec info} of the folder's files."""
    from components.common import storage

    uri = str(model_dir).rstrip("/")
    fs, path = storage.filesystem(uri)
    fs.invalidate_cache(path)
    if not fs.isdir(path):
        raise ModelFolderError(f"model folder {uri} does not exist")
    root = path.rstrip("/") + "/"
    files = {name[len(root):]: info for name, info in fs.find(path, detail=True).items() if name.startswith(root)}
    if "config.json" not in files:
        raise ModelFolderError(f"{uri} has no config.json: not a save_pretrained folder (or its copy was cut off: "
                               "config.json is published last)")
    weights = sorted(n for n in files if n.endswith(".safetensors") and "/" not in n)
    if not weights:
        pickles = sorted(n for n in files if n.endswith(PICKLE_SUFFIXES) and "/" not in n)
        held = f"it holds only pickle weights ({', '.join(pickles[:3])}), which are refused" if pickles \
            else "it holds no weights"
        raise ModelFolderError(f"{uri} has no .safetensors weights: {held}. Convert the model with "
                               "save_pretrained(..., safe_serialization=True).")
    if "model.safetensors.index.json" in files:
        listed = sorted(set(json.loads(fs.cat_file(root + "model.safetensors.index.json"))["weight_map"].values()))
        missing = [name for name in listed if name not in files]
        if missing:
            raise ModelFolderError(f"{uri} is incomplete: model.safetensors.index.json lists {len(missing)} weight "
                                   f"file(s) that are not there ({', '.join(missing[:3])}); was its copy or upload "
                                   "cut off?")
    for name in weights:
        _check_whole(fs, root + name, files[name]["size"], f"{uri}/{name}")
    return files


def _check_whole(fs, path: str, size: int, name: str) -> None:
    """A safetensors file holds every byte its header promises (from the header alone: cheap at 50 GB)."""
    try:
        (header_len,) = struct.unpack("<Q", fs.cat_file(path, start=0, end=8))
        if header_len > size:
            raise ValueError("header longer than the file")
        header = json.loads(fs.cat_file(path, start=8, end=8 + header_len))
        end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    except (struct.error, ValueError, KeyError, TypeError) as err:
        raise ModelFolderError(f"{name} is not a readable safetensors file ({err}): was it cut off?") from None
    if 8 + header_len + end > size:
        raise ModelFolderError(f"{name} is truncated: {size} bytes of the {8 + header_len + end} its header "
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
