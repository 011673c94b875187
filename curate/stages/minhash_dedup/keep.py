"""Phase 5, keep choice: which member of each component survives.

Two shuffles. The **meta join** (keyed by node id) gives every component member its
document id, keep value and, when verifying, its shingle set; it also checks that
document ids are unique (so it runs even without clusters). The **keep reduce** (keyed
by component root) sorts members by keep priority (indexed documents first) and
decides. Without verification the component is the cluster and its first member is
kept. With verification the component is split by greedy pivot clustering on exact
Jaccard (keepers in keep order, or by coverage), so every removed document truly matches
the document kept for it; indexed documents are always keepers. One decision row per
new member: ``id, uid, cluster, size, kept, of_index``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import schema
from curate.fit import FitContext
from curate.stage import StageError
from curate.stages.minhash_dedup import layout
from curate.stages.minhash_dedup.layout import KEEP_VALUE, SHINGLES, Source, SourceKind, int64s, sources
from curate.stages.minhash_dedup.verification import build_node_filter, filter_mask, filter_nodes, lookup

CENTRAL_MAX = 256  # coverage split: largest component that gets the all-pairs matrix
MAX_PIVOT = 20000  # larger components keep plain component semantics


def choose_keepers(ctx: FitContext, cfg: dict, cc_files: list[str], edge_files: list[str],
                   sig_files: list[str], index_meta: list[Source], index_sets: list[Source], nparts: int,
                   scratch: Path) -> list[str]:
    """Decision files (in scratch) of every clustered new document."""
    direction = "ascending" if cfg["keep_policy"] in ("lowest_id", "source_priority") else "descending"
    verify = cfg["verify_jaccard"]
    signature_sources = sources(SourceKind.SIGNATURES, sig_files)
    member_filter = build_node_filter(ctx, edge_files, scratch / "filter-members") if verify else None
    mparts = (layout.set_partitions(signature_sources + index_sets, filter_nodes(member_filter), nparts)
              if verify else nparts)
    joined = ctx.shuffle(sources(SourceKind.COMPONENTS, cc_files) + signature_sources + index_meta,
                         MetaMap(verify is not None, member_filter), "node", meta_join, mparts, name="minhash/meta")
    keep_reduce = KeepReduce(direction, verify, cfg["verify_split"] == "coverage")
    if not joined:
        return []
    return ctx.shuffle(joined, _Passthrough(), "component", keep_reduce, mparts, name="minhash/keep")


class MetaMap:
    """Components -> (node, root); signature files -> (node=uid, id, keep_value[, shingles]);
    index files -> (node=uid, id[, shingles])."""

    def __init__(self, with_sets: bool, node_filter: str | None = None):
        self.with_sets, self.node_filter = with_sets, node_filter

    def __call__(self, source: Source) -> pa.Table | Iterator[pa.Table] | None:
        if source.kind is SourceKind.COMPONENTS:
            t = source.read()
            return pa.table({"node": t.column("node"), "root": t.column("root")}) if t.num_rows else None
        return self._meta(source)

    def _meta(self, source: Source) -> Iterator[pa.Table]:
        own = source.kind is SourceKind.SIGNATURES
        cols = ["uid", "id"] + ([KEEP_VALUE] if own else []) + ([SHINGLES] if self.with_sets else [])
        for t in source.chunks(cols):
            data = {"node": t.column("uid"), "id": t.column("id")}
            if own:
                data[KEEP_VALUE] = t.column(KEEP_VALUE)
            if self.with_sets:  # sets only for cluster members (every row still checks id uniqueness)
                mask = filter_mask(self.node_filter, int64s(t, "uid"))
                shingles = layout.as_sets(t.column(SHINGLES))
                data[SHINGLES] = pc.if_else(pa.array(mask), shingles, pa.nulls(t.num_rows, shingles.type))
            yield pa.table(data)


def meta_join(t: pa.Table) -> pa.Table | None:
    """Component members with their metadata, re-keyed by component root."""
    if "root" in t.column_names:
        is_c = pc.is_valid(t.column("root"))
        comp, meta = t.filter(is_c), t.filter(pc.invert(is_c))
    else:
        comp, meta = t.slice(0, 0), t
    mk = int64s(meta, "node")
    if len(mk):
        # distinct document ids must map to distinct node ids
        o = np.argsort(mk, kind="stable")
        dup = np.flatnonzero(mk[o][1:] == mk[o][:-1])
        if len(dup):
            ids = meta.column("id").to_pylist()
            for d in dup:
                x, y = ids[o[d]], ids[o[d + 1]]
                if x == y:
                    raise StageError(f"minhash_dedup: document id {x!r} occurs more than once; ids must be unique")
                raise StageError(f"minhash_dedup: 63-bit id hash collision between {x!r} and {y!r}")
    if comp.num_rows == 0:
        return None
    node = int64s(comp, "node")
    idx, found = lookup(node, mk)
    if not found.all():
        missing = int((~found).sum())
        raise StageError(f"minhash_dedup: {missing} cluster members have no metadata (corrupt scratch/index?)")
    sel = pa.array(idx, pa.int64())
    data = {"component": comp.column("root"), "uid": comp.column("node"), "id": meta.column("id").take(sel)}
    for c in (KEEP_VALUE, SHINGLES):
        if c in meta.column_names:
            data[c] = meta.column(c).take(sel)
    return pa.table(data)


class _Passthrough:
    def __call__(self, path: str) -> Iterator[pa.Table]:
        return layout.read_chunks(path, None)


@nb.njit(cache=True, nogil=True)
def _jac_at_least(vals, offs, i, j, thr):
    x, xe, y, ye = offs[i], offs[i + 1], offs[j], offs[j + 1]
    inter = 0
    while x < xe and y < ye:
        if vals[x] == vals[y]:
            inter += 1
            x += 1
            y += 1
        elif vals[x] < vals[y]:
            x += 1
        else:
            y += 1
    union = (xe - offs[i]) + (ye - offs[j]) - inter
    return union > 0 and inter >= thr * union - 1e-9


@nb.njit(cache=True, nogil=True)
def _pivot_groups(vals, offs, starts, ends, thr, max_size, central_max, forced):
    """Greedy pivot clustering inside every component (members sorted by keep priority).

    Forced members (indexed documents, sorted first) are all keepers: they are never
    removed, so one may not absorb another, or a new document that truly matches only
    the absorbed one would be kept. Then an unassigned member becomes a keeper and every
    unassigned member whose exact Jaccard with it is >= ``thr`` joins its cluster;
    repeat. In components of at most
    ``central_max`` members the next keeper is the one with the most unassigned true
    matches (ties: keep priority), which removes the most documents; in larger ones it is
    the best unassigned member by keep priority. Components larger than ``max_size`` keep
    plain component semantics (the first member keeps all)."""
    n = offs.shape[0] - 1
    assign = np.full(n, -1, dtype=np.int64)
    for g in range(starts.shape[0]):
        s0, e0 = starts[g], ends[g]
        m = e0 - s0
        if m > max_size:
            for i in range(s0, e0):
                assign[i] = s0
            continue
        if m <= central_max:
            adj = np.zeros((m, m), dtype=np.bool_)
            for i in range(m):
                for j in range(i + 1, m):
                    if _jac_at_least(vals, offs, s0 + i, s0 + j, thr):
                        adj[i, j] = True
                        adj[j, i] = True
            left = m
            for i in range(m):  # forced keepers first (indexed documents): each is its own keeper
                if forced[s0 + i]:
                    assign[s0 + i] = s0 + i
                    left -= 1
            for i in range(m):  # ... and takes its unassigned true matches
                if forced[s0 + i]:
                    for j in range(m):
                        if adj[i, j] and assign[s0 + j] < 0:
                            assign[s0 + j] = s0 + i
                            left -= 1
            while left > 0:
                best, best_deg = -1, -1
                for i in range(m):
                    if assign[s0 + i] >= 0:
                        continue
                    deg = 0
                    for j in range(m):
                        if adj[i, j] and assign[s0 + j] < 0:
                            deg += 1
                    if deg > best_deg:
                        best, best_deg = i, deg
                assign[s0 + best] = s0 + best
                left -= 1
                for j in range(m):
                    if adj[best, j] and assign[s0 + j] < 0:
                        assign[s0 + j] = s0 + best
                        left -= 1
            continue
        for i in range(s0, e0):
            if assign[i] >= 0:
                continue
            assign[i] = i
            for j in range(i + 1, e0):
                if assign[j] < 0 and not forced[j] and _jac_at_least(vals, offs, i, j, thr):
                    assign[j] = i
    return assign


class KeepReduce:
    """Per component: choose kept documents; emit a decision row per new member.

    Without verification the component is the cluster (one kept document). With
    ``verify`` the component is split by greedy pivot clustering on exact Jaccard, so
    every removed document truly matches its kept document."""

    def __init__(self, direction: str, verify: float | None, central: bool, max_pivot: int = MAX_PIVOT):
        self.direction, self.verify, self.max_pivot = direction, verify, max_pivot
        self.central_max = CENTRAL_MAX if central else 0

    def __call__(self, t: pa.Table) -> pa.Table | None:
        n = t.num_rows
        if n == 0:
            return None
        uid = int64s(t, "uid")
        is_index = uid < 0
        if KEEP_VALUE not in t.column_names:
            t = t.append_column(KEEP_VALUE, pa.nulls(n, pa.int64()))
        t = t.append_column("_index_first", pa.array(is_index.astype(np.int8) * -1, pa.int8()))
        keys = [("component", "ascending"), ("_index_first", "ascending"), (KEEP_VALUE, self.direction),
                ("id", "ascending")]
        try:  # pyarrow >= 25: null placement per key
            order = pc.sort_indices(t, sort_keys=[(c, o, "at_end") for c, o in keys])
        except (TypeError, ValueError, pa.ArrowInvalid):
            order = pc.sort_indices(t, sort_keys=keys, null_placement="at_end")
        t = t.take(order)
        root = int64s(t, "component")
        first = np.r_[True, root[1:] != root[:-1]]
        starts = np.flatnonzero(first)
        ends = np.r_[starts[1:], n]
        if self.verify is not None and SHINGLES in t.column_names:
            vals, offs = layout.flat_sets(t.column(SHINGLES))
            assign = _pivot_groups(vals, offs, starts.astype(np.int64), ends.astype(np.int64),
                                   float(self.verify), self.max_pivot, self.central_max, int64s(t, "uid") < 0)
        else:
            assign = starts[np.cumsum(first) - 1]
        sizes = np.bincount(assign, minlength=n)
        uid = int64s(t, "uid")
        new = uid >= 0
        kept = assign == np.arange(n)
        ids = t.column("id")
        out = pa.table({
            schema.ID: ids.filter(pa.array(new)),
            "uid": pa.array(uid[new], pa.int64()),
            "cluster": ids.take(pa.array(assign[new], pa.int64())),
            "size": pa.array(sizes[assign][new], pa.int64()),
            "kept": pa.array(kept[new]),
            "of_index": pa.array(uid[assign][new] < 0),
        })
        return out if out.num_rows else None
