"""Seeded Gumbel top-k: sampling without replacement with probability proportional to w.

Each document gets ``key = log w + Gumbel(seed, id)`` (:func:`gumbel_noise`); the top
``k`` keys are a sample without replacement proportional to ``w``. Noise and tie-breaks
depend only on the seed and the document id, so the selection does not depend on the
executor, batching or sharding.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import xxhash


def gumbel_noise(ids: Sequence[str], seed: int) -> np.ndarray:
    """i.i.d. standard Gumbel noise, one value per document id (deterministic in seed+id)."""
    s = int(seed) & 0xFFFFFFFFFFFFFFFF
    h = np.fromiter(
        (xxhash.xxh64_intdigest(str(i).encode(), s) for i in ids), dtype=np.uint64, count=len(ids)
    )
    u = ((h >> np.uint64(11)).astype(np.float64) + 0.5) * (1.0 / 9007199254740992.0)
    return -np.log(-np.log(u))


def tie_breaks(ids: Sequence[str], seed: int) -> np.ndarray:
    """Secondary sort key (uint64) per id, so equal keys still order deterministically."""
    s = (int(seed) * 0x9E3779B97F4A7C15 + 1) & 0xFFFFFFFFFFFFFFFF
    return np.fromiter(
        (xxhash.xxh3_64_intdigest(str(i).encode(), s) for i in ids), dtype=np.uint64, count=len(ids)
    )


def order_desc(keys: np.ndarray, ties: np.ndarray) -> np.ndarray:
    """Indices sorting by (key, tie) descending."""
    return np.lexsort((ties, keys))[::-1]


def at_or_above(keys: np.ndarray, ties: np.ndarray, thr_key: float, thr_tie: int) -> np.ndarray:
    """Boolean mask of (key, tie) >= (thr_key, thr_tie) lexicographically."""
    if math.isinf(thr_key) and thr_key < 0:
        return np.ones(len(keys), dtype=bool)
    return (keys > thr_key) | ((keys == thr_key) & (ties >= np.uint64(thr_tie)))
