"""Phase 2, LSH: documents that share a band key become candidate edges.

One shuffle per group of ``bands_per_pass`` bands (so memory is bounded), keyed by band
key over this run's signature files and the index's band files. Every bucket (one band
key) links its minimum member to each other member: a linear number of edges, and the
components are the same as with all pairs. Indexed documents have negative node ids, so
they are the minimum of their buckets; pairs of two indexed documents are skipped (the
index was deduplicated when it was written). With a verification threshold, edges whose
shingle-set sizes alone rule out ``J >= verify_jaccard`` are dropped here.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from curate.components import unique_pairs
from curate.fit import FitContext
from curate.stages.minhash_dedup import layout
from curate.stages.minhash_dedup.layout import N_SHINGLES, Source, band_column, int64s
from curate.stages.minhash_dedup.params import MinHashDedupParams

BAND_ROW_BYTES = 24  # bucket key, node id, set size


def find_candidate_edges(ctx: FitContext, p: MinHashDedupParams, band_sources: list[Source], n_docs: int,
                         nparts: int) -> tuple[list[str], int]:
    """Edge files (columns ``a``, ``b``) of every band, and the shuffle partitions used.

    About ``PART_BYTES`` of band rows per reducer, at least ``nparts``."""
    lparts = p.num_partitions or int(min(max(nparts, -(-n_docs * min(p.bands_per_pass, p.bands) * BAND_ROW_BYTES
                                                       // layout.PART_BYTES)), max(nparts, 1024)))
    edge_files: list[str] = []
    for g0 in range(0, p.bands, p.bands_per_pass):
        group = list(range(g0, min(p.bands, g0 + p.bands_per_pass)))
        edge_files += ctx.shuffle(band_sources, BandMap(group), "bucket_key", BucketEdges(p.verify_jaccard),
                                  lparts, name=f"minhash/lsh{g0:03d}")
    return edge_files, lparts


class BandMap:
    """A signature or index band file -> one (bucket_key, node, n_shingles) row per band of a group."""

    def __init__(self, bands: list[int]):
        self.bands = bands

    def __call__(self, source: Source) -> pa.Table | None:
        t = source.read(["uid", N_SHINGLES] + [band_column(j) for j in self.bands])
        if t.num_rows == 0:
            return None
        uid = int64s(t, "uid")
        keys = np.concatenate([int64s(t, band_column(j)) for j in self.bands])
        n_bands = len(self.bands)
        return pa.table({"bucket_key": keys, "node": np.tile(uid, n_bands),
                         N_SHINGLES: np.tile(int64s(t, N_SHINGLES), n_bands)})


class BucketEdges:
    """Every bucket (equal band key) links its minimum member to each other member.

    With a verification threshold, edges whose shingle-set sizes alone rule the match
    out (``min(|A|,|B|) < thr * max(|A|,|B|)`` implies ``J < thr``) are dropped here."""

    def __init__(self, thr: float | None):
        self.thr = thr

    def __call__(self, t: pa.Table) -> pa.Table | None:
        key, node = int64s(t, "bucket_key"), int64s(t, "node")
        size = int64s(t, N_SHINGLES) if N_SHINGLES in t.column_names else np.zeros(len(key), np.int64)
        order = np.lexsort((node, key))
        key, node, size = key[order], node[order], size[order]
        first = np.r_[True, key[1:] != key[:-1]]
        starts = np.flatnonzero(first)
        reps = np.diff(np.r_[starts, len(node)])
        bucket_min = np.repeat(node[starts], reps)
        mask = (~first) & (node != bucket_min) & ~((node < 0) & (bucket_min < 0))  # skip index-index pairs
        if self.thr is not None:
            min_size = np.repeat(size[starts], reps)
            mask &= np.minimum(size, min_size) >= self.thr * np.maximum(size, min_size) - 1e-9
        return edge_table(*unique_pairs(bucket_min[mask], node[mask]))


def edge_table(a: np.ndarray, b: np.ndarray) -> pa.Table | None:
    """An edge file's table (None when empty)."""
    if len(a) == 0:
        return None
    return pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b, pa.int64())})
