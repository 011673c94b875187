"""KenLM perplexity, CCNet style: ``perplexity_score`` (map) and ``perplexity_filter`` (barrier)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Literal

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field, field_validator, model_validator

from curate import schema
from curate.lm import ModelError, arpa_orders, is_arpa, load_kenlm
from curate.fit import FitContext, ShardSet
from curate.params import Annotated, ReadPath
from curate.stage import (
    BarrierStage,
    MapResult,
    MapStage,
    StageError,
    StageParams,
    finite_numbers,
    split_batch,
)
from curate.text import ccnet

EMPTY_REASON = schema.EMPTY_TEXT
BUCKETS = ("head", "middle", "tail")


def _abs(p: str | None) -> str | None:
    return None if p is None else str(Path(p).expanduser().resolve())


# ASCII documents are normalized on bytes (lower-case, digits -> 0, control bytes deleted).
# Leading / trailing spaces (which CCNet strips first) change neither the kenlm score nor
# the word count, so stripping is skipped.


_BYTE_MAP = np.arange(256, dtype=np.uint8)
_BYTE_MAP[65:91] += 32  # A-Z -> a-z
_BYTE_MAP[49:58] = 48  # 1-9 -> 0
_BYTE_KEPT = np.ones(256, dtype=np.int64)
_BYTE_KEPT[:32] = 0
_BYTE_KEPT[127] = 0
_BYTE_SPACE = np.zeros(256, dtype=np.int64)
_BYTE_SPACE[32] = 1


@nb.njit(cache=True, nogil=True)
def _ascii_normalize(data: np.ndarray, offsets: np.ndarray):
    """One pass over a batch's UTF-8 bytes: for ASCII documents, the normalized bytes
    (lower-case, digits -> 0, control bytes deleted) and ``len(normalized.split())``.
    Returns (bytes, new offsets, words, is_ascii); non-ASCII documents are left to Python."""
    n = offsets.shape[0] - 1
    out = np.empty(offsets[n] - offsets[0], dtype=np.uint8)
    new_off = np.zeros(n + 1, dtype=np.int64)
    words = np.zeros(n, dtype=np.int64)
    is_ascii = np.ones(n, dtype=np.bool_)
    pos = 0
    for d in range(n):
        start = pos
        prev = np.int64(1)  # 1 if the last kept byte was a space (or none yet)
        c = np.int64(0)
        hi_bits = np.uint8(0)
        for i in range(offsets[d], offsets[d + 1]):  # branch-free: spaces are unpredictable
            x = data[i]
            hi_bits |= x
            y = _BYTE_MAP[x]
            kept = _BYTE_KEPT[x]
            sp = _BYTE_SPACE[x]
            c += kept & (1 - sp) & prev
            prev = (prev & (1 - kept)) | sp
            out[pos] = y
            pos += kept
        if hi_bits >= 0x80:
            is_ascii[d] = False
            pos = start
            c = 0
        words[d] = c
        new_off[d + 1] = pos
    return out[:pos], new_off, words, is_ascii


# Code points str.split() treats as whitespace (none above U+3000).
_UNICODE_SPACE = np.array([chr(c).isspace() for c in range(0x3001)], dtype=np.bool_)


@nb.njit(cache=True, nogil=True)
def _count_words_utf8(data: np.ndarray, lens: np.ndarray, space: np.ndarray) -> np.ndarray:
    """``len(text.split())`` for concatenated UTF-8 documents of the given byte lengths."""
    out = np.zeros(lens.shape[0], dtype=np.int64)
    pos = 0
    for d in range(lens.shape[0]):
        end = pos + lens[d]
        prev = True
        c = 0
        while pos < end:
            b0 = data[pos]
            if b0 < 0x80:
                cp = np.int64(b0)
                ln = 1
            elif b0 < 0xE0:
                cp = ((np.int64(b0) & 0x1F) << 6) | (np.int64(data[pos + 1]) & 0x3F)
                ln = 2
            elif b0 < 0xF0:
                cp = (
                    ((np.int64(b0) & 0x0F) << 12)
                    | ((np.int64(data[pos + 1]) & 0x3F) << 6)
                    | (np.int64(data[pos + 2]) & 0x3F)
                )
                ln = 3
            else:
                cp = 0x10000
                ln = 4
            is_space = cp < space.shape[0] and space[cp]
            if prev and not is_space:
                c += 1
            prev = is_space
            pos += ln
        out[d] = c
    return out


def _utf8_parts(col: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, np.ndarray, np.ndarray]:
    """(zero-based large_string array, its UTF-8 data (zero-copy uint8), int64 offsets);
    nulls become ''."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    arr = arr.cast(pa.large_string()).fill_null("")
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    n = len(arr)
    offs = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + n + 1]
    if n and offs[0] != 0:
        arr = arr.take(pa.array(np.arange(n, dtype=np.int64)))
        offs = np.frombuffer(arr.buffers()[1], dtype=np.int64)[: n + 1]
    buf = arr.buffers()[2]
    data = np.frombuffer(buf, dtype=np.uint8) if buf is not None else np.zeros(0, dtype=np.uint8)
    return arr, data, offs


class PerplexityScoreParams(StageParams):
    model: Annotated[str, ReadPath] = Field(
        description="KenLM model: ARPA text file or kenlm binary (trained e.g. with `curate lm train`)"
    )
    sentencepiece: Annotated[str | None, ReadPath] = Field(
        None, description="Optional SentencePiece model applied after normalization (pieces joined by spaces)"
    )
    mode: Literal["ccnet_faithful", "per_line"] = Field(
        "ccnet_faithful",
        description="ccnet_faithful: normalize the whole document (newlines vanish) and score it as one "
        "line, "
        "as CCNet's released pipeline does; per_line: normalize and score each line",
    )
    normalize: bool = Field(
        True, description="Apply CCNet normalization (turn off only for pre-normalized text)"
    )
    expected_order: int | None = Field(None, ge=1, description="Fail unless the model has this order")
    on_empty: Literal["reject", "score"] = Field(
        "reject",
        description="Documents with no text after normalization: `reject` (reason empty_text) or `score` "
        "(CCNet's value for an empty line: 10 ** -log10 p(</s> | <s>))",
    )


class PerplexityScore(MapStage):
    """Score documents with a KenLM model exactly as CCNet does (`perplexity` column).

    CCNet normalization (lower-case, accents stripped, digits -> 0, Unicode punctuation
    mapped, control characters deleted), optional SentencePiece, then
    `round(10 ** (-sum log10 p / (words + 1)), 1)`. The model loads once per worker.
    Rejects: `empty_text` (nothing left after normalization, unless on_empty=score).
    """

    name = "perplexity_score"
    Params = PerplexityScoreParams
    reject_reasons = {EMPTY_REASON: "no text left after CCNet normalization (on_empty: reject)"}
    uses_model = True

    def __init__(self, params: Any = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._model_path = _abs(self.params.model)
        self._sp_path = _abs(self.params.sentencepiece)
        self._model: Any = None
        self._tok: Any = None

    def __getstate__(self) -> dict:
        d = dict(self.__dict__)
        d["_model"] = None
        d["_tok"] = None
        d["_ready"] = False
        return d

    def provided_columns(self) -> set[str]:
        return {schema.PERPLEXITY}

    def score_columns(self) -> list[str]:
        return [schema.PERPLEXITY]

    def setup(self) -> None:
        ccnet.strip_accents("\u00e9")  # build the accent table now, not in the first batch
        try:
            self._model = load_kenlm(self._model_path, self.params.expected_order)
        except ModelError as e:
            raise StageError(f"perplexity_score: {e}") from e
        if self._sp_path:
            if not Path(self._sp_path).is_file():
                raise StageError(f"perplexity_score: SentencePiece model not found: {self._sp_path}")
            try:
                self._tok = ccnet.sentencepiece_tokenizer(self._sp_path)
            except Exception as e:  # noqa: BLE001
                raise StageError(
                    f"perplexity_score: cannot load SentencePiece model {self._sp_path}: {e}"
                ) from e

    def run_stats(self) -> dict[str, Any]:
        """Model facts from the files alone (the driver never loads the model)."""
        out: dict[str, Any] = {"model": self._model_path, "sentencepiece": self._sp_path}
        for key, path in (("model_xxh3", self._model_path), ("sentencepiece_xxh3", self._sp_path)):
            if path and Path(path).is_file():
                h = xxhash.xxh3_64()
                with open(path, "rb") as f:
                    for chunk in iter(lambda: f.read(1 << 22), b""):
                        h.update(chunk)
                out[key] = h.hexdigest()
        if self._model is not None:
            out["model_order"] = int(self._model.order)
        elif Path(self._model_path).is_file() and is_arpa(self._model_path):
            out["model_order"] = len(arpa_orders(self._model_path))
        return out

    def scores(self, texts: list[str | None] | pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """(perplexity, is_empty) for raw documents (a list or an Arrow string array)."""
        p = self.params
        if p.mode == "ccnet_faithful" and p.normalize and self._tok is None:
            if not isinstance(texts, (pa.Array, pa.ChunkedArray)):
                texts = pa.array(texts, type=pa.large_string())
            return self._scores_fast(texts)
        if isinstance(texts, (pa.Array, pa.ChunkedArray)):
            texts = texts.to_pylist()
        model, tok = self._model, self._tok
        out = np.empty(len(texts), dtype=np.float64)
        empty = np.zeros(len(texts), dtype=bool)
        for i, t in enumerate(texts):
            lines = ccnet.prepare_lines(t or "", p.mode, tok, p.normalize)
            s, n = ccnet.lines_log10(model, lines)
            empty[i] = not any(line.strip() for line in lines)
            out[i] = round(10.0 ** (-s / n), 1)
        return out, empty

    def _scores_fast(self, col: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
        """Whole-document CCNet scoring straight from the Arrow UTF-8 buffer (kenlm takes
        bytes); ASCII documents never become Python strings."""
        score = self._model.score
        arr, data, offs = _utf8_parts(col)
        buf, new_off, words, is_ascii = _ascii_normalize(data, offs)
        norm = buf.tobytes()
        no = new_off.tolist()
        ol = offs.tolist()
        bs: list[bytes] = []
        other: list[int] = []
        for i, a in enumerate(is_ascii.tolist()):
            bs.append(norm[no[i] : no[i + 1]] if a else b"")
            if not a:
                other.append(i)
        if other:
            raw = [data[ol[i] : ol[i + 1]].tobytes().decode("utf-8") for i in other]
            sub = ccnet.normalize_bytes_many(raw)
            for i, b in zip(other, sub):
                bs[i] = b
            lens = np.fromiter((len(b) for b in sub), dtype=np.int64, count=len(sub))
            buf_o = np.frombuffer(b"".join(sub), dtype=np.uint8)
            words[np.array(other, dtype=np.int64)] = _count_words_utf8(buf_o, lens, _UNICODE_SPACE)
        log10 = np.array([score(b) for b in bs], dtype=np.float64)
        expo = (-log10 / (words + 1)).tolist()  # IEEE division: same as Python's
        out = np.array([round(10.0**e, 1) for e in expo], dtype=np.float64)  # Python pow + round, as CCNet
        return out, words == 0

    def process(self, batch: pa.Table) -> MapResult:
        col = batch.column(self.text_column)
        pp, empty = self.scores(col)
        out = batch.append_column(schema.PERPLEXITY, pa.array(pp, type=pa.float64()))
        if self.params.on_empty == "score" or not empty.any():
            return MapResult(out, None)
        return split_batch(out, ~empty, EMPTY_REASON, "no text left after CCNet normalization")


# ----------------------------------------------------------------------------------------
# perplexity_filter
# ----------------------------------------------------------------------------------------


class PerplexityFilterParams(StageParams):
    method: Literal["percentile", "cutoffs", "max"] = Field(
        "percentile",
        description="percentile: learn head/tail cutoffs from the data; cutoffs: explicit cutoffs; "
        "max: keep perplexity <= max_perplexity",
    )
    percentiles: tuple[float, float] = Field(
        (30.0, 60.0),
        description="Percentiles for method=percentile: head < P_a <= middle < P_b <= tail (CCNet: 30, 60)",
    )
    cutoffs: tuple[float, float] | None = Field(
        None, description="Explicit (head, tail) perplexity cutoffs, e.g. CCNet English (340, 520)"
    )
    max_perplexity: float | None = Field(
        None, gt=0, description="For method=max: keep documents at or below this"
    )
    keep_buckets: list[Literal["head", "middle", "tail"]] = Field(
        ["head", "middle"], description="Buckets kept (RedPajama-V2 keeps head and middle)"
    )
    column: str = Field(schema.PERPLEXITY, description="Perplexity column to read")

    @field_validator("percentiles", "cutoffs")
    @classmethod
    def _ordered(cls, v: tuple[float, float] | None, info: Any) -> tuple[float, float] | None:
        if v is not None and not (v[0] <= v[1]):
            raise ValueError(f"{info.field_name}: the head value must be <= the tail value")
        if v is not None and info.field_name == "percentiles" and not (0 <= v[0] and v[1] <= 100):
            raise ValueError("percentiles must lie in [0, 100]")
        return v

    @model_validator(mode="after")
    def _check(self) -> PerplexityFilterParams:
        if self.method == "cutoffs" and self.cutoffs is None:
            raise ValueError("cutoffs: required when method=cutoffs")
        if self.method == "max" and self.max_perplexity is None:
            raise ValueError("max_perplexity: required when method=max")
        if self.method != "max" and not self.keep_buckets:
            raise ValueError("keep_buckets: keep at least one bucket")
        return self


class _HistPartial:
    """table -> (sorted distinct values rounded to 0.1, counts) of finite perplexities."""

    def __init__(self, column: str):
        self.column = column

    def __call__(self, table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
        if self.column not in table.column_names:
            raise StageError(f"perplexity_filter: no column {self.column!r}; run perplexity_score first")
        v = pc.cast(table.column(self.column), pa.float64()).to_numpy(zero_copy_only=False)
        v = v[np.isfinite(v)]
        return np.unique(np.round(v, 1), return_counts=True)


def _hist_merge(a: tuple, b: tuple) -> tuple[np.ndarray, np.ndarray]:
    vals = np.concatenate([a[0], b[0]])
    cnts = np.concatenate([a[1], b[1]])
    u, inv = np.unique(vals, return_inverse=True)
    return u, np.bincount(inv, weights=cnts, minlength=len(u)).astype(np.int64)


def percentile_from_hist(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """``np.percentile(expanded, q)`` (linear method) from a value histogram."""
    n = int(counts.sum())
    cum = np.cumsum(counts)
    pos = q / 100.0 * (n - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    v_lo = float(values[np.searchsorted(cum, lo, side="right")])
    v_hi = float(values[np.searchsorted(cum, hi, side="right")])
    return v_lo + (v_hi - v_lo) * (pos - lo)


def assign_buckets(pp: np.ndarray, head: float, tail: float) -> np.ndarray:
    """CCNet buckets: head if pp < head, middle if pp < tail, else tail."""
    return np.where(pp < head, "head", np.where(pp < tail, "middle", "tail")).astype(object)


class PerplexityFilter(BarrierStage):
    """Select by perplexity: CCNet head/middle/tail buckets or a fixed maximum.

    Buckets: head if pp < P_head, middle if pp < P_tail, else tail (cutoffs learned as
    percentiles of this data, CCNet 30/60 by default, or given). Writes `ccnet_bucket`
    (`all` with method=max) and keeps `keep_buckets`. Learned cutoffs go to stats.
    Rejects: `perplexity_bucket` (detail: bucket and value), `perplexity_too_high`,
    `missing_perplexity` (null / NaN).
    """

    name = "perplexity_filter"
    Params = PerplexityFilterParams
    reject_reasons = {
        "perplexity_too_high": "perplexity above the cutoff",
        "perplexity_bucket": "in a CCNet bucket that keep_buckets does not keep",
        "missing_perplexity": "no finite perplexity value",
    }

    def required_columns(self) -> set[str]:
        return {self.params.column}

    def provided_columns(self) -> set[str]:
        return {schema.CCNET_BUCKET}

    def score_columns(self) -> list[str]:
        return [self.params.column]

    def report_thresholds(self, fit_stats: dict[str, Any] | None) -> dict[str, list[tuple[str, float]]]:
        """The cutoffs (or maximum) the fit recorded under ``thresholds``; for stats written
        without that key, the learned ``cutoffs``, ``cutoffs_used`` and ``max_perplexity``
        (and the configured ones), each value once."""
        fit = fit_stats or {}
        col = self.params.column
        if isinstance(fit.get("thresholds"), dict) and col in fit["thresholds"]:
            return super().report_thresholds(fit)
        p = self.params
        named = [("cutoffs", v) for v in finite_numbers(p.cutoffs)]
        named += [("max_perplexity", v) for v in finite_numbers(p.max_perplexity)]
        for key in ("cutoffs", "cutoffs_used"):
            sub = fit.get(key)
            if isinstance(sub, dict):
                named += [(f"{key}.{k}", v) for k, x in sub.items() for v in finite_numbers(x)]
        named += [("max_perplexity", v) for v in finite_numbers(fit.get("max_perplexity"))]
        seen: set[float] = set()
        out = []
        for key, v in named:
            if v not in seen:
                seen.add(v)
                out.append((f"{key}={v:.4g}", v))
        return {col: out} if out else {}

    def fit(self, inputs: dict[str, ShardSet], ctx: FitContext) -> dict[str, Any]:
        p = self.params
        stats: dict[str, Any] = {"method": p.method, "keep_buckets": list(p.keep_buckets)}
        state: dict[str, Any] = {"cutoffs": None}
        if p.method == "cutoffs":
            state["cutoffs"] = [float(p.cutoffs[0]), float(p.cutoffs[1])]  # type: ignore[index]
        elif p.method == "max":
            stats["max_perplexity"] = p.max_perplexity
        else:
            hist = None
            for i in self.data_inputs(list(inputs)):
                h = ctx.aggregate(inputs[i], _HistPartial(p.column), _hist_merge, columns=[p.column])
                if h is not None:
                    hist = h if hist is None else _hist_merge(hist, h)
            if hist is None or hist[1].sum() == 0:
                ctx.warnings.append(
                    "perplexity_filter: no finite perplexity values; every document goes to tail"
                )
                state["cutoffs"] = [-math.inf, -math.inf]
                stats["docs"] = 0
            else:
                vals, cnts = hist
                c = [percentile_from_hist(vals, cnts, q) for q in p.percentiles]
                state["cutoffs"] = c
                stats["docs"] = int(cnts.sum())
                stats["percentiles"] = list(p.percentiles)
                stats["cutoffs"] = {f"P{q:g}": v for q, v in zip(p.percentiles, c)}
                b = assign_buckets(vals, c[0], c[1])
                stats["bucket_docs"] = {k: int(cnts[b == k].sum()) for k in BUCKETS}
        if state["cutoffs"] is not None and math.isinf(state["cutoffs"][0]):
            state["cutoffs"] = None
            state["all_tail"] = True
        if state["cutoffs"] is not None:
            stats["cutoffs_used"] = {"head_below": state["cutoffs"][0], "tail_from": state["cutoffs"][1]}
            stats["thresholds"] = {p.column: list(state["cutoffs"])}  # drawn by the report
        elif p.method == "max":
            stats["thresholds"] = {p.column: [p.max_perplexity]}
        state["stats"] = stats
        return state

    def process(self, batch: pa.Table, state: dict[str, Any]) -> MapResult:
        p = self.params
        if p.column not in batch.column_names:
            raise StageError(f"perplexity_filter: no column {p.column!r}; run perplexity_score first")
        pp = pc.cast(batch.column(p.column), pa.float64()).to_numpy(zero_copy_only=False)
        missing = ~np.isfinite(pp)
        cut = state.get("cutoffs")
        if cut is not None:
            bucket = assign_buckets(pp, cut[0], cut[1])
        elif state.get("all_tail"):
            bucket = np.full(len(pp), "tail", dtype=object)
        else:
            bucket = np.full(len(pp), "all", dtype=object)
        bucket[missing] = None
        if p.method == "max":
            ok = pp <= p.max_perplexity
            reason = np.full(len(pp), "perplexity_too_high", dtype=object)
            detail = [f"perplexity={v} > {p.max_perplexity:g}" for v in pp]
        else:
            ok = np.isin(bucket, list(p.keep_buckets))
            reason = np.full(len(pp), "perplexity_bucket", dtype=object)
            detail = [f"bucket={b} perplexity={v}" for b, v in zip(bucket, pp)]
        ok &= ~missing
        reason[missing] = "missing_perplexity"
        out = batch.append_column(schema.CCNET_BUCKET, pa.array(bucket, type=pa.string()))
        return split_batch(out, ok, pa.array(reason, pa.string()), pa.array(detail, pa.string()))
