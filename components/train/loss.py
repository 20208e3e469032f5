"""The training loss: cross-entropy at labelled positions only, in chunks, summed (the loop normalises).

Gemma 3's own forward projects every position onto its 262k-token vocabulary and upcasts to fp32: at 64k tokens
per batch that is about 64 GiB of logits, almost all of them for image, prompt and padding positions that carry
no label. Here the hidden states of the labelled positions are gathered first, and projected in chunks whose
logits are recomputed in the backward pass instead of kept, so the logits held at any time are one chunk's.

The loss is returned as a sum with its token count: the loop divides by the labelled tokens of the whole
accumulated batch on all ranks, so every labelled token weighs the same however the batch is split.
"""
from __future__ import annotations

import torch
from torch import nn

from components.common.chat import IGNORE


def _chunk_ce(hidden: torch.Tensor, targets: torch.Tensor, lm_head: nn.Module) -> torch.Tensor:
    logits = lm_head(hidden).float()
    return nn.functional.cross_entropy(logits, targets, reduction="sum")


def labelled_ce_sum(hidden: torch.Tensor, labels: torch.Tensor, lm_head: nn.Module, chunk_rows: int = 1024
                    ) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum of next-token cross-entropy over labelled positions, their count). hidden: [B, T, H]; labels: [B, T]
    with IGNORE where there is no target; position t predicts labels[t + 1]."""
    from torch.utils.checkpoint import checkpoint

    targets = labels[:, 1:]
    keep = targets != IGNORE
    h = hidden[:, :-1][keep]
    t = targets[keep]
    total = hidden.sum().float() * 0  # keeps the graph whole when a micro-batch has no labelled position
    for i in range(0, t.numel(), chunk_rows):
        args = (h[i:i + chunk_rows], t[i:i + chunk_rows], lm_head)
        if torch.is_grad_enabled() and t.numel() > chunk_rows:
            total = total + checkpoint(_chunk_ce, *args, use_reentrant=False)
        else:
            total = total + _chunk_ce(*args)
    return total, keep.sum()


class LabelledLoss(nn.Module):
    """The VLM with the loss above as its forward: `(loss sum, labelled tokens) = module(**batch)`.

    The VLM sits inside so that FSDP2 can shard this module as its root: the embeddings, the tied output
    projection, the projector and the final norms are then unsharded by the root's hooks around this forward,
    which calls the decoder and the output projection separately."""

    def __init__(self, vlm: nn.Module, chunk_rows: int = 1024, sharded: bool = False):
        super().__init__()
        self.vlm = vlm
        self.chunk_rows = chunk_rows
        self.sharded = sharded

    def forward(self, labels: torch.Tensor, **inputs) -> tuple[torch.Tensor, torch.Tensor]:
        idle = None
        if self.sharded and inputs.get("pixel_values") is None:
            idle = self._idle_vision(inputs["input_ids"].device)
        hidden = self.vlm.model(**inputs, use_cache=False, return_dict=True).last_hidden_state
        total, count = labelled_ce_sum(hidden, labels, self.vlm.lm_head, self.chunk_rows)
        return (total if idle is None else total + idle), count

    def _idle_vision(self, device) -> torch.Tensor:
        """A batch without images (text replay, text-only conversations) would skip the vision tower's layers,
        and with them their FSDP2 all-gathers and reduce-scatters, while other ranks run them: the collectives
        would no longer match and the job would hang. One blank image through the tower first (where a batch
        with images runs it), weighted 0, keeps every rank's collectives in the same order without changing
        the loss or the gradients."""
        size = self.vlm.config.vision_config.image_size
        dtype = self.vlm.model.vision_tower.embeddings.patch_embedding.weight.dtype
        blank = torch.zeros(1, 3, size, size, device=device, dtype=dtype)
        return self.vlm.model.get_image_features(pixel_values=blank).pooler_output.float().sum() * 0
