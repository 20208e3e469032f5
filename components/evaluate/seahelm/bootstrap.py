"""Paired bootstrap confidence intervals of the difference between two models' scores on the same items.

Items are resampled with replacement (the same draw for both models, since they answered the same items), the
difference of the mean per-item scores is taken for each resample, and the percentile interval is returned.
The report shows the bounds beside each difference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np


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


def _normalized_balanced_accuracy(gold: np.ndarray, pred: np.ndarray, rows: np.ndarray, classes: list) -> np.ndarray:
    """SEA-HELM's normalised balanced accuracy of each resample (one row of item positions each)."""
    import numpy as np

    g, p = gold[rows], pred[rows]
    recalls = []
    for c in classes:
        total = (g == c).sum(axis=1)
        hit = ((g == c) & (p == c)).sum(axis=1)
        recalls.append(np.where(total > 0, hit / np.maximum(total, 1), np.nan))
    ba = np.nanmean(np.vstack(recalls), axis=0)
    chance = 1 / len(classes)
    return 100 * np.maximum((ba - chance) / (1 - chance), 0.0)


def paired_metric_difference(candidate: list[dict], reference: list[dict], kind: str, resamples: int = 1000,
                             alpha: float = 0.05, seed: int = 0) -> Difference:
    """Difference of a task's metric between two models on the items both answered, with a paired bootstrap
    interval: the same resample of items for both. Items are per-item records ({"id", "gold", "answer",
    "score"}); for multiple choice (`kind` "mcq") SEA-HELM's normalised balanced accuracy is recomputed on each
    resample, for the other tasks the mean per-item score."""
    import numpy as np

    a, b = {r["id"]: r for r in candidate}, {r["id"]: r for r in reference}
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        raise ValueError(f"a paired bootstrap needs at least two shared items, got {len(shared)}")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(shared), size=(resamples, len(shared)))
    full = np.arange(len(shared))[None, :]
    if kind == "mcq":
        gold = np.array([str(a[i]["gold"]) for i in shared])
        classes = sorted(set(gold.tolist()))
        if len(classes) < 2:
            raise ValueError("balanced accuracy needs at least two distinct gold labels")
        pa, pb = (np.array([str(m[i]["answer"]) for i in shared]) for m in (a, b))

        def stat(r):
            return (_normalized_balanced_accuracy(gold, pa, r, classes)
                    - _normalized_balanced_accuracy(gold, pb, r, classes))
    else:
        diff = np.array([a[i]["score"] - b[i]["score"] for i in shared], dtype=float)

        def stat(r):
            return diff[r].mean(axis=1)
    low, high = np.quantile(stat(rows), [alpha / 2, 1 - alpha / 2])
    return Difference(float(stat(full)[0]), float(low), float(high), len(shared))
