"""The fitted decisions and how a batch is annotated with them.

The keep phase writes one decision row per clustered new document (``id, uid, cluster,
size, kept, of_index``) into the state directory. :class:`DecisionTable` loads them once
per worker (the framework caches ``load``) in compact columnar form and annotates each
batch: ``dup_cluster`` (the kept document's id, or the document's own), its size and
``dup_kept``, with a reject detail naming the kept document for every removed one.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import schema
from curate.stages.minhash_dedup.layout import int64s, node_ids

_COLUMNS = {schema.ID: pa.string(), "uid": pa.int64(), "cluster": pa.string(), "size": pa.int64(),
            "kept": pa.bool_(), "of_index": pa.bool_()}


def decision_counts(files: list[str]) -> dict[str, int]:
    """Removed documents, kept cluster members and documents removed as duplicates of the index."""
    removed = kept_in_clusters = of_index = 0
    for f in files:
        d = pq.read_table(f, columns=["kept", "of_index"])
        kept = d.column("kept").to_numpy(zero_copy_only=False)
        removed += int((~kept).sum())
        kept_in_clusters += int(kept.sum())
        of_index += int((~kept & d.column("of_index").to_numpy(zero_copy_only=False)).sum())
    return {"removed": removed, "kept_cluster_members": kept_in_clusters, "removed_as_dup_of_index": of_index}


class DecisionTable:
    """The fitted decisions in compact columnar form, sorted by 63-bit node id.

    About 25 bytes per clustered document plus its cluster id string (no per-row Python
    objects), looked up with a vectorized binary search per batch."""

    def __init__(self, files: tuple[str, ...]):
        cols = list(_COLUMNS)
        tables = [pq.read_table(f, columns=cols) for f in files]
        t = pa.concat_tables(tables) if tables else pa.table({c: pa.array([], ty) for c, ty in _COLUMNS.items()})
        t = t.take(pc.sort_indices(t, sort_keys=[("uid", "ascending")]))
        self.uid = int64s(t, "uid")
        self.size = int64s(t, "size")
        self.kept = t.column("kept").to_numpy(zero_copy_only=False).astype(bool)
        self.of_index = t.column("of_index").to_numpy(zero_copy_only=False).astype(bool)
        self.cluster = t.column("cluster").combine_chunks()

    def __len__(self) -> int:
        return len(self.uid)

    def lookup(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Row of every id in the table and whether it was found."""
        q = node_ids(ids)
        if len(self.uid) == 0:
            return np.zeros(len(q), np.int64), np.zeros(len(q), bool)
        pos = np.minimum(np.searchsorted(self.uid, q), len(self.uid) - 1)
        return pos, self.uid[pos] == q

    def annotate(self, batch: pa.Table) -> tuple[pa.Table, np.ndarray, list[str]]:
        """The batch with ``dup_cluster``, ``dup_cluster_size`` and ``dup_kept`` (replacing
        any already there), whether each row is kept, and the reject detail of each row."""
        id_col = pc.cast(batch.column(schema.ID), pa.string())
        ids = id_col.to_pylist()
        pos, found = self.lookup([str(x) for x in ids])
        size = np.where(found, self.size[pos] if len(self) else 1, 1).astype(np.int64)
        kept = np.where(found, self.kept[pos] if len(self) else True, True)
        if len(self):
            cluster = pc.if_else(pa.array(found), self.cluster.take(pa.array(pos, pa.int64())), id_col)
        else:
            cluster = id_col
        detail = [""] * len(ids)
        for i in np.flatnonzero(~kept):
            where = "an indexed document" if self.of_index[pos[i]] else "document"
            detail[i] = f"near-duplicate of {where} {cluster[int(i)].as_py()} (cluster size {size[i]})"
        cluster = cluster.combine_chunks() if isinstance(cluster, pa.ChunkedArray) else cluster
        out = batch
        for name in (schema.DUP_CLUSTER, schema.DUP_CLUSTER_SIZE, schema.DUP_KEPT):
            if name in out.column_names:
                out = out.drop_columns([name])
        out = out.append_column(schema.DUP_CLUSTER, cluster)
        out = out.append_column(schema.DUP_CLUSTER_SIZE, pa.array(size, pa.int64()))
        out = out.append_column(schema.DUP_KEPT, pa.array(kept))
        return out, kept, detail
