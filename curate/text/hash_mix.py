"""The 64-bit finalizer the text kernels share to spread an accumulated hash over all bits
(a murmur3-style ``fmix64`` with the constants curate's DSIR buckets were built with: changing
them changes every DSIR bucket and heuristic n-gram hash)."""

from __future__ import annotations

import numba as nb
import numpy as np


@nb.njit(cache=True, inline="always")
def fmix(k):
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB93FE53B8E2B)
    k ^= k >> np.uint64(33)
    return k
