"""Phase 3, verification: keep only candidate edges whose exact Jaccard reaches the threshold.

Two shuffles join each candidate edge ``(a, b)`` with the shingle set of ``a`` (keyed by
``a``, re-keyed by ``b``), then with the set of ``b``, where the exact shingle-set Jaccard
is computed. Only documents that appear in an edge ship their sets: a **node filter** (a
bitmap with two hash positions per node id, built by a distributed OR over the edge
files) lets the map skip every other document. The keep phase uses the same filter for
cluster members.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curate import jobfs
from curate.components import unique_pairs
from curate.fit import FitContext, ShardSet
from curate.stages.minhash_dedup import layout
from curate.stages.minhash_dedup.layout import SHINGLES, Source, SourceKind, int64s, sources
from curate.text.minhash import sorted_jaccard


def verify_edges(ctx: FitContext, edge_files: list[str], set_sources: list[Source], thr: float, nparts: int,
                 scratch: Path) -> tuple[list[str], int]:
    """Verified edge files (``a``, ``b``, ``jaccard``) and the shuffle partitions used."""
    node_filter = build_node_filter(ctx, edge_files, scratch / "filter-candidates")
    # each edge carries one end's set in the second join: size partitions for both
    vparts = layout.set_partitions(set_sources, filter_nodes(node_filter) + layout.count_rows(edge_files), nparts)
    half = ctx.shuffle(sources(SourceKind.CANDIDATE_EDGES, edge_files) + set_sources, VerifyMap(node_filter),
                       "join_node", verify_join_a, vparts, name="minhash/verify_a")
    verified = ctx.shuffle(sources(SourceKind.HALF_VERIFIED, half) + set_sources, VerifyMap(node_filter),
                           "join_node", VerifyJoinB(thr), vparts, name="minhash/verify_b")
    return verified, vparts


# -- node filter -------------------------------------------------------------------------

_FILTERS: dict[str, np.ndarray] = {}  # loaded filters of this process (paths are content-addressed)


def _filter_positions(uids: np.ndarray, nbits: int) -> tuple[np.ndarray, np.ndarray]:
    h = uids.astype(np.uint64)
    with np.errstate(over="ignore"):
        h = (h ^ (h >> np.uint64(33))) * np.uint64(0xFF51AFD7ED558CCD)
        h = (h ^ (h >> np.uint64(33))) * np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    m = np.uint64(nbits - 1)
    return (h & m).astype(np.int64), ((h >> np.uint64(32)) & m).astype(np.int64)


class _FilterPartial:
    def __init__(self, nbits: int):
        self.nbits = nbits

    def __call__(self, t: pa.Table) -> np.ndarray:
        bm = np.zeros(self.nbits // 8, dtype=np.uint8)
        for c in ("a", "b"):
            p1, p2 = _filter_positions(int64s(t, c), self.nbits)
            for p in (p1, p2):
                np.bitwise_or.at(bm, p >> 3, (1 << (p & 7)).astype(np.uint8))
        return bm


def _filter_merge(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.bitwise_or(x, y)


def build_node_filter(ctx: FitContext, edge_files: list[str], stem: Path) -> str | None:
    """Bitmap of every node of ``edge_files`` (distributed OR-aggregate), saved as
    ``<stem>-<content hash>.npy``: a path names one content, so the per-process cache of
    :func:`filter_mask` can never serve a stale filter (a later fit in the same scratch
    directory writes a new name)."""
    if not edge_files:
        return None
    n_edges = layout.count_rows(edge_files)
    nbits = 1 << 16
    while nbits < 32 * n_edges and nbits < (1 << 31):
        nbits <<= 1
    bm = ctx.aggregate(ShardSet(files=tuple(edge_files)), _FilterPartial(nbits), _filter_merge, columns=["a", "b"])
    if bm is None:
        bm = np.zeros(nbits // 8, np.uint8)
    path = stem.parent / f"{stem.name}-{xxhash.xxh3_64_hexdigest(bm.tobytes())}.npy"
    path.parent.mkdir(parents=True, exist_ok=True)
    jobfs.save_npy(path, bm)
    return str(path)


def filter_nodes(path: str | None) -> int:
    """About how many distinct nodes a filter holds (2 bits each, collisions ignored)."""
    if path is None:
        return 0
    bm = jobfs.load_npy(path)
    return int(np.unpackbits(bm).sum()) // 2


def filter_mask(path: str | None, uids: np.ndarray) -> np.ndarray:
    """True for uids that may be in the filter (no false negatives)."""
    if path is None:
        return np.ones(len(uids), dtype=bool)
    bm = _FILTERS.get(path)
    if bm is None:
        bm = jobfs.load_npy(path)
        if len(_FILTERS) > 4:
            _FILTERS.clear()
        _FILTERS[path] = bm
    nbits = len(bm) * 8
    p1, p2 = _filter_positions(uids, nbits)
    return ((bm[p1 >> 3] >> (p1 & 7)) & 1).astype(bool) & ((bm[p2 >> 3] >> (p2 & 7)) & 1).astype(bool)


# -- the two joins -----------------------------------------------------------------------


class VerifyMap:
    """Candidate edges -> (join_node=a, other=b); shingle sets -> (join_node=uid, shingles);
    half-verified edges (already keyed by b) pass through."""

    def __init__(self, node_filter: str | None = None):
        self.node_filter = node_filter

    def __call__(self, source: Source) -> pa.Table | Iterator[pa.Table] | None:
        if source.kind is SourceKind.CANDIDATE_EDGES:
            t = source.read(["a", "b"])
            return pa.table({"join_node": t.column("a"), "other": t.column("b")}) if t.num_rows else None
        if source.kind is SourceKind.HALF_VERIFIED:
            return source.chunks()
        return self._sets(source)

    def _sets(self, source: Source) -> Iterator[pa.Table]:
        """Shingle sets of the filtered documents, one bounded batch at a time."""
        for t in source.chunks(["uid", SHINGLES]):
            mask = filter_mask(self.node_filter, int64s(t, "uid"))
            if mask.any():
                t = t.filter(pa.array(mask))
                yield pa.table({"join_node": t.column("uid"), SHINGLES: layout.as_sets(t.column(SHINGLES))})


def _split_sets(t: pa.Table) -> tuple[pa.Table, pa.Table]:
    """Edge rows (they have an ``other`` end) and set rows of a join partition."""
    if "other" not in t.column_names:
        return t.slice(0, 0), t
    is_edge = pc.is_valid(t.column("other"))
    return t.filter(is_edge), t.filter(pc.invert(is_edge))


def lookup(keys: np.ndarray, set_uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row in ``set_uids`` of every key, and whether it is there."""
    order = np.argsort(set_uids, kind="stable")
    su = set_uids[order]
    pos = np.searchsorted(su, keys)
    pos_c = np.minimum(pos, max(len(su) - 1, 0))
    found = (len(su) > 0) & (su[pos_c] == keys) if len(su) else np.zeros(len(keys), bool)
    return order[pos_c], found


def verify_join_a(t: pa.Table) -> pa.Table | None:
    """Attach the shingle set of edge end ``a``; re-key by ``b``."""
    edges, sets = _split_sets(t)
    if edges.num_rows == 0 or sets.num_rows == 0:
        return None
    a, b = unique_pairs(int64s(edges, "join_node"), int64s(edges, "other"))
    idx, found = lookup(a, int64s(sets, "join_node"))
    a, b, idx = a[found], b[found], idx[found]
    if len(a) == 0:
        return None
    shingles = sets.column(SHINGLES).take(pa.array(idx, pa.int64()))
    return pa.table({"join_node": pa.array(b, pa.int64()), "other": pa.array(a, pa.int64()), SHINGLES: shingles})


class VerifyJoinB:
    """Compare the carried set of ``a`` with the set of ``b``; keep edges >= threshold."""

    def __init__(self, thr: float):
        self.thr = thr

    def __call__(self, t: pa.Table) -> pa.Table | None:
        edges, sets = _split_sets(t)
        if edges.num_rows == 0 or sets.num_rows == 0:
            return None
        b = int64s(edges, "join_node")
        idx, found = lookup(b, int64s(sets, "join_node"))
        ei = np.flatnonzero(found)
        if len(ei) == 0:
            return None
        va, oa = layout.flat_sets(edges.column(SHINGLES))
        vb, ob = layout.flat_sets(sets.column(SHINGLES))
        j = sorted_jaccard(va, oa, ei.astype(np.int64), vb, ob, idx[ei].astype(np.int64))
        ok = j >= self.thr - 1e-12
        a = int64s(edges, "other")[ei][ok]
        if len(a) == 0:
            return None
        return pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b[ei][ok], pa.int64()),
                         "jaccard": pa.array(j[ok], pa.float64())})
