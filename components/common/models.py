"""Loading a Gemma-3 vision-language model and its processor from a save_pretrained folder."""
from __future__ import annotations

from pathlib import Path


def load_vlm(model_dir: Path):
    """(model, processor), weights in fp32 with SDPA attention. Flash-attention is not an option for
    Gemma 3: it would drop the bidirectional mask over image tokens."""
    import torch
    from transformers import AutoProcessor, Gemma3ForConditionalGeneration

    model = Gemma3ForConditionalGeneration.from_pretrained(model_dir, dtype=torch.float32,
                                                           attn_implementation="sdpa")
    return model, AutoProcessor.from_pretrained(model_dir)
