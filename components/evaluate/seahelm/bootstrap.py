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

    shared = _shared(candidate, reference)
    diff = np.array([candidate[i] - reference[i] for i in shared], dtype=float)
    low, high = _bounds(diff[_resamples(len(shared), resamples, seed)].mean(axis=1), alpha)
    return Difference(float(diff.mean()), low, high, len(shared))


def _shared(a: dict, b: dict) -> list[str]:
    shared = sorted(set(a) & set(b))
    if len(shared) < 2:
        raise ValueError(f"a paired bootstrap needs at least two shared items, got {len(shared)}")
    return shared


def _resamples(n: int, resamples: int, seed: int) -> np.ndarray:
    """Item positions of each resample (one row each), drawn with replacement."""
    import numpy as np

    return np.random.default_rng(seed).integers(0, n, size=(resamples, n))


def _bounds(statistics: np.ndarray, alpha: float) -> tuple[float, float]:
    import numpy as np

    low, high = np.quantile(statistics, [alpha / 2, 1 - alpha / 2])
    return float(low), float(high)


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
    if kind != "mcq":
        return paired_difference({i: r["score"] for i, r in a.items()}, {i: r["score"] for i, r in b.items()},
                                 resamples, alpha, seed)
    shared = _shared(a, b)
    gold = np.array([str(a[i]["gold"]) for i in shared])
    classes = sorted(set(gold.tolist()))
    if len(classes) < 2:
        raise ValueError("balanced accuracy needs at least two distinct gold labels")
    pa, pb = (np.array([str(m[i]["answer"]) for i in shared]) for m in (a, b))

    def stat(r):
        return (_normalized_balanced_accuracy(gold, pa, r, classes)
                - _normalized_balanced_accuracy(gold, pb, r, classes))
    low, high = _bounds(stat(_resamples(len(shared), resamples, seed)), alpha)
    return Difference(float(stat(np.arange(len(shared))[None, :])[0]), low, high, len(shared))
