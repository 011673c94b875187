"""DSIR kernels: hashed n-gram features, distributions, importance weights, Gumbel top-k.

Behaviour follows the ``data-selection`` 1.0.3 package (``HashedNgramDSIR``), re-implemented
from its description (docs: algorithms.md §2):

* text is lower-cased (Python ``str.lower``) and split with the WordPunct rule
  ``\\w+|[^\\w\\s]+`` (maximal runs of word characters, or of characters that are neither
  word nor space) -- no NLTK needed;
* every unigram and every k-gram (k = 2..n, tokens joined by one space) goes to bucket
  ``int(sha256(utf8).hexdigest(), 16) % num_buckets``; all orders share one bucket space;
* ``log w(x) = f(x) . (log(p_target + 1e-8) - log(p_raw + 1e-8))`` with raw counts f(x).

Speed: tokenizing, hashing and counting run in one numba kernel over the UTF-8 bytes of a
whole batch. SHA-256 is computed in the kernel only the first time an n-gram is seen; a
per-process open-addressing cache (keyed by two independent 64-bit hashes of the n-gram)
remembers the bucket afterwards. Results are identical to hashing every n-gram.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

EPS = 1e-8  # the reference's epsilon inside the logs (also used for the KL metric)

_SPACE, _WORD, _OTHER = 0, 1, 2


# ----------------------------------------------------------------------------------------
# Pure-Python reference functions (used in tests and for single documents)
# ----------------------------------------------------------------------------------------


def wordpunct_tokenize(text: str) -> list[str]:
    """NLTK ``WordPunctTokenizer().tokenize`` (``\\w+|[^\\w\\s]+`` with nltk 3.10's classes)."""
    global _WORDPUNCT_RE
    if _WORDPUNCT_RE is None:
        _WORDPUNCT_RE = _class_pattern()
    return _WORDPUNCT_RE.findall(text)


def hash_buckets(s: str, num_buckets: int = 10000) -> int:
    """Stable bucket of a string: ``int(sha256(s).hexdigest(), 16) % num_buckets``."""
    return int.from_bytes(hashlib.sha256(s.encode("utf-8")).digest(), "big") % num_buckets


def ngram_strings(text: str, ngrams: int = 2) -> list[str]:
    """All n-gram strings of a document, in the reference's order (unigrams first)."""
    words = wordpunct_tokenize(text.lower())
    out = list(words)
    for k in range(2, ngrams + 1):
        out.extend(" ".join(words[i : i + k]) for i in range(len(words) - k + 1))
    return out


def get_ngram_counts_py(text: str, ngrams: int = 2, num_buckets: int = 10000) -> np.ndarray:
    """Dense hashed n-gram count vector of one document, computed in pure Python."""
    counts = np.zeros(num_buckets, dtype=np.int64)
    for g in ngram_strings(text, ngrams):
        counts[hash_buckets(g, num_buckets)] += 1
    return counts


# ----------------------------------------------------------------------------------------
# Character classes of WordPunct's \w and \s for every code point
# ----------------------------------------------------------------------------------------
# nltk >= 3.10 compiles WordPunct's pattern with the third-party `regex` engine, whose \w
# (Unicode TR18: letters, marks, decimal digits, connector punctuation, join controls) and
# \s differ from `re`'s (e.g. combining marks are word characters, '₁' is not, and
# \x1c-\x1f are not spaces). The classes are shipped as run-length data generated from
# `regex` (see generate_class_runs), so features never depend on the installed Unicode
# tables and need neither nltk nor regex at run time.

_CLASS_FILE = Path(__file__).resolve().parent.parent / "data" / "wordpunct_classes.json"
_CLASS_TABLE: np.ndarray | None = None


def generate_class_runs() -> dict:
    """Build the run-length class data from the installed `regex` module (maintenance only)."""
    import regex  # noqa: PLC0415 - optional, maintenance only

    n = sys.maxunicode + 1
    cps = np.r_[np.arange(0, 0xD800), np.arange(0xE000, n)]
    s = "".join(map(chr, cps.tolist()))
    table = np.full(n, _OTHER, dtype=np.uint8)
    flags = regex.UNICODE | regex.MULTILINE | regex.DOTALL  # nltk's RegexpTokenizer flags
    for pat, cls in ((r"\w", _WORD), (r"\s", _SPACE)):
        pos = np.array([m.start() for m in regex.finditer(pat, s, flags=flags)], dtype=np.int64)
        table[cps[pos]] = cls
    starts = np.r_[0, np.nonzero(np.diff(table.astype(np.int16)))[0] + 1]
    return {
        "source": f"regex {regex.__version__} (the engine of nltk 3.10 WordPunctTokenizer)",
        "classes": {"0": "space (\\s)", "1": "word (\\w)", "2": "other"},
        "runs": [[int(a), int(table[a])] for a in starts],
    }


def char_class_table() -> np.ndarray:
    """uint8 class per code point: 0 = space, 1 = word, 2 = other (WordPunct semantics)."""
    global _CLASS_TABLE
    if _CLASS_TABLE is None:
        runs = json.loads(_CLASS_FILE.read_text())["runs"]
        table = np.empty(sys.maxunicode + 1, dtype=np.uint8)
        bounds = [r[0] for r in runs] + [len(table)]
        for (start, cls), end in zip(runs, bounds[1:]):
            table[start:end] = cls
        _CLASS_TABLE = table
    return _CLASS_TABLE


def _class_pattern() -> re.Pattern[str]:
    """``[word]+|[other]+`` as explicit code point ranges (a fast pure-Python tokenizer)."""
    runs = json.loads(_CLASS_FILE.read_text())["runs"]
    bounds = [r[0] for r in runs] + [sys.maxunicode + 1]
    parts: dict[int, list[str]] = {_WORD: [], _OTHER: []}
    for (start, cls), end in zip(runs, bounds[1:]):
        if cls == _SPACE:
            continue
        lo, hi = start, end - 1
        if cls == _OTHER:  # surrogates cannot occur in str from valid UTF-8; keep them out
            if lo <= 0xDFFF and hi >= 0xD800:
                pieces = [(lo, 0xD7FF), (0xE000, hi)]
            else:
                pieces = [(lo, hi)]
        else:
            pieces = [(lo, hi)]
        for a, b in pieces:
            if a <= b:
                parts[cls].append(re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}")
    return re.compile("[" + "".join(parts[_WORD]) + "]+|[" + "".join(parts[_OTHER]) + "]+")


_WORDPUNCT_RE: re.Pattern[str] | None = None


# ----------------------------------------------------------------------------------------
# numba kernels
# ----------------------------------------------------------------------------------------

_K = np.array(
    [
        0x428A2F98,
        0x71374491,
        0xB5C0FBCF,
        0xE9B5DBA5,
        0x3956C25B,
        0x59F111F1,
        0x923F82A4,
        0xAB1C5ED5,
        0xD807AA98,
        0x12835B01,
        0x243185BE,
        0x550C7DC3,
        0x72BE5D74,
        0x80DEB1FE,
        0x9BDC06A7,
        0xC19BF174,
        0xE49B69C1,
        0xEFBE4786,
        0x0FC19DC6,
        0x240CA1CC,
        0x2DE92C6F,
        0x4A7484AA,
        0x5CB0A9DC,
        0x76F988DA,
        0x983E5152,
        0xA831C66D,
        0xB00327C8,
        0xBF597FC7,
        0xC6E00BF3,
        0xD5A79147,
        0x06CA6351,
        0x14292967,
        0x27B70A85,
        0x2E1B2138,
        0x4D2C6DFC,
        0x53380D13,
        0x650A7354,
        0x766A0ABB,
        0x81C2C92E,
        0x92722C85,
        0xA2BFE8A1,
        0xA81A664B,
        0xC24B8B70,
        0xC76C51A3,
        0xD192E819,
        0xD6990624,
        0xF40E3585,
        0x106AA070,
        0x19A4C116,
        0x1E376C08,
        0x2748774C,
        0x34B0BCB5,
        0x391C0CB3,
        0x4ED8AA4A,
        0x5B9CCA4F,
        0x682E6FF3,
        0x748F82EE,
        0x78A5636F,
        0x84C87814,
        0x8CC70208,
        0x90BEFFFA,
        0xA4506CEB,
        0xBEF9A3F7,
        0xC67178F2,
    ],
    dtype=np.uint64,
)
_H0 = np.array(
    [0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19],
    dtype=np.uint64,
)
_M32 = np.uint64(0xFFFFFFFF)


@nb.njit(cache=True, inline="always")
def _rotr(x, n):
    return ((x >> np.uint64(n)) | (x << np.uint64(32 - n))) & np.uint64(0xFFFFFFFF)


@nb.njit(cache=True, nogil=True)
def _sha256_mod(buf, length, num_buckets, K, H0, w):
    """SHA-256 of ``buf[:length]`` reduced mod ``num_buckets`` (as a big-endian integer)."""
    m32 = np.uint64(0xFFFFFFFF)
    h = H0.copy()
    total = ((length + 8) // 64 + 1) * 64
    bitlen = np.uint64(length) * np.uint64(8)
    for blk in range(0, total, 64):
        for t in range(16):
            v = np.uint64(0)
            for b in range(4):
                i = blk + 4 * t + b
                if i < length:
                    byte = np.uint64(buf[i])
                elif i == length:
                    byte = np.uint64(0x80)
                elif i >= total - 8:
                    byte = (bitlen >> np.uint64(8 * (total - 1 - i))) & np.uint64(0xFF)
                else:
                    byte = np.uint64(0)
                v = (v << np.uint64(8)) | byte
            w[t] = v
        for t in range(16, 64):
            x = w[t - 15]
            y = w[t - 2]
            s0 = _rotr(x, 7) ^ _rotr(x, 18) ^ (x >> np.uint64(3))
            s1 = _rotr(y, 17) ^ _rotr(y, 19) ^ (y >> np.uint64(10))
            w[t] = (w[t - 16] + s0 + w[t - 7] + s1) & m32
        a = h[0]
        b_ = h[1]
        c = h[2]
        d = h[3]
        e = h[4]
        f = h[5]
        g = h[6]
        hh = h[7]
        for t in range(64):
            S1 = _rotr(e, 6) ^ _rotr(e, 11) ^ _rotr(e, 25)
            ch = (e & f) ^ ((~e & m32) & g)
            t1 = (hh + S1 + ch + K[t] + w[t]) & m32
            S0 = _rotr(a, 2) ^ _rotr(a, 13) ^ _rotr(a, 22)
            maj = (a & b_) ^ (a & c) ^ (b_ & c)
            t2 = (S0 + maj) & m32
            hh = g
            g = f
            f = e
            e = (d + t1) & m32
            d = c
            c = b_
            b_ = a
            a = (t1 + t2) & m32
        h[0] = (h[0] + a) & m32
        h[1] = (h[1] + b_) & m32
        h[2] = (h[2] + c) & m32
        h[3] = (h[3] + d) & m32
        h[4] = (h[4] + e) & m32
        h[5] = (h[5] + f) & m32
        h[6] = (h[6] + g) & m32
        h[7] = (h[7] + hh) & m32
    r = np.uint64(0)
    B = np.uint64(num_buckets)
    for i in range(8):
        r = ((r << np.uint64(32)) + h[i]) % B
    return np.int64(r)


@nb.njit(cache=True, inline="always")
def _fmix(k):
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xFF51AFD7ED558CCD)
    k ^= k >> np.uint64(33)
    k *= np.uint64(0xC4CEB93FE53B8E2B)
    k ^= k >> np.uint64(33)
    return k


# The n-gram -> bucket cache is an open-addressing table stored as one uint64 array of
# 2*cap words: slot i holds ``k1`` at 2i and ``(k2 & HI32) | (bucket + 1)`` at 2i+1
# (0 = empty). One probe touches one 16-byte slot. Unigrams and longer n-grams have a
# table each (the unigram one stays small and hot in cache).
_HI32 = np.uint64(0xFFFFFFFF00000000)


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
def _featurize_kernel(
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
                v = _sha256_mod(scratch, ln, num_buckets, K, H0, w)
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
                    v = _sha256_mod(scratch, pos, num_buckets, K, H0, w)
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


@nb.njit(cache=True, nogil=True)
def sha256_mod_bytes(buf: np.ndarray, num_buckets: int) -> int:
    """SHA-256 of a uint8 array reduced mod ``num_buckets`` (numba; for tests)."""
    w = np.zeros(64, dtype=np.uint64)
    return _sha256_mod(buf, buf.shape[0], num_buckets, _K, _H0, w)


# ----------------------------------------------------------------------------------------
# Batch featurizer
# ----------------------------------------------------------------------------------------


def _lowered_utf8(texts: pa.Array | pa.ChunkedArray | Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Lower-case (exactly like ``str.lower``) and return (utf8 bytes, int64 offsets)."""
    if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
        texts = pa.array(list(texts), type=pa.large_string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if pa.types.is_dictionary(texts.type):
        texts = texts.cast(texts.type.value_type)
    # take() gives fresh buffers with zero-based offsets (compute kernels on sliced inputs
    # may return offsets that are not relative to the returned data buffer).
    texts = texts.cast(pa.large_string()).fill_null("")
    if texts.offset != 0 or (len(texts) and np.frombuffer(texts.buffers()[1], dtype=np.int64)[0] != 0):
        texts = texts.take(pa.array(np.arange(len(texts), dtype=np.int64)))
    lowered = pc.ascii_lower(texts)
    is_ascii = pc.string_is_ascii(texts)
    if not pc.all(is_ascii).as_py():
        non_ascii = pc.invert(is_ascii)
        py = [s.lower() for s in texts.filter(non_ascii).to_pylist()]
        lowered = pc.replace_with_mask(lowered, non_ascii, pa.array(py, type=pa.large_string()))
    if isinstance(lowered, pa.ChunkedArray):
        lowered = lowered.combine_chunks()
    off = np.frombuffer(lowered.buffers()[1], dtype=np.int64)[
        lowered.offset : lowered.offset + len(lowered) + 1
    ]
    buf = lowered.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None else np.zeros(0, dtype=np.uint8)
    if len(off) and (off[0] != 0 or off[-1] > data.size):  # pragma: no cover - defensive
        lowered = pa.array(lowered.to_pylist(), type=pa.large_string())
        return _lowered_utf8(lowered)
    return data, np.ascontiguousarray(off)


class HashedNgramFeaturizer:
    """Hashed n-gram featurizer (``data-selection`` compatible) over whole batches.

    Holds a per-process cache of n-gram -> bucket (bounded by ``max_cache``); results do
    not depend on the cache state, batch boundaries or document order.
    """

    def __init__(self, num_buckets: int = 10000, ngrams: int = 2, max_cache: int = 1 << 22) -> None:
        if num_buckets < 1 or num_buckets >= 1 << 31:
            raise ValueError("num_buckets must be in [1, 2**31)")
        if ngrams < 1:
            raise ValueError("ngrams must be >= 1")
        self.num_buckets = int(num_buckets)
        self.ngrams = int(ngrams)
        self.max_cache = int(max_cache)
        self._cls = char_class_table()
        self._local = threading.local()  # the n-gram -> bucket cache is per thread (the kernel mutates it)

    def _cache(self) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray]:
        loc = self._local
        if not hasattr(loc, "tabs"):
            cap = 1 << 14
            loc.tabs = (np.zeros(2 * cap, dtype=np.uint64), np.zeros(2 * cap, dtype=np.uint64))
            loc.fills = np.zeros(2, dtype=np.int64)
        return loc.tabs, loc.fills

    def __getstate__(self) -> dict:  # ship without the cache
        return {"num_buckets": self.num_buckets, "ngrams": self.ngrams, "max_cache": self.max_cache}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["num_buckets"], state["ngrams"], state["max_cache"])

    def _run(self, texts, log_diff: np.ndarray | None, count_mask: np.ndarray | None):
        data, off = _lowered_utf8(texts)
        n = len(off) - 1
        counts = np.zeros(self.num_buckets, dtype=np.int64)
        logw = np.zeros(n, dtype=np.float64)
        ntok = np.zeros(n, dtype=np.int64)
        do_score = log_diff is not None
        ld = np.ascontiguousarray(log_diff, dtype=np.float64) if do_score else np.zeros(1, dtype=np.float64)
        if do_score and ld.shape[0] != self.num_buckets:
            raise ValueError("log_diff has the wrong number of buckets")
        if count_mask is None:
            cm = np.zeros(n, dtype=np.bool_) if do_score else np.ones(n, dtype=np.bool_)
        else:
            cm = np.ascontiguousarray(count_mask, dtype=np.bool_)
        tabs, fills = self._cache()
        self._local.tabs = _featurize_kernel(
            data,
            off,
            self._cls,
            self.ngrams,
            self.num_buckets,
            tabs,
            fills,
            self.max_cache,
            ld,
            do_score,
            cm,
            counts,
            logw,
            ntok,
            _K,
            _H0,
        )
        return counts, logw, ntok

    def counts(self, texts, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Summed bucket counts over documents (those where ``mask`` is true) and token counts."""
        counts, _, ntok = self._run(texts, None, mask if mask is not None else None)
        return counts, ntok

    def score(
        self, texts, log_diff: np.ndarray, count_mask: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per-document ``log w`` and token counts; also summed counts over ``count_mask`` docs."""
        counts, logw, ntok = self._run(texts, log_diff, count_mask)
        return logw, ntok, counts

    def dense(self, text: str) -> np.ndarray:
        """Dense count vector of one document (``get_ngram_counts`` of the reference)."""
        return self.counts([text])[0]


def get_ngram_counts(text: str, ngrams: int = 2, num_buckets: int = 10000) -> np.ndarray:
    """Dense hashed n-gram count vector of one document (fast path)."""
    return HashedNgramFeaturizer(num_buckets, ngrams).dense(text)


def example_length(features: np.ndarray, ngrams: int = 2) -> int:
    """Token count recovered from a feature vector, as the reference does."""
    n = ngrams
    return int((int(features.sum()) + n * (n - 1) // 2) // n)


# ----------------------------------------------------------------------------------------
# Distributions, weights, KL
# ----------------------------------------------------------------------------------------


def target_distribution(counts: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """``(c + lambda) / sum(c + lambda)`` (Laplace smoothing over all buckets)."""
    c = np.asarray(counts, dtype=np.float64) + float(smoothing)
    total = c.sum()
    if total <= 0:
        raise ValueError("target distribution is empty (no n-grams in the target set)")
    return c / total


def raw_distribution(counts: np.ndarray) -> np.ndarray:
    """Unsmoothed ``c / sum(c)``."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        raise ValueError("raw distribution is empty (no n-grams in the raw pool)")
    return c / total


def log_diff(target_probs: np.ndarray, raw_probs: np.ndarray) -> np.ndarray:
    """Per-bucket log importance ratio ``log(t + 1e-8) - log(r + 1e-8)``."""
    return np.log(target_probs + EPS) - np.log(raw_probs + EPS)


def kl_divergence(p: np.ndarray, q_counts: np.ndarray) -> float:
    """KL(p || q) in nats, with ``q = c/sum(c)`` and ``ln(q + 1e-8)``; sums over ``p > 0``."""
    q_counts = np.asarray(q_counts, dtype=np.float64)
    total = q_counts.sum()
    q = q_counts / total if total > 0 else q_counts
    nz = p > 0
    return float(np.sum(p[nz] * (np.log(p[nz]) - np.log(q[nz] + EPS))))


def kl_reduction(targets: Iterable[np.ndarray], raw_counts: np.ndarray, selected_counts: np.ndarray) -> dict:
    """Average over targets of KL(t || raw) - KL(t || selected) (DSIR paper metric)."""
    kr, ks = [], []
    for p in targets:
        kr.append(kl_divergence(p, raw_counts))
        ks.append(kl_divergence(p, selected_counts))
    red = float(np.mean(np.array(kr) - np.array(ks))) if kr else 0.0
    return {
        "kl_target_raw": float(np.mean(kr)),
        "kl_target_selected": float(np.mean(ks)),
        "kl_reduction": red,
    }


# ----------------------------------------------------------------------------------------
# Seeded Gumbel keys
# ----------------------------------------------------------------------------------------


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
