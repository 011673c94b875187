"""select_top: keep the globally best documents by a score column (PreSelect/DCLM top-x%).

The threshold is exact, computed across workers without pulling the corpus onto one
process:

1. **Summaries** (one task per part file, via ``ctx.map_files``): each file's valid scores
   become order-preserving uint64 keys (best first), sorted, with each document's weight
   (characters, tokens or 1) and optional id-hash tie-breaker; written as a small ``.npz``
   in the fit's scratch directory. Only counts travel back.
2. **Distributed radix select**: the driver looks for the first document, in best-first
   order, at which the cumulative weight exceeds the target. Each pass asks every file
   for a sparse histogram of the next 16 key bits inside the current candidate range
   (a binary search on the sorted summary, then one bincount); at most 4 passes narrow a
   64-bit key to one value, and as soon as a range holds <= ``COLLECT_MAX`` documents the
   files send those few documents and the driver finishes exactly. Ties broken by id add
   at most 4 passes over the id hashes of the tied group.
3. **Stats pass**: realized kept docs/characters at the threshold, for stats.json.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash
from pydantic import Field, model_validator

from curate import jobfs, schema
from curate.fit import FitContext, ShardSet
from curate.parquet_io import iter_file_batches
from curate.stage import BarrierStage, MapResult, StageError, StageParams, finite_numbers, split_batch
from curate.text.normalize import char_counts, word_counts
from curate.util import id_hashes

COLLECT_MAX = 65_536
"""When a candidate key range holds at most this many documents, fetch them and finish."""

_MODES = ("fraction_chars", "fraction_docs", "budget_tokens", "budget_docs", "threshold")
_SIGN = np.uint64(1 << 63)
_U64_MAX = (1 << 64) - 1
MISSING_SCORE = "missing_score"


class SelectTopParams(StageParams):
    column: str = Field(schema.QUALITY, description="Numeric score column to select on")
    fraction_chars: float | None = Field(
        None,
        gt=0,
        le=1,
        description="PreSelect/DCLM: threshold = score of the first document (best first) at which the "
        "cumulative characters exceed this fraction of the pool's characters; keep score >= it. "
        "The default when no mode is set is 0.1",
    )
    fraction_docs: float | None = Field(
        None, gt=0, le=1, description="Keep the best ceil(fraction * pool documents) documents"
    )
    budget_tokens: int | None = Field(
        None,
        ge=1,
        description="Keep the best documents until their tokens reach this budget (the document that "
        "reaches it is kept); a token is a whitespace word unless token_column is set",
    )
    budget_docs: int | None = Field(None, ge=1, description="Keep the best N documents")
    threshold: float | None = Field(
        None,
        allow_inf_nan=False,
        description="Fixed threshold: keep score >= threshold (<= for keep: lowest)",
    )
    keep: Literal["highest", "lowest"] = Field(
        "highest", description="Which end is best: highest (quality) or lowest (e.g. perplexity)"
    )
    ties: Literal["keep", "by_id"] = Field(
        "keep",
        description="Documents tied with the threshold score: keep them all (PreSelect/datatrove >= "
        "semantics; budgets may be exceeded by the tie) or cut exactly at the budget, ordering ties "
        "by a seeded hash of the document id",
    )
    token_column: str | None = Field(
        None, description="Integer column with each document's token count (budget_tokens)"
    )

    @model_validator(mode="after")
    def _one_mode(self) -> SelectTopParams:
        chosen = [m for m in _MODES if getattr(self, m) is not None]
        if not chosen:
            self.fraction_chars = 0.1
        elif len(chosen) > 1:
            raise ValueError(f"set only one of {', '.join(_MODES)} (got {', '.join(chosen)})")
        if self.token_column is not None and self.budget_tokens is None:
            raise ValueError("token_column is only used with budget_tokens")
        return self

    @property
    def mode(self) -> str:
        return next(m for m in _MODES if getattr(self, m) is not None)


# ----------------------------------------------------------------------------------------
# keys
# ----------------------------------------------------------------------------------------


def float_order_keys(values: np.ndarray) -> np.ndarray:
    """uint64 keys whose unsigned order is the float64 order of ``values`` (-0.0 == 0.0)."""
    v = np.asarray(values, dtype=np.float64) + 0.0
    bits = v.view(np.uint64)
    return np.where((bits & _SIGN) != 0, ~bits, bits | _SIGN)


def best_first_keys(values: np.ndarray, keep: str) -> np.ndarray:
    """Keys that sort the best document first (ascending)."""
    k = float_order_keys(values)
    return ~k if keep == "highest" else k


def key_to_score(key: int, keep: str) -> float:
    """Inverse of :func:`best_first_keys` for one key."""
    k = np.uint64(key)
    if keep == "highest":
        k = ~k
    bits = (k & ~_SIGN) if (k & _SIGN) else ~k
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


def _scores(table: pa.Table, column: str, where: str) -> np.ndarray:
    if column not in table.column_names:
        raise StageError(
            f"select_top: column {column!r} not found in {where} (columns: {table.column_names})"
        )
    col = table.column(column)
    try:
        col = pc.cast(col, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise StageError(f"select_top: column {column!r} is not numeric ({col.type}) in {where}") from e
    return col.to_numpy(zero_copy_only=False).astype(np.float64, copy=False)  # nulls -> NaN


# ----------------------------------------------------------------------------------------
# distributed tasks (module level: picklable for Ray)
# ----------------------------------------------------------------------------------------


class _Summarize:
    """Per part file: sorted best-first keys + weights, written to scratch; returns counts."""

    def __init__(
        self,
        p: SelectTopParams,
        text_column: str,
        weight: str,
        id_seed: int | None,
        out_dir: str,
        batch_size: int,
    ):
        self.p, self.text_column, self.weight = p, text_column, weight
        self.id_seed, self.out_dir, self.batch_size = id_seed, out_dir, batch_size

    def __call__(self, path: str) -> dict[str, Any]:
        p = self.p
        cols = [p.column, self.text_column]
        if self.id_seed is not None:
            cols.append(schema.ID)
        if p.token_column:
            cols.append(p.token_column)
        keys, idks, ws, chs = [], [], [], []
        missing = missing_chars = 0
        for t in iter_file_batches(path, cols, self.batch_size):
            s = _scores(t, p.column, path)
            if self.text_column not in t.column_names:
                raise StageError(f"select_top: text column {self.text_column!r} not found in {path}")
            ch = char_counts(t.column(self.text_column))
            valid = ~np.isnan(s)
            missing += int((~valid).sum())
            missing_chars += int(ch[~valid].sum())
            keys.append(best_first_keys(s[valid], p.keep))
            chs.append(ch[valid])
            if self.weight == "chars":
                ws.append(ch[valid])
            elif self.weight == "tokens":
                if p.token_column:
                    if p.token_column not in t.column_names:
                        raise StageError(f"select_top: token_column {p.token_column!r} not found in {path}")
                    tok = (
                        pc.fill_null(t.column(p.token_column), 0)
                        .to_numpy(zero_copy_only=False)
                        .astype(np.int64)
                    )
                else:
                    tok = word_counts(t.column(self.text_column)).astype(np.int64)
                ws.append(tok[valid])
            else:
                ws.append(np.ones(int(valid.sum()), dtype=np.int64))
            if self.id_seed is not None:
                if schema.ID not in t.column_names:
                    raise StageError(
                        f"select_top: ties='by_id' needs an {schema.ID!r} column, missing in {path}"
                    )
                idks.append(id_hashes(t.column(schema.ID), self.id_seed)[valid])
        key = np.concatenate(keys) if keys else np.zeros(0, np.uint64)
        w = np.concatenate(ws).astype(np.int64) if ws else np.zeros(0, np.int64)
        chars = np.concatenate(chs).astype(np.int64) if chs else np.zeros(0, np.int64)
        idk = np.concatenate(idks) if idks else np.zeros(0, np.uint64)
        order = np.lexsort((idk, key)) if self.id_seed is not None else np.argsort(key, kind="stable")
        out = jobfs.path(self.out_dir) / f"{xxhash.xxh3_64_hexdigest(path.encode())}.npz"
        out.parent.mkdir(parents=True, exist_ok=True)
        jobfs.save_npz(out, key=key[order], w=w[order], chars=chars[order], idkey=idk[order] if len(idk) else idk)
        return {
            "summary": str(out),
            "docs": len(key),
            "chars": int(chars.sum()),
            "weight": int(w.sum()),
            "missing": missing,
            "missing_chars": missing_chars,
        }


def _slice(d: Any, level: int, t_key: int, lo: int, hi: int) -> tuple[int, int]:
    key = d["key"]
    if level == 0:
        return int(np.searchsorted(key, np.uint64(lo), "left")), int(
            np.searchsorted(key, np.uint64(hi), "right")
        )
    ta = int(np.searchsorted(key, np.uint64(t_key), "left"))
    tb = int(np.searchsorted(key, np.uint64(t_key), "right"))
    idk = d["idkey"][ta:tb]
    return ta + int(np.searchsorted(idk, np.uint64(lo), "left")), ta + int(
        np.searchsorted(idk, np.uint64(hi), "right")
    )


class _RangeTask:
    """``hist``: sparse histogram of 16 key bits in a range; ``collect``: the range's documents."""

    def __init__(self, op: str, level: int, t_key: int, lo: int, hi: int, shift: int):
        self.op, self.level, self.t_key, self.lo, self.hi, self.shift = op, level, t_key, lo, hi, shift

    def __call__(self, path: str) -> Any:
        with jobfs.load_npy(path) as d:
            a, b = _slice(d, self.level, self.t_key, self.lo, self.hi)
            w = d["w"][a:b]
            if self.op == "collect":
                idk = d["idkey"][a:b] if len(d["idkey"]) else np.zeros(b - a, np.uint64)
                return d["key"][a:b], idk, w
            vals = (d["key"] if self.level == 0 else d["idkey"])[a:b]
        if len(vals) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
        dig = ((vals >> np.uint64(self.shift)) & np.uint64(0xFFFF)).astype(np.int64)  # sorted within range
        starts = np.concatenate([[0], np.flatnonzero(np.diff(dig)) + 1])
        return dig[starts], np.add.reduceat(w, starts), np.diff(np.concatenate([starts, [len(dig)]]))


class _KeptTask:
    """Kept documents / characters / weight of one summary at the final cut."""

    def __init__(self, t_key: int, cut_id: int | None):
        self.t_key, self.cut_id = t_key, cut_id

    def __call__(self, path: str) -> tuple[int, int, int]:
        with jobfs.load_npy(path) as d:
            key = d["key"]
            c = int(np.searchsorted(key, np.uint64(self.t_key), "right"))
            if self.cut_id is not None:
                a = int(np.searchsorted(key, np.uint64(self.t_key), "left"))
                c = a + int(np.searchsorted(d["idkey"][a:c], np.uint64(self.cut_id), "right"))
            return c, int(d["chars"][:c].sum()), int(d["w"][:c].sum())


def find_cut(
    ctx: FitContext, summaries: list[str], target: float, by_id: bool, total_docs: int
) -> tuple[int, int | None, int]:
    """First document (best first) whose cumulative weight exceeds ``target``.

    Returns ``(key, id_hash or None, passes)``. The caller guarantees the total weight
    exceeds ``target``.
    """
    passes = 0
    before = 0  # weight of documents strictly before the candidate range
    level, t_key, lo, hi, shift, count = 0, 0, 0, _U64_MAX, 48, total_docs
    while True:
        if count <= COLLECT_MAX or shift < 0:
            if shift < 0 and level == 0 and not by_id:
                return lo, None, passes  # a single key value; ties are all kept
            if shift < 0 and level == 0:
                level, t_key, lo, hi, shift = 1, lo, 0, _U64_MAX, 48
                continue
            parts = ctx.map_files(_RangeTask("collect", level, t_key, lo, hi, 0), summaries)
            passes += 1
            key = np.concatenate([p[0] for p in parts])
            idk = np.concatenate([p[1] for p in parts])
            w = np.concatenate([p[2] for p in parts])
            order = np.lexsort((idk, key))
            cum = before + np.cumsum(w[order])
            j = int(np.argmax(cum > target))
            if not cum[j] > target:  # pragma: no cover - guarded by the caller
                raise StageError("select_top: internal error, no crossing document in range")
            return int(key[order][j]), (int(idk[order][j]) if by_id else None), passes
        parts = ctx.map_files(_RangeTask("hist", level, t_key, lo, hi, shift), summaries)
        passes += 1
        wsum = np.zeros(1 << 16, np.int64)
        cnt = np.zeros(1 << 16, np.int64)
        for dig, ws, cs in parts:
            np.add.at(wsum, dig, ws)
            np.add.at(cnt, dig, cs)
        cum = before + np.cumsum(wsum)
        b = int(np.argmax(cum > target))
        before = int(cum[b] - wsum[b])
        lo = lo | (b << shift)
        hi = lo | ((1 << shift) - 1)
        count = int(cnt[b])
        shift -= 16


# ----------------------------------------------------------------------------------------
# the stage
# ----------------------------------------------------------------------------------------


class SelectTop(BarrierStage):
    """Keep the globally best documents by a score column: top fraction, budget or threshold.

    Modes (set exactly one; default `fraction_chars: 0.1`): `fraction_chars` (PreSelect/DCLM:
    the threshold is the score at which the cumulative characters of the best documents
    first exceed x% of the pool; documents scoring >= it are kept, ties included),
    `fraction_docs`, `budget_tokens`, `budget_docs` or a fixed `threshold`. The threshold is
    exact and global across workers (distributed radix select over sorted per-file
    summaries) and recorded in stats.json (`fit_stats`) with the realized fractions.
    Rejects: `below_threshold` (`above_threshold` when keep: lowest) with the score and the
    threshold in detail; `missing_score` for null/NaN scores (which are not part of the pool).
    """

    name = "select_top"
    Params = SelectTopParams
    reject_reasons = {
        "below_threshold": "score below the selection cutoff (keep: highest)",
        "above_threshold": "score above the selection cutoff (keep: lowest)",
        MISSING_SCORE: "no finite score",
    }

    def required_columns(self) -> set[str]:
        cols = {self.params.column}
        if self.params.token_column:
            cols.add(self.params.token_column)
        return cols

    def score_columns(self) -> list[str]:
        return [self.params.column]

    def report_thresholds(self, fit_stats: dict[str, Any] | None) -> dict[str, list[tuple[str, float]]]:
        """The configured ``threshold`` and the one the fit found (each value once)."""
        vals: list[float] = []
        for v in finite_numbers([self.params.threshold, (fit_stats or {}).get("threshold")]):
            if v not in vals:
                vals.append(v)
        return {self.params.column: [(f"threshold={v:.4g}", v) for v in vals]} if vals else {}

    def _weight(self) -> str:
        return {
            "fraction_chars": "chars",
            "budget_tokens": "tokens",
            "fraction_docs": "docs",
            "budget_docs": "docs",
        }.get(self.params.mode, "chars")

    def fit(self, inputs: dict[str, ShardSet], ctx: FitContext) -> dict[str, Any]:
        p = self.params
        mode = p.mode
        by_id = p.ties == "by_id" and mode != "threshold"
        id_seed = xxhash.xxh3_64_intdigest(f"select_top.ties:{ctx.seed}".encode()) if by_id else None
        files = [f for key in self.data_inputs(list(inputs)) for f in inputs[key].files]
        text_column = next((inputs[k].text_column for k in inputs), ctx.text_column)
        scratch = jobfs.path(ctx.scratch_dir) / "select_top"
        weight = self._weight()
        summ = ctx.map_files(_Summarize(p, text_column, weight, id_seed, str(scratch), ctx.batch_size), files)
        paths = [s["summary"] for s in summ]
        pool_docs = sum(s["docs"] for s in summ)
        pool_chars = sum(s["chars"] for s in summ)
        pool_w = sum(s["weight"] for s in summ)
        missing = sum(s["missing"] for s in summ)
        passes = 1
        t_key: int | None = None
        cut_id: int | None = None
        target: float | None = None
        if missing:
            ctx.warnings.append(
                f"select_top: {missing} documents have a null/NaN {p.column!r} and are rejected as {MISSING_SCORE}"
            )
        if pool_docs == 0:
            ctx.warnings.append(f"select_top: no document has a valid {p.column!r} score; nothing is kept")
        elif mode == "threshold":
            t_key = int(best_first_keys(np.array([p.threshold]), p.keep)[0])
        else:
            if mode == "fraction_chars":
                target = p.fraction_chars * pool_w
            elif mode == "fraction_docs":
                target = math.ceil(p.fraction_docs * pool_docs - 1e-9) - 1
            elif mode == "budget_docs":
                target = p.budget_docs - 1
            else:
                target = p.budget_tokens - 1
            if pool_w > target:
                t_key, cut_id, n = find_cut(ctx, paths, target, by_id, pool_docs)
                passes += n
            else:
                worst = self._max_key(ctx, paths)  # pool_docs > 0, so some file has a key
                t_key, cut_id = worst, None
                passes += 1
                if mode in ("budget_docs", "budget_tokens"):
                    unit = "documents" if mode == "budget_docs" else "tokens"
                    ctx.warnings.append(
                        f"select_top: {mode}={getattr(p, mode)} exceeds the pool ({pool_w} {unit}); keeping every scored document"
                    )
        kept_docs = kept_chars = kept_w = 0
        if t_key is not None:
            for c, ch, w in ctx.map_files(_KeptTask(t_key, cut_id), paths):
                kept_docs, kept_chars, kept_w = kept_docs + c, kept_chars + ch, kept_w + w
            passes += 1
        threshold = (
            None if t_key is None else (p.threshold if mode == "threshold" else key_to_score(t_key, p.keep))
        )
        stats: dict[str, Any] = {
            "column": p.column,
            "mode": mode,
            "target": getattr(p, mode),
            "keep": p.keep,
            "ties": p.ties,
            "threshold": threshold,
            "threshold_rule": f"{p.column} {'>=' if p.keep == 'highest' else '<='} threshold"
            + (" (ties at the threshold ordered by id hash)" if cut_id is not None else ""),
            "pool_docs": pool_docs,
            "pool_chars": pool_chars,
            "missing_score_docs": missing,
            "kept_docs": kept_docs,
            "kept_chars": kept_chars,
            "realized_fraction_docs": kept_docs / pool_docs if pool_docs else 0.0,
            "realized_fraction_chars": kept_chars / pool_chars if pool_chars else 0.0,
            "exact": True,
            "passes": passes,
        }
        if weight == "tokens":
            stats.update(pool_tokens=pool_w, kept_tokens=kept_w)
        return {
            "column": p.column,
            "keep": p.keep,
            "threshold": threshold,
            "threshold_key": None if t_key is None else str(t_key),
            "cut_id": None if cut_id is None else str(cut_id),
            "id_seed": id_seed,
            "stats": stats,
        }

    @staticmethod
    def _max_key(ctx: FitContext, paths: list[str]) -> int:
        tops = ctx.map_files(_LastKey(), paths)
        return max((t for t in tops if t is not None), default=-1)

    def process(self, batch: pa.Table, state: dict[str, Any]) -> MapResult:
        p = self.params
        col = state["column"]
        s = _scores(batch, col, f"node {self.node_id!r}")
        valid = ~np.isnan(s)
        if state["threshold_key"] is None:
            keep = np.zeros(len(s), dtype=bool)
        else:
            t_key = np.uint64(int(state["threshold_key"]))
            key = best_first_keys(np.where(valid, s, 0.0), state["keep"])
            keep = valid & (key <= t_key)
            if state["cut_id"] is not None:
                tie = valid & (key == t_key)
                if tie.any():
                    idk = id_hashes(batch.column(schema.ID), int(state["id_seed"]))
                    keep &= ~tie | (idk <= np.uint64(int(state["cut_id"])))
        if keep.all():
            return MapResult(batch, None)
        below = "below_threshold" if state["keep"] == "highest" else "above_threshold"
        reason = pa.array(np.where(valid, below, MISSING_SCORE), pa.string())
        op = "<" if state["keep"] == "highest" else ">"
        thr = state["threshold"]
        shown = pc.cast(pa.array(s, pa.float64()), pa.string())
        if state["cut_id"] is not None:
            op_arr = pa.array(np.where(s == thr, "= (tie cut by id)", op), pa.string())
        else:
            op_arr = pa.array(np.full(len(s), op, dtype=object), pa.string())
        detail = pc.binary_join_element_wise(
            pa.scalar(f"{p.column}="), shown, pa.scalar(" "), op_arr, pa.scalar(f" threshold {thr!r}"), ""
        )
        detail = pc.if_else(pa.array(valid), detail, pa.scalar(f"{p.column} is null or NaN"))
        return split_batch(batch, keep, reason, detail)


class _LastKey:
    def __call__(self, path: str) -> int | None:
        with jobfs.load_npy(path) as d:
            key = d["key"]
            return int(key[-1]) if len(key) else None
