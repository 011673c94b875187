"""Hashed n-gram features of DSIR (``data-selection`` compatible) over Arrow batches.

:class:`HashedNgramFeaturizer` lower-cases a batch exactly like ``str.lower`` and hands its
UTF-8 bytes to the numba kernel (:mod:`curate.text.dsir.ngram_kernel`). The pure-Python
functions (:func:`hash_buckets`, :func:`ngram_strings`, :func:`get_ngram_counts_py`) spell
out the reference's features one document at a time; the tests hold the kernel to them.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.text.dsir.ngram_kernel import featurize_kernel
from curate.text.dsir.sha256_kernel import SHA256_H0, SHA256_K
from curate.text.dsir.wordpunct import char_class_table, wordpunct_tokenize

# ----------------------------------------------------------------------------------------
# Pure-Python reference (used in tests and for single documents)
# ----------------------------------------------------------------------------------------


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
        self._local.tabs = featurize_kernel(
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
            SHA256_K,
            SHA256_H0,
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
