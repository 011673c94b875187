"""PreSelect labels: predictive strength per document, then balanced positives/negatives.

Predictive strength (Shum et al. 2025, "Predictive Data Selection"): sort the N models by
benchmark score ascending (S_1 < ... < S_N) and let C_i(d) be model i's normalized loss on
document d. Then

    PS(d) = (1/Z) * sum_{i<j} 1[C_i(d) > C_j(d)],    Z = N(N-1)/2

i.e. the share of model pairs whose loss order agrees with their ability order (a
stronger model has strictly lower loss). Equal losses count 0. PS = 1 (integer score Z)
makes a positive; negatives are as many imperfect documents, chosen by ``lowest`` (the
lowest scores first, default) or ``hard`` (the highest imperfect scores first). Ties in
the negative order are broken by a seeded hash of the document id.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate import schema
from curate.stage import StageError
from curate.util import id_hashes

LOSS_PREFIX = "bpc_"
"""Loss matrix columns are ``bpc_<model name>`` (bits per character)."""

META_KEY = b"curate.preselect"
"""Parquet schema-metadata key holding the loss matrix's model list (JSON)."""


def derive_seed(seed: int, tag: str) -> int:
    """A 64-bit seed for one purpose, so different uses of the same seed never correlate."""
    return xxhash.xxh3_64_intdigest(f"{tag}:{seed}".encode())


class LabelError(StageError):
    """The loss matrix or benchmark scores cannot be labeled (message says why)."""


def predictive_strength_counts(losses: np.ndarray) -> np.ndarray:
    """Integer score per row: pairs i < j (columns in ascending benchmark order) with L_i > L_j."""
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 2:
        raise LabelError("losses must be a 2-D array (documents x models)")
    n_models = losses.shape[1]
    counts = np.zeros(losses.shape[0], dtype=np.int64)
    for i in range(n_models):
        for j in range(i + 1, n_models):
            counts += losses[:, i] > losses[:, j]
    return counts


def predictive_strength(losses: np.ndarray, bench: np.ndarray | list[float]) -> tuple[np.ndarray, np.ndarray]:
    """``(counts, PS)`` for a documents x models loss matrix and each model's benchmark score.

    Columns may be in any order: they are sorted by benchmark score first. Benchmark ties
    are an error (no document could then reach PS = 1).
    """
    b = np.asarray(bench, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if losses.ndim != 2 or losses.shape[1] != len(b):
        raise LabelError(
            f"loss matrix has {losses.shape[-1] if losses.ndim else 0} models but {len(b)} benchmark scores"
        )
    if len(b) < 2:
        raise LabelError("predictive strength needs at least 2 models")
    if not np.all(np.isfinite(b)):
        raise LabelError("benchmark scores must be finite numbers")
    if len(np.unique(b)) != len(b):
        raise LabelError("benchmark scores must be distinct: tied models make a perfect ranking impossible")
    order = np.argsort(b, kind="stable")
    counts = predictive_strength_counts(losses[:, order])
    z = len(b) * (len(b) - 1) // 2
    return counts, counts / z


@dataclass
class LabelResult:
    """Labeled documents plus a summary for logs and reports."""

    table: pa.Table
    summary: dict[str, Any] = field(default_factory=dict)


def loss_columns(table: pa.Table, prefix: str = LOSS_PREFIX) -> dict[str, str]:
    """``{model name: column}`` for every loss column of a loss matrix."""
    return {c[len(prefix) :]: c for c in table.column_names if c.startswith(prefix)}


def check_loss_matrix(table: pa.Table, bench: dict[str, float], prefix: str = LOSS_PREFIX) -> list[str]:
    """Validate a loss matrix against benchmark scores; returns model names in column order."""
    cols = loss_columns(table, prefix)
    declared: list[str] = []
    meta = (table.schema.metadata or {}).get(META_KEY)
    if meta:
        declared = [m["name"] for m in json.loads(meta).get("models", [])]
        absent = [m for m in declared if m not in cols]
        if absent:
            raise LabelError(
                f"loss matrix is missing the loss columns of models {absent} (declared in its metadata)"
            )
    if len(cols) < 2:
        raise LabelError(
            f"loss matrix has {len(cols)} loss column(s) ({list(cols.values())}); need '{prefix}<model>' columns "
            "for at least 2 models"
        )
    missing = sorted(set(cols) - set(bench))
    extra = sorted(set(bench) - set(cols))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"no benchmark score for models {missing}")
        if extra:
            parts.append(f"benchmark scores for models not in the loss matrix {extra}")
        raise LabelError(
            "benchmark scores do not match the loss columns: "
            + "; ".join(parts)
            + f" (loss matrix models: {sorted(cols)})"
        )
    for name, v in bench.items():
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v):
            raise LabelError(f"benchmark score of model {name!r} is not a finite number: {v!r}")
    ids = table.column(schema.ID) if schema.ID in table.column_names else None
    for name, col in cols.items():
        arr = table.column(col)
        if not pa.types.is_floating(arr.type) and not pa.types.is_integer(arr.type):
            raise LabelError(f"loss column {col!r} is not numeric ({arr.type})")
        vals = pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)
        bad = ~np.isfinite(vals)
        if bad.any():
            first = int(np.argmax(bad))
            where = f"id {ids[first].as_py()!r}" if ids is not None else f"row {first}"
            raise LabelError(
                f"loss column {col!r} has {int(bad.sum())} missing/NaN/infinite losses (first at {where}); "
                "recompute the losses or drop those documents"
            )
    return list(cols)


def label_documents(
    table: pa.Table,
    bench: dict[str, float],
    negatives: Literal["lowest", "hard"] = "lowest",
    seed: int = 0,
    max_positives: int | None = None,
    prefix: str = LOSS_PREFIX,
) -> LabelResult:
    """Predictive strength for every row of a loss matrix, then balanced labeled rows.

    Returns the selected rows (all input columns plus ``ps``, ``ps_count`` and ``label``:
    1 for PS = 1, 0 for chosen negatives), in input order.
    """
    if negatives not in ("lowest", "hard"):
        raise LabelError(f"negatives must be 'lowest' or 'hard', got {negatives!r}")
    models = check_loss_matrix(table, bench, prefix)
    cols = loss_columns(table, prefix)
    mat = np.column_stack(
        [pc.cast(table.column(cols[m]), pa.float64()).to_numpy(zero_copy_only=False) for m in models]
    )
    counts, ps = predictive_strength(mat, [bench[m] for m in models])
    z = len(models) * (len(models) - 1) // 2
    n = table.num_rows
    ids = table.column(schema.ID) if schema.ID in table.column_names else pa.array([str(i) for i in range(n)])
    tiebreak = id_hashes(ids, derive_seed(seed, "preselect.label"))
    pos = np.flatnonzero(counts == z)
    if len(pos) == 0:
        raise LabelError(
            f"no document has a perfect predictive-strength score ({z}/{z}) among {n}; check that the benchmark "
            "scores rank the models the way their losses should (higher score = better model)"
        )
    warnings: list[str] = []
    if max_positives is not None and len(pos) > max_positives:
        pos = pos[np.argsort(tiebreak[pos], kind="stable")[:max_positives]]
    imperfect = np.flatnonzero(counts < z)
    primary = counts[imperfect] if negatives == "lowest" else -counts[imperfect]
    neg = imperfect[np.lexsort((tiebreak[imperfect], primary))][: len(pos)]
    if len(neg) < len(pos):
        warnings.append(
            f"only {len(neg)} imperfect documents for {len(pos)} positives: classes are unbalanced"
        )
    chosen = np.sort(np.concatenate([pos, neg]))
    label = np.zeros(n, dtype=np.int64)
    label[pos] = 1
    out = table.take(pa.array(chosen))
    out = out.append_column("ps", pa.array(ps[chosen], pa.float64()))
    out = out.append_column("ps_count", pa.array(counts[chosen], pa.int64()))
    out = out.append_column("label", pa.array(label[chosen], pa.int64()))
    hist = np.bincount(counts, minlength=z + 1)
    summary = {
        "documents": n,
        "models_by_benchmark": [m for _, m in sorted((bench[m], m) for m in models)],
        "pairs": z,
        "negatives": negatives,
        "positives": len(pos),
        "negatives_chosen": len(neg),
        "score_histogram": {str(k): int(v) for k, v in enumerate(hist)},
        "negative_score_range": [int(counts[neg].min()), int(counts[neg].max())] if len(neg) else None,
        "warnings": warnings,
    }
    meta = dict(out.schema.metadata or {})
    meta[b"curate.preselect.labels"] = json.dumps(summary).encode()
    return LabelResult(out.replace_schema_metadata(meta), summary)
