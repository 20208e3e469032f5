"""Duplicates across the whole corpus, from key columns only (a few dozen bytes a row, never the rows).

Near-duplicate images are found with banded perceptual hashes (multi-index hashing): a 64-bit pHash is split
into `max_bits + 1` bands; two hashes within `max_bits` differing bits agree on at least one band
(pigeonhole), so only rows sharing a band value are compared, never all pairs.
"""
from __future__ import annotations

import numpy as np

BLOCK = 2048  # rows compared at a time within one bucket (bounds memory for large buckets)


def parse_phash(hexes) -> np.ndarray:
    return np.array([int(h, 16) for h in hexes], dtype=np.uint64)


def _bands(max_bits: int) -> list[tuple[int, int]]:
    n = max_bits + 1
    edges = np.linspace(0, 64, n + 1).astype(int)
    return [(int(a), int(b - a)) for a, b in zip(edges[:-1], edges[1:], strict=False)]


def _band(hashes: np.ndarray, shift: int, width: int) -> np.ndarray:
    return (hashes >> np.uint64(shift)) & np.uint64((1 << width) - 1)


def earliest_near(hashes: np.ndarray, groups: np.ndarray, max_bits: int) -> np.ndarray:
    """For each row, the index of the first earlier row of the same group whose hash differs in at most
    `max_bits` bits, or -1. Rows are in reading order (the earlier row is the one kept)."""
    n = len(hashes)
    best = np.full(n, n, dtype=np.int64)
    if n < 2 or max_bits < 0:
        return np.full(n, -1, dtype=np.int64)
    for shift, width in _bands(max_bits):
        band = _band(hashes, shift, width)
        order = np.lexsort((np.arange(n), band, groups))
        b, g = band[order], groups[order]
        starts = np.flatnonzero(np.r_[True, (b[1:] != b[:-1]) | (g[1:] != g[:-1])])
        ends = np.r_[starts[1:], n]
        for s, e in zip(starts[ends - starts > 1], ends[ends - starts > 1], strict=False):
            idx = order[s:e]                      # ascending row index within the bucket
            h = hashes[idx]
            for b in range(1, len(idx), BLOCK):   # rows b..b+BLOCK against every earlier row of the bucket
                cols = slice(b, min(b + BLOCK, len(idx)))
                dist = np.bitwise_count(h[:cols.stop, None] ^ h[None, cols])
                near = (dist <= max_bits) & (np.arange(cols.stop)[:, None] < np.arange(cols.start, cols.stop)[None])
                hit = near.any(axis=0)
                first = idx[near.argmax(axis=0)]
                rows = idx[cols][hit]
                best[rows] = np.minimum(best[rows], first[hit])
    best[best == n] = -1
    return best


def near_any(queries: np.ndarray, references: np.ndarray, max_bits: int) -> np.ndarray:
    """For each query hash, the index of a reference within `max_bits` bits, or -1 (e.g. evaluation images)."""
    import pandas as pd

    found = np.full(len(queries), -1, dtype=np.int64)
    if not len(queries) or not len(references) or max_bits < 0:
        return found
    for shift, width in _bands(max_bits):
        q = pd.DataFrame({"band": _band(queries, shift, width), "q": np.arange(len(queries))})
        r = pd.DataFrame({"band": _band(references, shift, width), "r": np.arange(len(references))})
        pairs = q.merge(r, on="band")
        if pairs.empty:
            continue
        qi, ri = pairs["q"].to_numpy(), pairs["r"].to_numpy()
        close = np.bitwise_count(queries[qi] ^ references[ri]) <= max_bits
        found[qi[close]] = ri[close]
    return found
