"""Distributed connected components over edge tables (alternating large-star / small-star).

Edges live in Parquet files with int64 columns ``a`` and ``b``. Each round is two
hash-partitioned shuffles through :meth:`curate.stage.FitContext.shuffle` (Kiveris et
al., "Connected Components in MapReduce and Beyond", 2014):

* **large-star**: for every node ``u`` with neighbourhood ``N(u)``, let
  ``m = min(N(u) ∪ {u})``; connect every neighbour ``v > u`` to ``m``;
* **small-star**: orient every edge from the larger to the smaller endpoint; for every
  node ``u`` with smaller neighbours ``N⁻(u)``, let ``m = min(N⁻(u))``; connect every
  ``v ∈ N⁻(u) ∪ {u}`` (``v ≠ m``) to ``m``.

Rounds repeat until the edge set stops changing; it is then a star around the minimum
node of every component. No process ever holds more than one shuffle partition of
edges, and the result does not depend on how edges are split into files.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate import jobfs

if TYPE_CHECKING:  # pragma: no cover
    from curate.fit import FitContext

EDGE_SCHEMA = pa.schema([("a", pa.int64()), ("b", pa.int64())])


def _edges(a: np.ndarray, b: np.ndarray) -> pa.Table | None:
    if len(a) == 0:
        return None
    return pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b, pa.int64())})


def unique_pairs(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique ``(a, b)`` pairs."""
    if len(a) == 0:
        return a, b
    order = np.lexsort((b, a))
    a, b = a[order], b[order]
    keep = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])]
    return a[keep], b[keep]


def _group_min(u: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sort by (u, v); return sorted u, v, and the per-row min of v within u's group."""
    order = np.lexsort((v, u))
    u, v = u[order], v[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    gmin = v[starts]  # sorted by v inside each group, so the first is the min
    counts = np.diff(np.r_[starts, len(u)])
    return u, v, np.repeat(gmin, counts), starts


def _read_edges(path: str) -> tuple[np.ndarray, np.ndarray]:
    t = pq.read_table(path, columns=["a", "b"])
    return (t.column("a").to_numpy().astype(np.int64, copy=False),
            t.column("b").to_numpy().astype(np.int64, copy=False))


class _LargeStarMap:
    def __call__(self, path: str) -> pa.Table | None:
        a, b = _read_edges(path)
        keep = a != b
        a, b = a[keep], b[keep]
        if len(a) == 0:
            return None
        return pa.table({"k": np.r_[a, b], "v": np.r_[b, a]})


def _large_star_reduce(t: pa.Table) -> pa.Table | None:
    u = t.column("k").to_numpy().astype(np.int64, copy=False)
    v = t.column("v").to_numpy().astype(np.int64, copy=False)
    u, v, vmin, _ = _group_min(u, v)
    m = np.minimum(vmin, u)
    mask = v > u
    return _edges(*unique_pairs(v[mask], m[mask]))


class _SmallStarMap:
    def __call__(self, path: str) -> pa.Table | None:
        a, b = _read_edges(path)
        keep = a != b
        a, b = a[keep], b[keep]
        if len(a) == 0:
            return None
        return pa.table({"k": np.maximum(a, b), "v": np.minimum(a, b)})


def _small_star_reduce(t: pa.Table) -> pa.Table | None:
    u = t.column("k").to_numpy().astype(np.int64, copy=False)
    v = t.column("v").to_numpy().astype(np.int64, copy=False)
    u, v, m, starts = _group_min(u, v)
    mask = v != m
    a = np.r_[v[mask], u[starts]]
    b = np.r_[m[mask], m[starts]]
    return _edges(*unique_pairs(a, b))


class _FinalMap:
    def __call__(self, path: str) -> pa.Table | None:
        a, b = _read_edges(path)
        if len(a) == 0:
            return None
        return pa.table({"node": np.r_[a, b], "root": np.r_[b, b]})


def _final_reduce(t: pa.Table) -> pa.Table | None:
    node = t.column("node").to_numpy().astype(np.int64, copy=False)
    root = t.column("root").to_numpy().astype(np.int64, copy=False)
    node, root, rmin, starts = _group_min(node, root)
    return pa.table({"node": pa.array(node[starts], pa.int64()), "root": pa.array(rmin[starts], pa.int64())})


class _Fingerprint:
    def __call__(self, path: str) -> tuple[int, int]:
        a, b = _read_edges(path)
        with np.errstate(over="ignore"):
            h = (a.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) ^ b.astype(np.uint64)
            h = (h ^ (h >> np.uint64(31))) * np.uint64(0xBF58476D1CE4E5B9)
            return len(a), int(h.sum(dtype=np.uint64))


def _fingerprint(ctx: FitContext, files: Sequence[str]) -> tuple[int, int]:
    parts = ctx.map_files(_Fingerprint(), list(files)) if files else []
    n = sum(p[0] for p in parts)
    s = sum(p[1] for p in parts) % (1 << 64)
    return n, s


def connected_components(
    ctx: FitContext,
    edge_files: Sequence[str],
    num_partitions: int,
    name: str = "cc",
    max_rounds: int = 64,
) -> tuple[list[str], dict]:
    """Label every node that appears in an edge with the minimum node of its component.

    Returns Parquet files with int64 columns ``node`` and ``root`` (one row per node,
    roots included with ``root == node``), partitioned by node, plus round statistics.
    """
    files = [f for f in edge_files if jobfs.path(f).exists()]
    stats = {"rounds": 0, "edges_in": _fingerprint(ctx, files)[0] if files else 0}
    if not files:
        return [], stats
    prev = None
    base = jobfs.path(ctx.scratch_dir)
    for rnd in range(max_rounds):
        files = ctx.shuffle(files, _LargeStarMap(), "k", _large_star_reduce, num_partitions, f"{name}/r{rnd:02d}L")
        if rnd > 0:
            jobfs.rmtree(base / name / f"r{rnd - 1:02d}S")
        files = ctx.shuffle(files, _SmallStarMap(), "k", _small_star_reduce, num_partitions, f"{name}/r{rnd:02d}S")
        jobfs.rmtree(base / name / f"r{rnd:02d}L")
        fp = _fingerprint(ctx, files)
        stats["rounds"] = rnd + 1
        if fp == prev:
            break
        prev = fp
    else:
        raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
    out = ctx.shuffle(files, _FinalMap(), "node", _final_reduce, num_partitions, f"{name}/final")
    stats["nodes"] = sum(pq.ParquetFile(str(f)).metadata.num_rows for f in out)
    return out, stats


def write_edges(path: str | Path, a: np.ndarray, b: np.ndarray) -> str:
    """Write an edge file (helper for callers and tests)."""
    from curate.parquet_io import write_parquet_atomic

    write_parquet_atomic(path, pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b, pa.int64())}))
    return str(path)
