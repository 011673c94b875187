"""The fast MinHash kernel's input: code-point tables and the UTF-8 buffer of a batch.

ASCII texts go to the kernel as they are; other texts are NFKC-normalized here (and
lowercased here only when ``str.lower()`` depends on context), one document at a time;
the kernel lowercases code points through :func:`lower_table` and splits words with
:func:`word_table`. The result equals hashing ``NFKC(text).lower()``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

import numpy as np

_WORD_RE = re.compile(r"[^\W_]+")

_WORD_TABLE: np.ndarray | None = None


def word_table() -> np.ndarray:
    """``table[cp]`` is True iff code point ``cp`` is a word character (``[^\\W_]``)."""
    global _WORD_TABLE
    if _WORD_TABLE is None:
        # one regex pass over every code point (a per-character isalnum loop takes ~1 s);
        # word characters come in a few thousand runs of consecutive code points
        table = np.zeros(0x110000, dtype=np.bool_)
        for m in _WORD_RE.finditer("".join(map(chr, range(0x110000)))):
            table[m.start():m.end()] = True
        _WORD_TABLE = table
    return _WORD_TABLE


_LOWER_TABLE: np.ndarray | None = None
#: the only code points whose ``str.lower()`` is not one fixed code point: U+0130 lowers to
#: two, and U+03A3 (capital sigma) to final or medial sigma by context. A text holding one
#: is lowercased by Python; every other text by the kernel, through :func:`lower_table`.
_CONTEXT_LOWER = ("\u0130", "\u03a3")


def lower_table() -> np.ndarray:
    """``table[cp]`` is the code point of ``chr(cp).lower()`` (``cp`` itself for U+0130)."""
    global _LOWER_TABLE
    if _LOWER_TABLE is None:
        every = "".join(map(chr, range(0x110000))).replace("\u0130", "\x00").lower()
        table = np.frombuffer(every.encode("utf-32-le", "surrogatepass"), dtype="<u4").astype(np.int32)
        table[0x130] = 0x130
        _LOWER_TABLE = table
    return _LOWER_TABLE


def _prepare(text: str) -> bytes:
    """A non-ASCII text for the kernel: NFKC, lowercased here only if the kernel's
    per-code-point lowercase would differ from ``str.lower()``."""
    t = unicodedata.normalize("NFKC", text)
    if _CONTEXT_LOWER[0] in t or _CONTEXT_LOWER[1] in t:
        t = t.lower()
    return t.encode("utf-8", "surrogatepass")


def _encode_batch(texts: Sequence[str | None]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate the texts' UTF-8 bytes for the kernel: ASCII as is, others NFKC-normalized
    first (:func:`_prepare`); the kernel lowercases and splits words."""
    parts: list[bytes] = []
    for t in texts:
        if t is None:
            parts.append(b"")
        elif t.isascii():
            parts.append(t.encode("ascii"))
        else:
            parts.append(_prepare(t))
    lens = np.fromiter((len(p) for p in parts), dtype=np.int64, count=len(parts))
    offsets = np.zeros(len(parts) + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    buf = np.frombuffer(b"".join(parts), dtype=np.uint8)
    return buf, offsets


def _is_arrow(x) -> bool:
    return type(x).__module__.startswith("pyarrow") and hasattr(x, "to_pylist")


def _normalized(arr):
    """:func:`_prepare` of every text of an Arrow string array, as a large_binary array
    built one document at a time (never a Python string per document at once: a chunk of
    non-Latin text is ~4x its UTF-8 size as Python strings)."""
    import pyarrow as pa

    out = bytearray()
    offs = np.zeros(len(arr) + 1, dtype=np.int64)
    for i in range(len(arr)):
        out += _prepare(arr[i].as_py())
        offs[i + 1] = len(out)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(arr), [None, pa.py_buffer(offs),
                                                                          pa.py_buffer(bytes(out))])


def _encode_arrow(arr) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_encode_batch` of an Arrow string array without a Python string per ASCII
    document: ASCII rows are used straight from the Arrow buffer (zero copy when every
    row is ASCII); only non-ASCII rows are normalized in Python. Nulls count as empty."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        pass
    else:
        arr = arr.cast(pa.large_string())
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    ascii_ = pc.string_is_ascii(arr).to_numpy(zero_copy_only=False)
    if not ascii_.all():
        norm = _normalized(arr.filter(pa.array(~ascii_)))
        idx = np.cumsum(~ascii_) - 1
        order = np.where(ascii_, np.arange(len(arr)), len(arr) + idx)
        both = pa.concat_arrays([arr.cast(pa.large_binary()), norm])
        arr = both.take(pa.array(order, pa.int64()))
    off_t = np.int64 if pa.types.is_large_string(arr.type) or pa.types.is_large_binary(arr.type) else np.int32
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], dtype=off_t)[arr.offset: arr.offset + len(arr) + 1].astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    base = offs[0]
    return data[base: offs[-1]], offs - base
