"""The numba batch kernel of the DSIR featurizer: tokenize, hash and count or score.

One pass over the UTF-8 bytes of a whole batch tokenizes (WordPunct classes), forms the
k-grams and adds each to its bucket's count or its ``log_diff`` to the document's score.
SHA-256 (:func:`curate.text.dsir.sha256_kernel.sha256_mod`) runs only the first time an
n-gram is seen; a per-thread open-addressing cache, keyed by two independent 64-bit hashes
of the n-gram, remembers the bucket afterwards. Results are identical to hashing every
n-gram and never depend on the cache contents.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from curate.text.dsir.sha256_kernel import sha256_mod
from curate.text.hash_mix import fmix as _fmix

# The n-gram -> bucket cache is an open-addressing table stored as one uint64 array of
# 2*cap words: slot i holds ``k1`` at 2i and ``(high 32 bits of k2) | (bucket + 1)`` at 2i+1
# (0 = empty). One probe touches one 16-byte slot. Unigrams and longer n-grams have a
# table each (the unigram one stays small and hot in cache).


@nb.njit(cache=True, inline="always")
def _probe(tab, k1, k2):
    """(bucket or -1, slot index) of key (k1, k2)."""
    mask = np.uint64((tab.shape[0] >> 1) - 1)
    hi = k2 & np.uint64(0xFFFFFFFF00000000)
    i = k1 & mask
    while True:
        w2 = tab[2 * i + 1]
        if w2 == 0:
            return np.int64(-1), i
        if tab[2 * i] == k1 and (w2 & np.uint64(0xFFFFFFFF00000000)) == hi:
            return np.int64(w2 & np.uint64(0xFFFFFFFF)) - 1, i
        i = (i + np.uint64(1)) & mask


@nb.njit(cache=True, nogil=True)
def _grow(tab, max_slots):
    """Double the table (rehashing), or clear it when it is already ``max_slots`` big."""
    cap = tab.shape[0] >> 1
    if cap >= max_slots:
        return np.zeros(tab.shape[0], dtype=np.uint64)
    new = np.zeros(tab.shape[0] * 2, dtype=np.uint64)
    mask = np.uint64(2 * cap - 1)
    for i in range(cap):
        w2 = tab[2 * i + 1]
        if w2 != 0:
            j = tab[2 * i] & mask
            while new[2 * j + 1] != 0:
                j = (j + np.uint64(1)) & mask
            new[2 * j] = tab[2 * i]
            new[2 * j + 1] = w2
    return new


@nb.njit(cache=True, nogil=True)
def _count_filled(tab):
    n = 0
    for i in range(tab.shape[0] >> 1):
        if tab[2 * i + 1] != 0:
            n += 1
    return n


@nb.njit(cache=True, nogil=True)
def _tokenize(data, lo, hi, cls, t_start, t_end, t_k1, t_k2):
    """WordPunct tokens of ``data[lo:hi]``: byte offsets and two 64-bit hashes of each
    token's bytes, in one pass. Returns the token count."""
    P1 = np.uint64(0x100000001B3)
    P2 = np.uint64(0x9E3779B97F4A7C15)
    nt = 0
    i = lo
    cur = np.uint8(0)
    a = np.uint64(0)
    bb = np.uint64(0)
    while i < hi:
        b0 = data[i]
        if b0 < 0x80:
            c = cls[b0]
            ln = 1
        elif b0 < 0xE0:
            c = cls[((np.int64(b0) & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F)]
            ln = 2
        elif b0 < 0xF0:
            c = cls[
                ((np.int64(b0) & 0x0F) << 12)
                | ((np.int64(data[i + 1]) & 0x3F) << 6)
                | (np.int64(data[i + 2]) & 0x3F)
            ]
            ln = 3
        else:
            c = cls[
                ((np.int64(b0) & 0x07) << 18)
                | ((np.int64(data[i + 1]) & 0x3F) << 12)
                | ((np.int64(data[i + 2]) & 0x3F) << 6)
                | (np.int64(data[i + 3]) & 0x3F)
            ]
            ln = 4
        if c != cur:
            if cur != 0:
                t_end[nt - 1] = i
                t_k1[nt - 1] = _fmix(a)
                t_k2[nt - 1] = _fmix(bb ^ np.uint64(i - t_start[nt - 1]))
            if c != 0:
                if nt == t_start.shape[0]:
                    return -1  # out of room: the caller grows the arrays and retries
                t_start[nt] = i
                nt += 1
                a = np.uint64(0xCBF29CE484222325)
                bb = np.uint64(0x84222325CBF29CE4)
            cur = c
        if c != 0:
            for j in range(i, i + ln):
                x = np.uint64(data[j])
                a = (a ^ x) * P1
                bb = (bb + x + np.uint64(1)) * P2
        i += ln
    if cur != 0:
        t_end[nt - 1] = hi
        t_k1[nt - 1] = _fmix(a)
        t_k2[nt - 1] = _fmix(bb ^ np.uint64(hi - t_start[nt - 1]))
    return nt


@nb.njit(cache=True, nogil=True)
def featurize_kernel(
    data,
    offsets,
    cls,
    ngrams,
    num_buckets,
    tabs,
    fills,
    max_slots,
    log_diff,
    do_score,
    count_mask,
    counts,
    logw,
    ntok,
    K,
    H0,
):
    """Tokenize, hash and count/score every document of a batch.

    ``tabs`` = (unigram table, n-gram table) and ``fills`` their occupancy; the possibly
    grown tables are returned. Results never depend on the cache contents.
    """
    n_docs = offsets.shape[0] - 1
    tab1, tab2 = tabs
    fill1 = fills[0]
    fill2 = fills[1]
    w = np.zeros(64, dtype=np.uint64)
    maxlen = 1
    for d in range(n_docs):
        maxlen = max(maxlen, offsets[d + 1] - offsets[d] + 1)
    maxlen = min(maxlen, 1 << 16)  # grown on demand for very long documents
    t_start = np.empty(maxlen, dtype=np.int64)
    t_end = np.empty(maxlen, dtype=np.int64)
    t_k1 = np.empty(maxlen, dtype=np.uint64)
    t_k2 = np.empty(maxlen, dtype=np.uint64)
    g_k1 = np.empty(maxlen, dtype=np.uint64)
    g_k2 = np.empty(maxlen, dtype=np.uint64)
    scratch = np.empty(4096, dtype=np.uint8)
    for d in range(n_docs):
        lo = offsets[d]
        hi = offsets[d + 1]
        nt = _tokenize(data, lo, hi, cls, t_start, t_end, t_k1, t_k2)
        while nt < 0:
            maxlen *= 2
            t_start = np.empty(maxlen, dtype=np.int64)
            t_end = np.empty(maxlen, dtype=np.int64)
            t_k1 = np.empty(maxlen, dtype=np.uint64)
            t_k2 = np.empty(maxlen, dtype=np.uint64)
            g_k1 = np.empty(maxlen, dtype=np.uint64)
            g_k2 = np.empty(maxlen, dtype=np.uint64)
            nt = _tokenize(data, lo, hi, cls, t_start, t_end, t_k1, t_k2)
        ntok[d] = nt
        do_count = count_mask[d]
        acc = 0.0
        # ---- unigrams ------------------------------------------------------------------
        for t in range(nt):
            k1 = t_k1[t]
            k2 = t_k2[t]
            v, slot = _probe(tab1, k1, k2)
            if v < 0:
                ln = t_end[t] - t_start[t]
                if ln > scratch.shape[0]:
                    scratch = np.empty(2 * ln, dtype=np.uint8)
                for j in range(ln):
                    scratch[j] = data[t_start[t] + j]
                v = sha256_mod(scratch, ln, num_buckets, K, H0, w)
                if 4 * (fill1 + 1) > 3 * (tab1.shape[0] >> 1):
                    tab1 = _grow(tab1, max_slots)
                    fill1 = _count_filled(tab1)
                    _, slot = _probe(tab1, k1, k2)
                tab1[2 * slot] = k1
                tab1[2 * slot + 1] = (k2 & np.uint64(0xFFFFFFFF00000000)) | np.uint64(v + 1)
                fill1 += 1
            if do_count:
                counts[v] += 1
            if do_score:
                acc += log_diff[v]
        # ---- k-grams, k = 2..ngrams ------------------------------------------------------
        for k in range(2, ngrams + 1):
            # keys first, then touch their slots with independent loads (memory-level
            # parallelism: the probes below then mostly hit cache), then probe
            mask2 = np.uint64((tab2.shape[0] >> 1) - 1)
            touch = np.uint64(0)
            for t in range(nt - k + 1):
                k1 = np.uint64(k) * np.uint64(0xD6E8FEB86659FD93)
                k2 = np.uint64(k) * np.uint64(0xA0761D6478BD642F)
                for u in range(t, t + k):
                    k1 = _fmix(k1 ^ t_k1[u]) + np.uint64(0x9E3779B97F4A7C15)
                    k2 = _fmix((k2 + t_k2[u]) * np.uint64(0xE7037ED1A0B428DB))
                g_k1[t] = k1
                g_k2[t] = k2
                touch ^= tab2[2 * (k1 & mask2) + 1]
            if touch == np.uint64(0x5A5A5A5A5A5A5A5A):  # keeps the touch loop from being removed
                fill2 += 0
            for t in range(nt - k + 1):
                k1 = g_k1[t]
                k2 = g_k2[t]
                v, slot = _probe(tab2, k1, k2)
                if v < 0:
                    need = 0
                    for u in range(t, t + k):
                        need += t_end[u] - t_start[u] + 1
                    if need > scratch.shape[0]:
                        scratch = np.empty(2 * need, dtype=np.uint8)
                    pos = 0
                    for u in range(t, t + k):
                        if u > t:
                            scratch[pos] = 32
                            pos += 1
                        for j in range(t_start[u], t_end[u]):
                            scratch[pos] = data[j]
                            pos += 1
                    v = sha256_mod(scratch, pos, num_buckets, K, H0, w)
                    if 4 * (fill2 + 1) > 3 * (tab2.shape[0] >> 1):
                        tab2 = _grow(tab2, max_slots)
                        fill2 = _count_filled(tab2)
                        _, slot = _probe(tab2, k1, k2)
                    tab2[2 * slot] = k1
                    tab2[2 * slot + 1] = (k2 & np.uint64(0xFFFFFFFF00000000)) | np.uint64(v + 1)
                    fill2 += 1
                if do_count:
                    counts[v] += 1
                if do_score:
                    acc += log_diff[v]
        logw[d] = acc
    fills[0] = fill1
    fills[1] = fill2
    return tab1, tab2
