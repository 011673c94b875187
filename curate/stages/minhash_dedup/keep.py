"""Phase 4, keep choice (and, with a threshold, verification): which members survive.

Two shuffles. The **meta join** (keyed by node id) gives every member of a candidate
component its document id, keep value and, when verifying, its input text (indexed
documents: their stored set), and routes every candidate edge to its component; it also
checks that document ids are unique (so it runs even without clusters). The **keep
reduce** (keyed by component root) sorts members by keep priority (indexed documents
first) and decides. Without verification the component is the cluster and its first
member is kept. With verification the reducer recomputes the members' shingle sets,
keeps the candidate edges whose exact Jaccard reaches the threshold, splits the
component into verified components and splits each by greedy pivot clustering on exact
Jaccard (keepers in keep order, or by coverage), so every removed document truly
matches the document kept for it; indexed documents are always keepers. One decision
row per new member of a verified cluster: ``id, uid, cluster, size, kept, of_index``.
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
from curate.stages.minhash_dedup.layout import KEEP_VALUE, SHINGLES, TEXT, Source, SourceKind, int64s, sources
from curate.stages.minhash_dedup.verification import (
    build_node_filter,
    filter_mask,
    filter_nodes,
    lookup,
    member_partitions,
    member_sets,
    member_texts,
    take_sets,
    verified_components,
)

CENTRAL_MAX = 256  # coverage split: largest component that gets the all-pairs matrix
MAX_PIVOT = 20000  # larger components keep plain component semantics


def choose_keepers(ctx: FitContext, cfg: dict, cc_files: list[str], edge_files: list[str],
                   sig_inputs: list[tuple[str, str]], text_column: str, index_meta: list[Source],
                   nparts: int, scratch: Path) -> tuple[list[str], int]:
    """Decision files (in scratch) of every clustered new document, and the partitions of
    the two shuffles."""
    direction = "ascending" if cfg["keep_policy"] in ("lowest_id", "source_priority") else "descending"
    verify = cfg["verify_jaccard"]
    srcs = sources(SourceKind.COMPONENTS, cc_files) + sources(SourceKind.SIGNATURES, [s for s, _ in sig_inputs])
    member_filter, mparts = None, nparts
    if verify is not None:
        inputs = [f for _, f in sig_inputs]
        member_filter = build_node_filter(ctx, edge_files, scratch / "filter-members")
        index_sets = [s for s in index_meta if s.kind is SourceKind.INDEX_SETS]
        mparts = member_partitions(inputs, text_column, index_sets, filter_nodes(member_filter), nparts)
        srcs += sources(SourceKind.CANDIDATE_EDGES, edge_files) + sources(SourceKind.TEXTS, inputs)
    joined = ctx.shuffle(srcs + index_meta, MetaMap(verify is not None, text_column, member_filter), "node",
                         meta_join, mparts, name="minhash/meta")
    keep_reduce = KeepReduce(direction, verify, cfg["verify_split"] == "coverage", cfg["ngram"], cfg["seed"])
    if not joined:
        return [], mparts
    return ctx.shuffle(joined, _Passthrough(), "component", keep_reduce, mparts, name="minhash/keep"), mparts


class MetaMap:
    """Components -> (node, root); signature files -> (node=uid, id, keep_value); index
    files -> (node=uid, id[, shingles]); when verifying, candidate edges -> (node=a, other=b)
    and input files -> (node=uid, text) of candidate documents."""

    def __init__(self, with_sets: bool, text_column: str = schema.TEXT, node_filter: str | None = None):
        self.with_sets, self.text_column, self.node_filter = with_sets, text_column, node_filter

    def __call__(self, source: Source) -> pa.Table | Iterator[pa.Table] | None:
        if source.kind is SourceKind.COMPONENTS:
            t = source.read()
            return pa.table({"node": t.column("node"), "root": t.column("root")}) if t.num_rows else None
        if source.kind is SourceKind.CANDIDATE_EDGES:
            t = source.read(["a", "b"])
            return pa.table({"node": t.column("a"), "other": t.column("b")}) if t.num_rows else None
        if source.kind is SourceKind.TEXTS:
            return member_texts(source, self.text_column, self.node_filter)
        return self._meta(source)

    def _meta(self, source: Source) -> Iterator[pa.Table]:
        own = source.kind is SourceKind.SIGNATURES
        sets = self.with_sets and not own
        cols = ["uid", "id"] + ([KEEP_VALUE] if own else []) + ([SHINGLES] if sets else [])
        for t in source.chunks(cols):
            data = {"node": t.column("uid"), "id": t.column("id")}
            if own:
                data[KEEP_VALUE] = t.column(KEEP_VALUE)
            if sets:  # sets only for cluster members (every row still checks id uniqueness)
                mask = filter_mask(self.node_filter, int64s(t, "uid"))
                shingles = layout.as_sets(t.column(SHINGLES))
                data[SHINGLES] = pc.if_else(pa.array(mask), shingles, pa.nulls(t.num_rows, shingles.type))
            yield pa.table(data)


def meta_join(t: pa.Table) -> pa.Table | None:
    """Component members with their metadata (and text), and candidate edges, re-keyed by
    component root. Text rows are split off first, so texts are copied once."""
    texts, rest = _rows(t, TEXT)
    rest = rest.drop_columns([TEXT]) if TEXT in rest.column_names else rest
    comp, rest = _rows(rest, "root")
    edges, meta = _rows(rest, "other")
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
    if texts.num_rows:
        ti, tf = lookup(node, int64s(texts, "node"))
        data[TEXT] = texts.column(TEXT).take(pa.array(ti, pa.int64(), mask=~tf))  # members without text: null
    members = pa.table(data)
    if edges.num_rows == 0:
        return members
    ri, rf = lookup(int64s(edges, "node"), node)
    root = int64s(comp, "root")[ri[rf]]
    routed = pa.table({"component": pa.array(root, pa.int64()), "uid": edges.column("node").filter(pa.array(rf)),
                       "other": edges.column("other").filter(pa.array(rf))})
    return pa.concat_tables([members, routed], promote_options="default")


def _rows(t: pa.Table, column: str) -> tuple[pa.Table, pa.Table]:
    """Rows where ``column`` is set, and the others."""
    if column not in t.column_names:
        return t.slice(0, 0), t
    has = pc.is_valid(t.column(column))
    if not pc.any(has).as_py():
        return t.slice(0, 0), t
    return t.filter(has), t.filter(pc.invert(has))


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
    ``verify`` the component is first split into verified components (candidate edges
    with exact Jaccard >= ``verify``), then each by greedy pivot clustering on exact
    Jaccard, so every removed document truly matches its kept document."""

    def __init__(self, direction: str, verify: float | None, central: bool, ngram: int = 5, seed: int = 1,
                 max_pivot: int = MAX_PIVOT):
        self.direction, self.verify, self.max_pivot = direction, verify, max_pivot
        self.ngram, self.seed = ngram, seed
        self.central_max = CENTRAL_MAX if central else 0

    def __call__(self, t: pa.Table) -> pa.Table | None:
        edges, t = _rows(t, "other")
        if t.num_rows == 0:
            return None
        vals = offs = None
        if self.verify is not None:
            t, vals, offs = self._verified(t, edges)
            if t.num_rows == 0:
                return None
        n = t.num_rows
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
        if vals is not None:
            vals, offs = take_sets(vals, offs, order.to_numpy().astype(np.int64))
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

    def _verified(self, t: pa.Table, edges: pa.Table) -> tuple[pa.Table, np.ndarray, np.ndarray]:
        """Members of verified components of two or more (``component`` = the smallest uid
        of the verified component), with their sets."""
        vals, offs = member_sets(t, self.ngram, self.seed)
        uid = int64s(t, "uid")
        ea = int64s(edges, "uid") if edges.num_rows else np.zeros(0, np.int64)
        eb = int64s(edges, "other") if edges.num_rows else np.zeros(0, np.int64)
        label, size, _ = verified_components(uid, vals, offs, ea, eb, float(self.verify))
        keep = np.flatnonzero(size > 1)
        t = t.take(pa.array(keep, pa.int64())).drop_columns([c for c in (TEXT, SHINGLES, "other") if c in t.column_names])
        t = t.set_column(t.column_names.index("component"), "component", pa.array(label[keep], pa.int64()))
        vals, offs = take_sets(vals, offs, keep.astype(np.int64))
        return t, vals, offs
