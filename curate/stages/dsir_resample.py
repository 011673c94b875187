"""``dsir_resample``: DSIR hashed n-gram importance resampling (Xie et al. 2023).

Fit (all distributed through ``ctx.aggregate``; only bucket vectors and the selection's
candidate keys reach the driver):

1. hashed n-gram counts of the target set -> smoothed target distribution;
2. hashed n-gram counts of the raw pool (every document) -> raw distribution,
   ``log_diff = log(p_t + 1e-8) - log(p_raw + 1e-8)``;
3. per document ``key = log w + Gumbel(seed, id)``; per-file top candidates are merged
   into the global top-``budget`` and the k-th key becomes the selection threshold (Gumbel
   top-k = sampling without replacement with probability proportional to w);
4. counts of the selected set -> KL reduction (stats).

Apply re-scores each batch and keeps documents whose (key, tie-break) is at or above the
threshold, so the selection is the same whatever the executor, batching or sharding.
"""

from __future__ import annotations

import glob
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import Field, model_validator

from curate import jobfs, schema
from curate.fit import FitContext, ShardSet
from curate.params import Annotated, PathParam
from curate.stage import BarrierStage, MapResult, StageError, StageParams, split_batch
from curate.text.dsir import weights
from curate.text.dsir.featurizer import HashedNgramFeaturizer
from curate.text.dsir.gumbel_topk import at_or_above, gumbel_noise, order_desc, tie_breaks
from curate.text.dsir.kl import kl_reduction

NOT_SELECTED = "dsir_not_selected"
TOO_FEW_TOKENS = "too_few_tokens"


class DsirParams(StageParams):
    target: Annotated[str, PathParam("read", glob=True, node_ref=True)] = Field(
        description=(
            "Target set: a Parquet path or glob (anything containing '/', '*', '?', '[' or ending "
            "in '.parquet'), target counts fitted offline with `curate dsir fit` (a '.npz' file), "
            "or else the id of a node of the same DAG whose output is the target"
        )
    )
    target_text_column: str = Field(
        "text", description="Text column of a Parquet target (ignored for a DAG node)"
    )
    num_buckets: int = Field(10000, ge=1, lt=2**31, description="Hash buckets shared by all n-gram orders")
    ngrams: int = Field(2, ge=1, le=5, description="Highest n-gram order: 2 = unigrams + bigrams (reference)")
    smoothing: float = Field(
        0.0, ge=0, description="Laplace smoothing lambda added to every target bucket count"
    )
    min_tokens: int = Field(
        100, ge=0, description="Documents with fewer WordPunct tokens are not resampled (reference: 100)"
    )
    short_docs: Literal["reject", "keep"] = Field(
        "reject",
        description="What happens to documents under min_tokens: `reject` (reason too_few_tokens) or `keep` "
        "(passed through unselected, outside the budget)",
    )
    budget: float = Field(gt=0, description="How much to select, in budget_unit")
    budget_unit: Literal["docs", "tokens", "fraction"] = Field(
        "docs",
        description="docs: number of documents; tokens: WordPunct tokens; fraction: of eligible documents",
    )
    replacement: bool = Field(False, description="Sampling with replacement is not supported (must be false)")
    top_k: bool = Field(False, description="Deterministic top-k by weight instead of Gumbel top-k sampling")
    compute_kl: bool = Field(
        True, description="Compute the KL-reduction metric (one more pass over the pool)"
    )
    seed: int | None = Field(
        None, description="Gumbel noise seed (default: the node seed derived from the spec seed)"
    )

    @model_validator(mode="after")
    def _check(self) -> DsirParams:
        if self.replacement:
            raise ValueError("replacement: only sampling without replacement (false) is supported")
        if self.budget_unit == "fraction" and self.budget > 1:
            raise ValueError("budget: a fraction must be in (0, 1]")
        if self.budget_unit != "fraction" and (self.budget < 1 or self.budget != int(self.budget)):
            raise ValueError(f"budget: a number of {self.budget_unit} must be a positive integer")
        return self


def target_is_path(target: str) -> bool:
    """Whether ``target`` names files (Parquet, or ``.npz`` counts) rather than a DAG node."""
    return any(c in target for c in "/*?[") or target.endswith((".parquet", ".npz"))


# ----------------------------------------------------------------------------------------
# Picklable per-batch partials for ctx.aggregate
# ----------------------------------------------------------------------------------------


def _text(table: pa.Table, col: str) -> pa.ChunkedArray:
    if col not in table.column_names:
        raise StageError(f"dsir_resample: no text column {col!r} (columns: {table.column_names})")
    return table.column(col)


class _CountPartial:
    """table -> {counts, docs, eligible, eligible_tokens, tokens}."""

    def __init__(self, num_buckets: int, ngrams: int, col: str, min_tokens: int):
        self.fz = HashedNgramFeaturizer(num_buckets, ngrams)
        self.col, self.min_tokens = col, min_tokens

    def __call__(self, table: pa.Table) -> dict:
        counts, ntok = self.fz.counts(_text(table, self.col))
        elig = ntok >= self.min_tokens
        return {
            "counts": counts,
            "docs": int(table.num_rows),
            "tokens": int(ntok.sum()),
            "eligible": int(elig.sum()),
            "eligible_tokens": int(ntok[elig].sum()),
        }


def _merge_counts(a: dict, b: dict) -> dict:
    return {k: a[k] + b[k] for k in a}


def _keys(ids: list, logw: np.ndarray, seed: int, top_k: bool) -> tuple[np.ndarray, np.ndarray]:
    keys = logw if top_k else logw + gumbel_noise(ids, seed)
    return keys, tie_breaks(ids, seed)


def _trim(c: dict, unit: str, k: float) -> dict:
    """Keep the best candidates: top k docs, or the shortest prefix reaching k tokens."""
    order = order_desc(c["key"], c["tie"])
    if unit == "tokens":
        cum = np.cumsum(c["tok"][order])
        m = int(np.searchsorted(cum, k, side="left")) + 1
    else:
        m = int(k)
    order = order[:m]
    return {"key": c["key"][order], "tie": c["tie"][order], "tok": c["tok"][order]}


class _CandidatePartial:
    """table -> best candidates (key, tie, tokens) among eligible documents."""

    def __init__(
        self,
        fz_args: tuple,
        col: str,
        log_diff: np.ndarray,
        seed: int,
        top_k: bool,
        min_tokens: int,
        unit: str,
        k: float,
    ):
        self.fz = HashedNgramFeaturizer(*fz_args)
        self.col, self.log_diff, self.seed, self.top_k = col, log_diff, seed, top_k
        self.min_tokens, self.unit, self.k = min_tokens, unit, k

    def __call__(self, table: pa.Table) -> dict:
        logw, ntok, _ = self.fz.score(_text(table, self.col), self.log_diff)
        ids = table.column(schema.ID).to_pylist()
        key, tie = _keys(ids, logw, self.seed, self.top_k)
        elig = ntok >= self.min_tokens
        c = {"key": key[elig], "tie": tie[elig], "tok": ntok[elig]}
        return _trim(c, self.unit, self.k)

    def merge(self, a: dict, b: dict) -> dict:
        c = {f: np.concatenate([a[f], b[f]]) for f in a}
        return _trim(c, self.unit, self.k)


class _SelectedCountPartial:
    """table -> counts / docs / tokens of the selected documents."""

    def __init__(
        self, fz_args: tuple, col: str, log_diff: np.ndarray, state: dict, min_tokens: int, top_k: bool
    ):
        self.fz = HashedNgramFeaturizer(*fz_args)
        self.col, self.log_diff, self.state, self.min_tokens, self.top_k = (
            col,
            log_diff,
            state,
            min_tokens,
            top_k,
        )

    def __call__(self, table: pa.Table) -> dict:
        text = _text(table, self.col)
        logw, ntok, _ = self.fz.score(text, self.log_diff)
        ids = table.column(schema.ID).to_pylist()
        sel = _selected(ids, logw, ntok, self.state, self.min_tokens, self.top_k)
        counts, _ = self.fz.counts(text, sel)
        return {"counts": counts, "docs": int(sel.sum()), "tokens": int(ntok[sel].sum())}


def _selected(
    ids: list, logw: np.ndarray, ntok: np.ndarray, state: dict, min_tokens: int, top_k: bool
) -> np.ndarray:
    elig = ntok >= min_tokens
    if state.get("select_none"):
        return np.zeros(len(ntok), dtype=bool)
    if state["threshold_key"] is None:
        return elig
    key, tie = _keys(ids, logw, state["seed"], top_k)
    return elig & at_or_above(key, tie, state["threshold_key"], state["threshold_tie"])


# ----------------------------------------------------------------------------------------
# Target counts fitted offline
# ----------------------------------------------------------------------------------------


def fit_target_counts(docs, num_buckets: int = 10000, ngrams: int = 2, batch: int = 4096) -> dict:
    """Hashed n-gram counts of a target corpus (an iterable of strings)."""
    fz = HashedNgramFeaturizer(num_buckets, ngrams)
    counts = np.zeros(num_buckets, dtype=np.int64)
    n_docs = 0
    buf: list[str] = []
    for d in docs:
        buf.append(d)
        if len(buf) >= batch:
            counts += fz.counts(buf)[0]
            n_docs += len(buf)
            buf = []
    if buf:
        counts += fz.counts(buf)[0]
        n_docs += len(buf)
    return {"counts": counts, "docs": n_docs}


def save_target_counts(path: str | Path, fitted: dict, num_buckets: int, ngrams: int) -> None:
    """Write target counts as ``.npz`` (usable as ``dsir_resample``'s ``target``)."""
    np.savez(path, counts=fitted["counts"], docs=fitted["docs"], num_buckets=num_buckets, ngrams=ngrams)


def load_target_counts(path: str | Path, num_buckets: int, ngrams: int) -> dict:
    """Read ``.npz`` target counts and check they match the stage's feature options."""
    try:
        z = np.load(Path(path).expanduser())
        counts, docs = z["counts"].astype(np.int64), int(z["docs"])
        b, n = int(z["num_buckets"]), int(z["ngrams"])
    except FileNotFoundError as e:
        raise StageError(f"dsir_resample: target counts file not found: {path}") from e
    except Exception as e:  # noqa: BLE001 - any unreadable file
        raise StageError(f"dsir_resample: cannot read target counts {path}: {e}") from e
    if b != num_buckets or n != ngrams or counts.shape != (num_buckets,):
        raise StageError(
            f"dsir_resample: {path} was fitted with num_buckets={b}, ngrams={n}; "
            f"the stage uses num_buckets={num_buckets}, ngrams={ngrams}"
        )
    return {"counts": counts, "docs": docs}


# ----------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fitted:
    """What ``process`` uses: a featurizer (its caches are per thread), the fitted
    log-weight difference per bucket (None for an empty pool) and the fit state."""

    featurizer: HashedNgramFeaturizer
    log_diff: np.ndarray | None
    state: dict[str, Any]


class DsirResample(BarrierStage):
    """DSIR importance resampling toward a target set (hashed uni+bigram features).

    Scores every document with `dsir_logw` (log importance weight of the target vs the
    raw pool, `data-selection` 1.0.3 compatible features) and keeps a budget of documents
    chosen by seeded Gumbel top-k, global across workers. Rejects: `dsir_not_selected`
    (detail: the weight), `too_few_tokens` (under min_tokens, unless short_docs=keep).
    Stats: KL reduction (target vs raw and vs selected, in the hashed feature space; ln(q +
    1e-8) as the weights use, summed over buckets the target uses). A small selection
    covers fewer buckets than the whole pool, so the metric can be negative for tiny
    budgets even when the selection is on target.
    """

    name = "dsir_resample"
    Params = DsirParams
    reject_reasons = {
        NOT_SELECTED: "not drawn by importance resampling",
        TOO_FEW_TOKENS: "fewer tokens than min_tokens (short_docs: reject)",
    }

    def provided_columns(self) -> set[str]:
        return {schema.DSIR_LOGW}

    def score_columns(self) -> list[str]:
        # with top_k the fit records the cut weight under fit_stats["thresholds"], which the
        # default report_thresholds draws; Gumbel sampling has no threshold on the weight
        return [schema.DSIR_LOGW]

    def extra_inputs(self) -> list[str]:
        t = self.params.target
        return [] if target_is_path(t) else [t]

    # -- fit -----------------------------------------------------------------------------
    def _target_shards(self, inputs: dict[str, ShardSet]) -> tuple[ShardSet, str]:
        p = self.params
        if not target_is_path(p.target):
            if p.target not in inputs:
                raise StageError(f"dsir_resample: target node {p.target!r} is not among the node's inputs")
            ss = inputs[p.target]
            col = ss.text_column or schema.TEXT
            files = ss.files
        else:
            pattern = str(Path(p.target).expanduser())
            files = tuple(sorted(glob.glob(pattern, recursive=True)))
            if not files and Path(pattern).is_dir():
                files = tuple(sorted(glob.glob(str(Path(pattern) / "**" / "*.parquet"), recursive=True)))
            if not files:
                raise StageError(f"dsir_resample: target {p.target!r} matches no Parquet files")
            col = p.target_text_column
        for f in files:
            try:
                names = pq.read_schema(f).names
            except Exception as e:  # noqa: BLE001 - report any unreadable file clearly
                raise StageError(f"dsir_resample: cannot read target file {f}: {e}") from e
            if col not in names:
                raise StageError(
                    f"dsir_resample: target file {f} has no text column {col!r} (columns: {names})"
                )
        return ShardSet(files=tuple(files), text_column=col), col

    def fit(self, inputs: dict[str, ShardSet], ctx: FitContext) -> dict[str, Any]:
        p = self.params
        seed = int(p.seed if p.seed is not None else ctx.seed)
        fz_args = (p.num_buckets, p.ngrams)
        data_ids = self.data_inputs(list(inputs))
        if not data_ids:
            raise StageError("dsir_resample: no raw (data) input besides the target")
        col = self.text_column
        # 1. target distribution (or counts fitted offline with `curate dsir fit`)
        if p.target.endswith(".npz"):
            tc = load_target_counts(p.target, p.num_buckets, p.ngrams)
        else:
            target, tcol = self._target_shards(inputs)
            tc = ctx.aggregate(target, _CountPartial(*fz_args, tcol, 0), _merge_counts, columns=[tcol])
        if tc is None or tc["docs"] == 0:
            raise StageError(f"dsir_resample: target set {p.target!r} is empty")
        if tc["counts"].sum() == 0:
            raise StageError(f"dsir_resample: target set {p.target!r} has no tokens")
        target_probs = weights.target_distribution(tc["counts"], p.smoothing)
        # 2. raw distribution
        raw = None
        for i in data_ids:
            r = ctx.aggregate(
                inputs[i], _CountPartial(*fz_args, col, p.min_tokens), _merge_counts, columns=[col]
            )
            if r is not None:
                raw = r if raw is None else _merge_counts(raw, r)
        stats: dict[str, Any] = {
            "target_docs": tc["docs"],
            "target_ngrams": int(tc["counts"].sum()),
            "pool_docs": 0 if raw is None else raw["docs"],
            "eligible_docs": 0 if raw is None else raw["eligible"],
            "short_docs": 0 if raw is None else raw["docs"] - raw["eligible"],
            "budget": p.budget,
            "budget_unit": p.budget_unit,
            "seed": seed,
            "num_buckets": p.num_buckets,
            "ngrams": p.ngrams,
            "smoothing": p.smoothing,
        }
        state: dict[str, Any] = {"seed": seed, "threshold_key": None, "threshold_tie": 0, "log_diff": None}
        if raw is None or raw["counts"].sum() == 0:
            ctx.warnings.append("dsir_resample: the raw pool has no tokens; nothing to select")
            stats["selected_docs"] = 0
            state["empty_pool"] = True
            state["stats"] = stats
            return state
        state["empty_pool"] = False
        raw_probs = weights.raw_distribution(raw["counts"])
        ld = weights.log_diff(target_probs, raw_probs)
        ld_path = jobfs.path(ctx.state_dir) / "log_diff.npy"
        jobfs.save_npy(ld_path, ld)
        state["log_diff"] = str(ld_path)
        stats["raw_ngrams"] = int(raw["counts"].sum())
        # 3. global Gumbel top-k threshold
        if p.budget_unit == "fraction":
            k: float = math.floor(p.budget * raw["eligible"] + 1e-9)
            unit = "docs"
        else:
            k, unit = p.budget, p.budget_unit
        pool_size = raw["eligible"] if unit == "docs" else raw["eligible_tokens"]
        stats["budget_resolved"] = {"unit": unit, "value": k}
        if k >= pool_size:
            if p.budget_unit != "fraction" or k > pool_size:
                msg = (
                    f"dsir_resample: budget {p.budget:g} {p.budget_unit} >= eligible pool "
                    f"({pool_size} {unit}); keeping every eligible document"
                )
                ctx.warnings.append(msg)
                stats["warning"] = msg
        elif k <= 0:
            state["select_none"] = True
            ctx.warnings.append(f"dsir_resample: budget {p.budget:g} {p.budget_unit} rounds to 0 documents")
        else:
            part = _CandidatePartial(fz_args, col, ld, seed, p.top_k, p.min_tokens, unit, k)
            best = None
            for i in data_ids:
                c = ctx.aggregate(inputs[i], part, part.merge, columns=[schema.ID, col])
                if c is not None:
                    best = c if best is None else part.merge(best, c)
            if best is not None and len(best["key"]):
                state["threshold_key"] = float(best["key"][-1])
                state["threshold_tie"] = int(best["tie"][-1])
        stats["threshold_key"] = state["threshold_key"]
        if p.top_k and state["threshold_key"] is not None:
            stats["thresholds"] = {schema.DSIR_LOGW: [state["threshold_key"]]}  # drawn by the report
        # 4. KL reduction
        if p.compute_kl:
            sp = _SelectedCountPartial(fz_args, col, ld, state, p.min_tokens, p.top_k)
            sel = None
            for i in data_ids:
                s = ctx.aggregate(inputs[i], sp, _merge_counts, columns=[schema.ID, col])
                if s is not None:
                    sel = s if sel is None else _merge_counts(sel, s)
            if sel is not None:
                stats["selected_docs"] = sel["docs"]
                stats["selected_tokens"] = sel["tokens"]
                if sel["counts"].sum() > 0:
                    stats.update(kl_reduction([target_probs], raw["counts"], sel["counts"]))
        state["stats"] = stats
        return state

    # -- apply ---------------------------------------------------------------------------
    def load(self, state: dict[str, Any]) -> _Fitted:
        fz = HashedNgramFeaturizer(self.params.num_buckets, self.params.ngrams)
        if state.get("empty_pool") or state.get("log_diff") is None:
            return _Fitted(fz, None, state)
        try:
            return _Fitted(fz, jobfs.load_npy(state["log_diff"]), state)
        except Exception as e:  # noqa: BLE001
            raise StageError(f"dsir_resample: cannot read fitted weights {state['log_diff']}: {e}") from e

    def process(self, batch: pa.Table, fitted: _Fitted) -> MapResult:
        p = self.params
        n = batch.num_rows
        fz, state = fitted.featurizer, fitted.state
        text = _text(batch, self.text_column)
        if fitted.log_diff is None:
            logw = np.zeros(n)
            ntok = fz.counts(text)[1] if n else np.zeros(0, dtype=np.int64)
            sel = np.zeros(n, dtype=bool)
        else:
            if schema.ID not in batch.column_names:
                raise StageError("dsir_resample: batches need an 'id' column")
            logw, ntok, _ = fz.score(text, fitted.log_diff)
            ids = batch.column(schema.ID).to_pylist()
            sel = _selected(ids, logw, ntok, state, p.min_tokens, p.top_k)
        short = ntok < p.min_tokens
        keep = sel | (short & (p.short_docs == "keep"))
        reason = np.where(short, TOO_FEW_TOKENS, NOT_SELECTED).astype(object)
        detail = np.full(n, "", dtype=object)
        rej = np.flatnonzero(~keep)
        detail[rej] = [
            f"tokens={t} < min_tokens={p.min_tokens}" if s else f"dsir_logw={w:.6f}"
            for t, s, w in zip(ntok[rej].tolist(), short[rej].tolist(), logw[rej].tolist())
        ]
        out = batch.append_column(schema.DSIR_LOGW, pa.array(logw, type=pa.float64()))
        return split_batch(out, keep, pa.array(reason, pa.string()), pa.array(detail, pa.string()))
