"""Exact (normalized-text) deduplication as a barrier stage."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import Field

from curate import schema
from curate.fit import FitContext, ShardSet
from curate.parquet_io import iter_file_batches
from curate.stage import BarrierStage, MapResult, StageParams, split_batch
from curate.stages.dedup_hooks import DedupHooks
from curate.text.normalize import text_hashes
from curate.util import id_hashes


class ExactDedupParams(StageParams):
    normalize: bool = Field(
        True, description="Hash NFKC-lowercased text with punctuation/whitespace folded (False: raw text)"
    )


class _HashMap:
    """Shuffle map: (h, id) for every row of one part file."""

    def __init__(self, text_column: str, normalize: bool, batch_size: int):
        self.text_column, self.normalize, self.batch_size = text_column, normalize, batch_size

    def __call__(self, path: str) -> pa.Table | None:
        parts = []
        for t in iter_file_batches(path, [schema.ID, self.text_column], self.batch_size):
            h = text_hashes(t.column(self.text_column), self.normalize)
            parts.append(pa.table({"h": pa.array(h, pa.uint64()), schema.ID: t.column(schema.ID)}))
        return pa.concat_tables(parts) if parts else None


def _reduce_dups(table: pa.Table) -> pa.Table | None:
    """Per hash, keep the lowest id; emit (id, kept_id, cluster size) for dropped rows."""
    order = pc.sort_indices(table, sort_keys=[("h", "ascending"), (schema.ID, "ascending")])
    t = table.take(order)
    h = t.column("h").to_numpy()
    if len(h) == 0:
        return None
    first = np.ones(len(h), dtype=bool)
    first[1:] = h[1:] != h[:-1]
    group = np.cumsum(first) - 1
    starts = np.flatnonzero(first)
    sizes = np.diff(np.append(starts, len(h)))
    dropped = ~first
    if not dropped.any():
        return None
    ids = t.column(schema.ID)
    kept_ids = ids.take(pa.array(starts[group[dropped]]))
    return pa.table(
        {
            schema.ID: ids.filter(pa.array(dropped)),
            "kept_id": kept_ids,
            "cluster_size": pa.array(sizes[group[dropped]], pa.int64()),
        }
    )


class _Drops:
    """Dropped ids as a sorted uint64 hash array plus the ids themselves (for an exact check)
    and their kept ids: about 40 bytes per dropped document instead of a Python dict."""

    def __init__(self, ids: pa.Array, kept: pa.Array):
        h = id_hashes(ids)
        order = np.argsort(h, kind="stable")
        self.h = h[order]
        self.ids = ids.take(pa.array(order))
        self.kept = kept.take(pa.array(order))

    def lookup(self, ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, pa.Array]:
        """(dropped mask, kept id per row or '') for a batch of ids."""
        n = len(ids)
        if n == 0 or len(self.h) == 0:
            return np.zeros(n, dtype=bool), pa.array([""] * n, pa.string())
        q = id_hashes(ids)
        pos = np.minimum(np.searchsorted(self.h, q), len(self.h) - 1)
        hit = self.h[pos] == q
        idx = np.flatnonzero(hit)
        if len(idx):  # confirm on the id itself (64-bit hash collisions are not trusted)
            same = pc.equal(pc.cast(self.ids.take(pa.array(pos[idx])), pa.string()),
                            pc.cast(pc.take(ids, pa.array(idx)), pa.string())).to_numpy(zero_copy_only=False)
            hit[idx[~same]] = False
        detail = np.full(n, "", dtype=object)
        hi = np.flatnonzero(hit)
        if len(hi):
            detail[hi] = pc.cast(self.kept.take(pa.array(pos[hi])), pa.string()).to_pylist()
        return hit, pa.array(detail, pa.string())


def load_drops(files: Sequence[str]) -> _Drops:
    """Dropped id -> kept id, from the fit's drop files."""
    tables = [pq.read_table(f, columns=[schema.ID, "kept_id"]) for f in files]
    if not tables:
        return _Drops(pa.array([], pa.string()), pa.array([], pa.string()))
    t = pa.concat_tables(tables)
    return _Drops(t.column(schema.ID).combine_chunks(), t.column("kept_id").combine_chunks())


class ExactDedup(DedupHooks, BarrierStage):
    """Remove exact duplicates of the normalized text, keeping the lowest id.

    Fit: a hash-partitioned shuffle of (text hash, id); each partition keeps the
    lowest id per hash. Apply: rejects the others with reason `exact_duplicate`
    and the kept id as detail.
    """

    name = "exact_dedup"
    Params = ExactDedupParams
    reject_reasons = {"exact_duplicate": "same normalized text as the kept document named in detail"}
    kept_id_column = schema.DETAIL  # a rejected row's detail is the id kept in its place (see process)

    def fit(self, inputs: dict[str, ShardSet], ctx: FitContext) -> dict[str, Any]:
        files = [f for name in self.data_inputs(list(inputs)) for f in inputs[name].files]
        outs = ctx.shuffle(
            files,
            _HashMap(self.text_column, self.params.normalize, ctx.batch_size),
            "h",
            _reduce_dups,
            ctx.num_partitions,
            name=f"{self.node_id}-exact",
        )
        kept = ctx.persist(outs, "drops")
        n_drop = sum(pq.ParquetFile(f).metadata.num_rows for f in kept)
        return {"drop_files": kept, "stats": {"duplicates": n_drop}}

    def load(self, state: dict[str, Any]) -> _Drops:
        return load_drops(state["drop_files"])

    def process(self, batch: pa.Table, drops: _Drops) -> MapResult:
        dropped, detail = drops.lookup(batch.column(schema.ID))
        return split_batch(batch, ~dropped, "exact_duplicate", detail)
