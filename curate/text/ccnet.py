"""CCNet text normalization and document perplexity (Wenzek et al. 2019).

Re-implemented from the behaviour of CCNet's released code (``cc_net/text_normalizer.py``
and ``DocLM`` in ``cc_net/perplexity.py``; Wenzek et al. 2019, arXiv:1911.00359):

:func:`normalize` (defaults ``accent=True, case=True, numbers=True, punct=1``), in order:
``strip`` (empty stays empty) -> ``lower`` -> accent stripping (NFD, drop category Mn) ->
every Unicode decimal digit to ``0`` -> fixed Unicode punctuation map -> delete code points
0-31 and 127-159 (so ``\\n`` and ``\\t`` vanish, they are not replaced by spaces).

:func:`doc_perplexity` reproduces CCNet's ``DocLM``: per line ``model.score(line)`` (log10,
with ``<s>`` and ``</s>``), length ``len(line.split()) + 1``, and
``round(10 ** (-sum(score) / sum(length)), 1)``. In the shipped CCNet pipeline the whole
document is normalized first, which deletes the newlines, so a document is scored as one
line (``mode="ccnet_faithful"``); ``mode="per_line"`` normalizes and scores each line.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from collections.abc import Callable
from typing import Any, Literal

import numba as nb
import numpy as np

# Fixed CCNet punctuation map (34 entries).
UNICODE_PUNCT: dict[str, str] = {
    "，": ",", "。": ".", "、": ",", "„": '"', "”": '"', "“": '"', "«": '"', "»": '"',
    "１": '"', "」": '"', "「": '"', "《": '"', "》": '"', "´": "'", "∶": ":", "：": ":",
    "？": "?", "！": "!", "（": "(", "）": ")", "；": ";", "–": "-", "—": " - ", "．": ". ",
    "～": "~", "’": "'", "…": "...", "━": "-", "〈": "<", "〉": ">", "【": "[", "】": "]",
    "％": "%", "►": "-",
}  # fmt: skip

_PUNCT_TABLE = str.maketrans(UNICODE_PUNCT)
_NON_PRINTING = "".join(map(chr, list(range(0, 32)) + list(range(127, 160))))
_NON_PRINTING_RE = re.compile(f"[{re.escape(_NON_PRINTING)}]")
_DELETE_PUNCT_RE = re.compile(f"[{re.escape(''.join(UNICODE_PUNCT) + _NON_PRINTING)}]")
_DIGIT_RE = re.compile(r"\d")


# Fast path (same result as the step-by-step definition): lower-case the whole string,
# run the Unicode steps (NFD + drop Mn, Unicode digits, punctuation map, C1 controls) only
# on maximal runs of non-ASCII characters -- NFD and mark reordering never cross an ASCII
# character -- then map ASCII digits and delete ASCII controls with one bytes.translate.
_BYTES_TABLE = bytes.maketrans(b"123456789", b"000000000")
_BYTES_DELETE = bytes(range(32)) + b"\x7f"
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]+")


_RUN_CACHE: dict[str, str] = {}  # memo of a pure function: run -> normalized run


def _fix_non_ascii_str(run: str) -> str:
    out = _DIGIT_RE.sub("0", strip_accents(run))
    return _NON_PRINTING_RE.sub("", out.translate(_PUNCT_TABLE))


def _fix_non_ascii(m: re.Match[str]) -> str:
    run = m.group()
    out = _RUN_CACHE.get(run)
    if out is None:
        out = _fix_non_ascii_str(run)
        if len(_RUN_CACHE) >= 100_000:
            _RUN_CACHE.clear()
        _RUN_CACHE[run] = out
    return out


def normalize_bytes(line: str) -> bytes:
    """``normalize(line).encode("utf-8")`` with the default options, computed fast."""
    line = line.strip()
    if not line:
        return b""
    line = line.lower()
    if not line.isascii():
        line = _NON_ASCII_RUN.sub(_fix_non_ascii, line)
    return line.encode("utf-8").translate(_BYTES_TABLE, _BYTES_DELETE)


@nb.njit(cache=True, nogil=True)
def _non_ascii_runs(data: np.ndarray, lens: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Maximal runs of bytes >= 0x80 (= runs of non-ASCII characters in UTF-8), as
    (doc-relative start, end) pairs, plus the number of runs per document."""
    n_runs = np.zeros(lens.shape[0], dtype=np.int64)
    spans = np.empty((data.shape[0] // 2 + 1, 2), dtype=np.int64)  # a run has >= 2 bytes
    k = 0
    pos = 0
    for d in range(lens.shape[0]):
        end = pos + lens[d]
        i = pos
        while i < end:
            if data[i] >= 0x80:
                j = i + 1
                while j < end and data[j] >= 0x80:
                    j += 1
                spans[k, 0] = i - pos
                spans[k, 1] = j - pos
                k += 1
                n_runs[d] += 1
                i = j
            else:
                i += 1
        pos = end
    return spans[:k], n_runs


def _fix_run_bytes(run: bytes) -> bytes:
    out = _RUN_BYTES_CACHE.get(run)
    if out is None:
        out = _fix_non_ascii_str(run.decode("utf-8")).encode("utf-8")
        if len(_RUN_BYTES_CACHE) >= 100_000:
            _RUN_BYTES_CACHE.clear()
        _RUN_BYTES_CACHE[run] = out
    return out


_RUN_BYTES_CACHE: dict[bytes, bytes] = {}


def normalize_bytes_many(texts: list[str]) -> list[bytes]:
    """``[normalize_bytes(t) for t in texts]``, faster for mostly-ASCII non-ASCII text:
    the non-ASCII runs are found on UTF-8 bytes in one numba pass and mapped through a cache."""
    enc = [t.strip().lower().encode("utf-8") for t in texts]
    if not enc:
        return []
    lens = np.fromiter((len(b) for b in enc), dtype=np.int64, count=len(enc))
    spans, n_runs = _non_ascii_runs(np.frombuffer(b"".join(enc), dtype=np.uint8), lens)
    out: list[bytes] = []
    k = 0
    sp = spans.tolist()
    for b, r in zip(enc, n_runs.tolist()):
        if r:
            pieces = []
            prev = 0
            for a, e in sp[k : k + r]:
                pieces.append(b[prev:a])
                pieces.append(_fix_run_bytes(b[a:e]))
                prev = e
            pieces.append(b[prev:])
            b = b"".join(pieces)
            k += r
        out.append(b.translate(_BYTES_TABLE, _BYTES_DELETE))
    return out


def _mn_regex() -> re.Pattern[str]:
    """A character class of every code point of category Mn (non-spacing marks)."""
    ranges: list[tuple[int, int]] = []
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp)) == "Mn":
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    parts = [re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}" for a, b in ranges]
    return re.compile("[" + "".join(parts) + "]")


_MN_RE: re.Pattern[str] | None = None


def strip_accents(line: str) -> str:
    """NFD, then drop every non-spacing mark (category Mn)."""
    global _MN_RE
    if _MN_RE is None:
        _MN_RE = _mn_regex()
    return _MN_RE.sub("", unicodedata.normalize("NFD", line))


def replace_unicode_punct(text: str) -> str:
    """Map CCNet's Unicode punctuation to ASCII (e.g. ``，`` -> ``,``, ``—`` -> `` - ``)."""
    return text.translate(_PUNCT_TABLE)


def remove_non_printing_char(text: str) -> str:
    """Delete code points 0-31 and 127-159."""
    return _NON_PRINTING_RE.sub("", text)


def normalize(line: str, accent: bool = True, case: bool = True, numbers: bool = True, punct: int = 1) -> str:
    """CCNet ``text_normalizer.normalize`` (see module docstring for the steps).

    ``punct=1`` maps Unicode punctuation, ``punct=2`` deletes it, ``0`` leaves it.
    """
    if accent and case and numbers and punct == 1:
        return normalize_bytes(line).decode("utf-8")
    line = line.strip()
    if not line:
        return line
    if case:
        line = line.lower()
    if accent:
        line = strip_accents(line)
    if numbers:
        line = _DIGIT_RE.sub("0", line)
    if punct == 1:
        line = replace_unicode_punct(line)
    elif punct == 2:
        line = _DELETE_PUNCT_RE.sub("", line)
    return remove_non_printing_char(line)


def normalize_for_dedup(line: str) -> str:
    """CCNet's dedup variant: strip, lower, digits -> 0, delete Unicode punct and control chars."""
    line = line.strip()
    if not line:
        return line
    line = _DIGIT_RE.sub("0", line.lower())
    return _DELETE_PUNCT_RE.sub("", line)


Mode = Literal["ccnet_faithful", "per_line"]


def prepare_lines(
    text: str,
    mode: Mode = "ccnet_faithful",
    tokenize: Callable[[str], str] | None = None,
    do_normalize: bool = True,
) -> list[str]:
    """The lines CCNet scores for one document (normalized, optionally SentencePiece'd)."""
    if mode == "ccnet_faithful":
        doc = normalize(text) if do_normalize else text
        if tokenize is not None:
            doc = tokenize(doc)
        return doc.split("\n")
    lines = []
    for line in text.split("\n"):
        if do_normalize:
            line = normalize(line)
        if tokenize is not None:
            line = tokenize(line)
        lines.append(line)
    return lines


def lines_log10(model: Any, lines: list[str]) -> tuple[float, int]:
    """Sum of kenlm ``score`` (log10, bos/eos) and of lengths (words + 1) over lines."""
    s = 0.0
    n = 0
    for line in lines:
        s += model.score(line, bos=True, eos=True)
        n += len(line.split()) + 1
    return s, n


def perplexity_from(log10_sum: float, length: int) -> float:
    """CCNet's rounding: ``round(10 ** (-log10_sum / length), 1)``."""
    return round(10.0 ** (-log10_sum / length), 1)


def doc_perplexity(
    model: Any,
    text: str,
    mode: Mode = "ccnet_faithful",
    tokenize: Callable[[str], str] | None = None,
    do_normalize: bool = True,
) -> float:
    """Document perplexity exactly as CCNet computes it (rounded to 0.1)."""
    s, n = lines_log10(model, prepare_lines(text, mode, tokenize, do_normalize))
    return perplexity_from(s, n)


def sentencepiece_tokenizer(model_path: str) -> Callable[[str], str]:
    """``text -> " ".join(sp.encode_as_pieces(text))`` for a SentencePiece model file."""
    try:
        import sentencepiece as spm
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "a SentencePiece model was given but the `sentencepiece` package is not installed"
        ) from e
    sp = spm.SentencePieceProcessor()
    if not sp.Load(str(model_path)):  # pragma: no cover - Load raises on failure in practice
        raise RuntimeError(f"cannot load SentencePiece model {model_path}")

    def tok(text: str) -> str:
        return " ".join(sp.EncodeAsPieces(text))

    return tok
