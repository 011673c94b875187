"""Report and lineage hooks shared by the deduplication stages (a mixin).

A dedup stage mixes in :class:`DedupHooks` and says where the id kept in place of a
rejected duplicate is (``kept_id_column``). Its report section, the cluster-size
distribution, is computed from its own outputs:

* a stage that provides ``dup_cluster_size`` counts every cluster once, at its kept
  member, among the documents that passed the node (``dup_kept`` marks the kept member,
  as a flag or as the kept id; annotate mode keeps every member);
* otherwise the clusters are counted from the node's rejects, each naming the id it was
  removed in favour of.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import schema
from curate.stage import ReportSection

if TYPE_CHECKING:  # pragma: no cover
    from curate.jobdata import JobData

SIZE_BUCKETS = [(1, 1), (2, 2), (3, 4), (5, 9), (10, 99), (100, 999), (1000, None)]
DUP_COLUMNS = (schema.DUP_CLUSTER, schema.DUP_CLUSTER_SIZE, schema.DUP_KEPT)


def _bucket_label(lo: int, hi: int | None) -> str:
    return f"{lo}" if lo == hi else (f"{lo}+" if hi is None else f"{lo}-{hi}")


def _representatives(t: pa.Table) -> pa.Table:
    """The rows that are their cluster's kept member (all rows without ``dup_kept``)."""
    if schema.DUP_KEPT not in t.column_names or schema.ID not in t.column_names:
        return t
    kept = t.column(schema.DUP_KEPT)
    if pa.types.is_boolean(kept.type):
        rep = kept
    else:
        rep = pc.equal(pc.cast(kept, pa.string()), pc.cast(t.column(schema.ID), pa.string()))
    return t.filter(pc.fill_null(rep, True))


def plot_cluster_sizes(buckets: list[dict[str, Any]]) -> str:
    """Clusters per size bucket, log scale (base64 PNG)."""
    from curate.report.plots import figure, fmt, png

    fig = figure(7, 3.0)
    ax = fig.add_subplot(111)
    x = np.arange(len(buckets))
    vals = [r["clusters"] for r in buckets]
    ax.bar(x, vals, color="#8b5cf6")
    ax.set_xticks(x, [r["size"] for r in buckets])
    if any(vals):
        ax.set_yscale("log")
    ax.set_xlabel("dup cluster size (documents)")
    ax.set_ylabel("clusters")
    for xx, v in zip(x, vals):
        if v:
            ax.text(xx, v, fmt(v), ha="center", va="bottom", fontsize=7)
    return png(fig)


class DedupHooks:
    """``report_sections`` (cluster sizes) and ``explain_row`` for a dedup stage."""

    kept_id_column: ClassVar[str] = schema.DUP_CLUSTER
    """The column of a rejected row that holds the id kept in its place."""

    # -- report ------------------------------------------------------------------------
    def cluster_sizes(self, job: JobData, node_id: str) -> tuple[str | None, Counter]:
        """(source, cluster size -> number of clusters) of this node."""
        col = schema.DUP_CLUSTER_SIZE
        sizes: Counter = Counter()
        if col in self.provided_columns():  # type: ignore[attr-defined]
            files = [f for f in job.files_after(node_id) if col in job.columns(f)]
            for f in files:
                for t in job.iter_column_batches(f, [col, schema.ID, schema.DUP_KEPT]):
                    t = _representatives(t)
                    v = pc.drop_null(t.column(col)).to_numpy(zero_copy_only=False).astype(np.int64)
                    sizes.update(Counter(v.tolist()))
            if files:
                return col, sizes
        reasons = pa.array(list(self.reasons()), pa.string())  # type: ignore[attr-defined]
        kept_of: Counter = Counter()
        for f in job.reject_files(node_id):
            if self.kept_id_column not in job.columns(f):
                continue
            for t in job.iter_column_batches(f, [schema.REASON, self.kept_id_column]):
                mine = pc.is_in(t.column(schema.REASON), value_set=reasons)
                kept_of.update(pc.drop_null(t.column(self.kept_id_column).filter(mine)).to_pylist())
        if not kept_of:
            return None, sizes
        return "rejects", Counter(1 + c for c in kept_of.values())

    def report_sections(self, job: JobData, node_id: str) -> list[ReportSection]:
        """The cluster-size distribution of this node and the duplicates it removed."""
        from curate.report.html import img, row, table

        by_reason = (job.nodes.get(node_id) or {}).get("rejects_by_reason") or {}
        own = self.reasons()  # type: ignore[attr-defined]
        removed = sum(n for r, n in by_reason.items() if r in own)
        source, sizes = self.cluster_sizes(job, node_id)
        buckets = []
        for lo, hi in SIZE_BUCKETS:
            m = [(s, c) for s, c in sizes.items() if s >= lo and (hi is None or s <= hi)]
            buckets.append(
                {
                    "size": _bucket_label(lo, hi),
                    "clusters": sum(c for _, c in m),
                    "documents": sum(s * c for s, c in m),
                }
            )
        data = {
            "source": source,
            "duplicates_removed": removed,
            "clusters_with_duplicates": sum(c for s, c in sizes.items() if s > 1),
            "largest_cluster": max(sizes) if sizes else 0,
            "size_buckets": buckets,
        }
        body = row(
            img(plot_cluster_sizes(buckets), "dedup cluster sizes"),
            table(
                ["duplicates removed", "clusters with duplicates", "largest cluster", "source"],
                [[removed, data["clusters_with_duplicates"], data["largest_cluster"], source or "-"]],
            ),
        )
        return [ReportSection("dedup", "Deduplication", data, body)]

    # -- lineage -----------------------------------------------------------------------
    def explain_row(self, job: JobData, node_id: str, row: dict[str, Any], rejected: bool) -> dict[str, Any]:
        """``{"dedup": {cluster, cluster_size, kept_id, removed_as_duplicate}}`` for a
        document this node removed, or one that carries dup-cluster columns."""
        if not rejected and not any(c in row for c in DUP_COLUMNS):
            return {}
        if rejected or row.get(schema.DUP_KEPT) is False:  # annotate mode: a member not kept
            kept_id = row.get(self.kept_id_column if rejected else schema.DUP_CLUSTER)
        else:
            own = row.get(schema.SOURCE_ID)
            kept_id = str(own if own is not None else row.get(schema.ID))
        return {
            "dedup": {
                "cluster": row.get(schema.DUP_CLUSTER),
                "cluster_size": row.get(schema.DUP_CLUSTER_SIZE),
                "kept_id": kept_id,
                "removed_as_duplicate": rejected,
            }
        }
