"""Verification: a candidate edge counts only if its exact shingle-set Jaccard reaches the threshold.

No shingle set is written at signature time. Candidate components (connected components
of the unverified LSH edges) are formed first; then one join (the keep phase's meta join,
keyed by node) gives every candidate document its **input text**, read again from the
input files and shipped zstd-compressed, and routes every candidate edge to its
component. The keep reduce (keyed by component) recomputes the members' sorted 64-bit
shingle sets from that text, verifies the component's candidate edges and splits it into
verified components (:func:`verified_components`) before choosing keepers. Text
compresses about 4x and sets would not, so scratch stays a small multiple of the input
(it was ~29x when sets were written per document and shuffled once per edge end).

Only candidate documents ship text: a **node filter** (a bitmap with two hash positions
per node id, built by a distributed OR over the edge files) lets the map skip every other
document. Indexed documents bring their stored sets instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from curate import jobfs, schema
from curate.fit import FitContext, ShardSet
from curate.stages.minhash_dedup import layout
from curate.stages.minhash_dedup.layout import SHINGLES, TEXT, Source, int64s
from curate.text.minhash import MinHasher, sorted_jaccard

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



# -- candidate texts ---------------------------------------------------------------------


def member_texts(source: Source, text_column: str, node_filter: str | None) -> Iterator[pa.Table]:
    """``(node, text)`` of the filtered documents of an input file, one bounded chunk at a time."""
    for t in layout.read_chunks(source.path, [schema.ID, text_column]):
        uid = layout.node_ids([str(i) for i in t.column(schema.ID).to_pylist()])
        mask = filter_mask(node_filter, uid)
        if mask.any():
            sel = pa.array(np.flatnonzero(mask), pa.int64())
            yield pa.table({"node": pa.array(uid[mask], pa.int64()),
                            TEXT: pc.fill_null(pc.cast(t.column(text_column).take(sel), pa.large_string()), "")})


def member_partitions(text_files: list[str], text_column: str, index_sets: list[Source], members: int,
                      nparts: int) -> int:
    """Partitions of the joins that carry the candidates' texts (or indexed sets): about
    ``PART_BYTES`` of text per partition (a reducer also holds the sets it computes from
    them), at least ``nparts`` and at most 1024."""
    total = n = 0
    for f in text_files:
        md = pq.ParquetFile(f).metadata
        names = md.schema.to_arrow_schema().names
        if text_column in names:
            c = names.index(text_column)
            n += md.num_rows
            total += sum(md.row_group(g).column(c).total_uncompressed_size for g in range(md.num_row_groups))
    per_doc = 2.5 * total / n if n else 0.0  # text, then ~1.3x its size of 64-bit set values
    set_parts = layout.set_partitions(index_sets, members, nparts) if index_sets else nparts
    est = per_doc * members
    return int(min(max(nparts, set_parts, -(-int(est) // layout.PART_BYTES)), max(nparts, 1024)))


# -- inside a component ------------------------------------------------------------------


def member_sets(t: pa.Table, ngram: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted shingle-hash sets of a reducer's members (flat values + offsets), in row order:
    computed from ``text`` for this run's documents, read from ``shingles`` for indexed ones."""
    n = t.num_rows
    if TEXT in t.column_names:
        tv, to = MinHasher(1, ngram, seed).shingle_sets(t.column(TEXT))
    else:
        tv, to = np.zeros(0, np.uint64), np.zeros(n + 1, np.int64)
    if SHINGLES in t.column_names:
        sv, so = layout.flat_sets(t.column(SHINGLES))
    else:
        sv, so = np.zeros(0, np.uint64), np.zeros(n + 1, np.int64)
    return _concat_rows(tv, to, sv, so)


@nb.njit(cache=True, nogil=True)
def _concat_rows(va, oa, vb, ob):
    """Row-wise concatenation of two set columns (each row has at most one non-empty)."""
    n = oa.shape[0] - 1
    out = np.empty(va.shape[0] + vb.shape[0], dtype=np.uint64)
    off = np.zeros(n + 1, dtype=np.int64)
    pos = 0
    for i in range(n):
        for x in range(oa[i], oa[i + 1]):
            out[pos] = va[x]
            pos += 1
        for x in range(ob[i], ob[i + 1]):
            out[pos] = vb[x]
            pos += 1
        off[i + 1] = pos
    return out, off


@nb.njit(cache=True, nogil=True)
def take_sets(vals, offs, idx):
    """The sets of rows ``idx``, in that order."""
    total = 0
    for i in idx:
        total += offs[i + 1] - offs[i]
    out = np.empty(total, dtype=np.uint64)
    off = np.zeros(idx.shape[0] + 1, dtype=np.int64)
    pos = 0
    for k in range(idx.shape[0]):
        i = idx[k]
        for x in range(offs[i], offs[i + 1]):
            out[pos] = vals[x]
            pos += 1
        off[k + 1] = pos
    return out, off


@nb.njit(cache=True, nogil=True)
def _min_uid_labels(n, ea, eb, uid):
    """Union-find over edges between rows: every row's component label is the smallest uid
    in its component, and the component's size."""
    parent = np.arange(n)
    for k in range(ea.shape[0]):
        x, y = ea[k], eb[k]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x != y:
            if x < y:
                parent[y] = x
            else:
                parent[x] = y
    label = np.empty(n, dtype=np.int64)
    size = np.zeros(n, dtype=np.int64)
    for i in range(n):
        r = i
        while parent[r] != r:
            r = parent[r]
        parent[i] = r
        size[r] += 1
    low = uid.copy()
    for i in range(n):
        if uid[i] < low[parent[i]]:
            low[parent[i]] = uid[i]
    for i in range(n):
        label[i] = low[parent[i]]
        size[i] = size[parent[i]]
    return label, size


def verified_components(uid: np.ndarray, vals: np.ndarray, offs: np.ndarray, ea_uid: np.ndarray,
                        eb_uid: np.ndarray, thr: float) -> tuple[np.ndarray, np.ndarray, int]:
    """Split candidate components by exact Jaccard: the edges ``(ea_uid, eb_uid)`` between
    members (rows ``uid`` with sets ``vals``/``offs``) whose Jaccard is ``>= thr`` link
    their ends. Returns every member's verified component label (its smallest uid), the
    component's size and the number of verified edges."""
    ia, fa = lookup(ea_uid, uid)
    ib, fb = lookup(eb_uid, uid)
    ok = fa & fb
    ia, ib = ia[ok].astype(np.int64), ib[ok].astype(np.int64)
    j = sorted_jaccard(vals, offs, ia, vals, offs, ib) if len(ia) else np.zeros(0)
    good = j >= thr - 1e-12
    label, size = _min_uid_labels(len(uid), ia[good], ib[good], uid.astype(np.int64))
    return label, size, int(good.sum())


def lookup(keys: np.ndarray, set_uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row in ``set_uids`` of every key, and whether it is there."""
    order = np.argsort(set_uids, kind="stable")
    su = set_uids[order]
    pos = np.searchsorted(su, keys)
    pos_c = np.minimum(pos, max(len(su) - 1, 0))
    found = (len(su) > 0) & (su[pos_c] == keys) if len(su) else np.zeros(len(keys), bool)
    return order[pos_c], found
