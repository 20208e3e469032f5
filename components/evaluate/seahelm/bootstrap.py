"""Paired bootstrap confidence intervals of the difference between two models' scores on the same items.

Items are resampled with replacement (the same draw for both models, since they answered the same items), the
difference of the mean per-item scores is taken for each resample, and the percentile interval is returned.
The gate reads the bounds, not the point estimate: a difference is a gain only when its lower bound is above
the threshold.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Difference:
    mean: float      # mean(candidate) - mean(reference) over the shared items
    low: float       # bounds of the (1 - alpha) percentile interval
    high: float
    n: int


def paired_difference(candidate: dict[str, float], reference: dict[str, float], resamples: int = 2000,
                      alpha: float = 0.05, seed: int = 0) -> Difference:
    """Difference of `candidate` over `reference` on the items both scored ({item id: per-item score})."""
    import numpy as np

    shared = sorted(set(candidate) & set(reference))
    if len(shared) < 2:
        raise ValueError(f"a paired bootstrap needs at least two shared items, got {len(shared)}")
    diff = np.array([candidate[i] - reference[i] for i in shared], dtype=float)
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    low, high = np.quantile(means, [alpha / 2, 1 - alpha / 2])
    return Difference(float(diff.mean()), float(low), float(high), len(shared))
