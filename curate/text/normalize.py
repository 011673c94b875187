"""Text normalization shared by exact dedup and simple filters."""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

_PUNCT_WS = re.compile(r"[\W_]+", re.UNICODE)


def normalize_for_dedup(text: str) -> str:
    """NFKC, lowercase, punctuation and whitespace runs folded to one space, trimmed."""
    return _PUNCT_WS.sub(" ", unicodedata.normalize("NFKC", text).lower()).strip()


def text_hashes(texts: pa.Array | pa.ChunkedArray, normalize: bool = True) -> np.ndarray:
    """uint64 xxh3 hash of each (normalized) text; nulls hash as the empty string."""
    out = np.empty(len(texts), dtype=np.uint64)
    for i, t in enumerate(texts.to_pylist()):
        s = t or ""
        if normalize:
            s = normalize_for_dedup(s)
        out[i] = xxhash.xxh3_64_intdigest(s.encode("utf-8"))
    return out


def word_counts(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Whitespace-separated word count per document (nulls count 0)."""
    t = pc.utf8_trim_whitespace(pc.fill_null(texts, ""))
    n = pc.list_value_length(pc.utf8_split_whitespace(t)).to_numpy(zero_copy_only=False)
    empty = pc.equal(pc.utf8_length(t), 0).to_numpy(zero_copy_only=False)
    return np.where(empty, 0, n).astype(np.int64)


def char_counts(texts: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Unicode character count per document (nulls count 0)."""
    return pc.utf8_length(pc.fill_null(texts, "")).to_numpy(zero_copy_only=False).astype(np.int64)


def utf8_bytes(texts: pa.Array | pa.ChunkedArray) -> int:
    """Total UTF-8 bytes of a text column."""
    if len(texts) == 0:
        return 0
    s = pc.sum(pc.binary_length(pc.fill_null(texts, ""))).as_py()
    return int(s or 0)
