"""MinHash near-duplicate removal as a barrier stage (``minhash_dedup``).

Fit, entirely through distributed primitives (nothing pulls the corpus to the driver):

1. **signatures** (``ctx.map_files``): per part file, batch-vectorized MinHash
   signatures, cut into ``bands`` band keys; per-document shingle-hash sets when
   ``verify_jaccard`` or ``write_index`` needs them. Written to scratch Parquet.
2. **LSH** (``ctx.shuffle`` by band key, ``bands_per_pass`` bands per pass so memory is
   bounded): every bucket emits one edge from its minimum member to each other member
   (a linear number of edges). When verifying, edges whose set sizes alone rule out
   ``J >= verify_jaccard`` are dropped here.
3. **verification** (optional, two shuffles): each candidate edge meets the shingle set
   of one end, then the other, and is kept only if the exact shingle-set Jaccard is
   ``>= verify_jaccard``. Only documents that appear in an edge ship their sets (a
   bitmap filter built with ``ctx.aggregate``).
4. **connected components** (:mod:`curate.components`, distributed large-star /
   small-star rounds).
5. **keep choice** (two shuffles: join members with their metadata, group by
   component). Without verification the component is the cluster and ``keep`` picks
   its one survivor. With verification the component is split by greedy pivot
   clustering on exact Jaccard (keepers in ``keep`` order, or by coverage), so every
   removed document truly matches the document kept for it; each cluster still has
   exactly one kept document and indexed documents always win.

The decision table (dropped / annotated ids, cluster, size) is persisted under
``ctx.state_dir``; ``apply`` looks rows up by id (loaded once per worker).

Documents without any word (empty or whitespace/punctuation only) have no shingle and
no signature: they are never near-duplicates and always pass (``dup_cluster`` = own
id, size 1). A document with fewer than ``ngram`` words has a single shingle made of
all its words, so identical short documents are duplicates of each other.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any, Literal

import numba as nb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash
from pydantic import Field, field_validator, model_validator

from curate import schema
from curate.components import connected_components, unique_pairs
from curate.fit import FitContext, ShardSet
from curate.parquet_io import (
    ParquetParts,
    iter_file_batches,
    iter_file_chunks,
    rows_for_bytes,
    write_json_atomic,
    write_parquet_atomic,
)
from curate.params import Annotated, ReadPath, WritePath
from curate.stage import BarrierStage, MapResult, StageError, StageParams, split_batch
from curate.stages.dedup_hooks import DedupHooks
from curate.text.lsh import band_keys, candidate_probability, threshold
from curate.text.minhash import MinHasher, sorted_jaccard

INDEX_FORMAT = "curate-minhash-index"
INDEX_FORMAT_VERSION = 2  # 2: shingle sets stored as binary (1: list<uint64>; still read)
READABLE_INDEX_VERSIONS = (1, 2)
REASON = "near_duplicate"
_KEEP_RE = re.compile(r"^(lowest_id|longest|highest:(?P<h>.+)|newest:(?P<n>.+)|source_priority:(?P<s>.+))$")
_MAX_CHUNK_BYTES = 4 * 1024 * 1024
_PART_BYTES = 8 * 1024 * 1024


def parse_keep(keep: str) -> tuple[str, str | None, list[str] | None]:
    """``(policy, column, source order)`` of a keep policy string (ValueError if unknown)."""
    m = _KEEP_RE.match(keep.strip())
    if not m:
        raise ValueError(
            f"unknown keep policy {keep!r}; expected lowest_id | longest | highest:<column> | "
            "newest:<column> | source_priority:[src1,src2,...]"
        )
    if m.group("h"):
        return "highest", m.group("h").strip(), None
    if m.group("n"):
        return "newest", m.group("n").strip(), None
    if m.group("s"):
        raw = m.group("s").strip()
        if raw.startswith("["):
            if not raw.endswith("]"):
                raise ValueError(f"keep policy {keep!r}: unbalanced brackets")
            raw = raw[1:-1]
        srcs = [s.strip().strip("'\"") for s in raw.split(",") if s.strip()]
        if not srcs:
            raise ValueError(f"keep policy {keep!r}: empty source list")
        return "source_priority", schema.SOURCE, srcs
    return keep.strip(), None, None


class MinHashDedupParams(StageParams):
    bands: int = Field(14, ge=1, description="LSH bands b (FineWeb/datatrove default 14)")
    rows: int = Field(8, ge=1, description="Rows (hash values) per band r (default 8)")
    num_perm: int = Field(112, ge=1, description="Number of MinHash permutations; must equal bands*rows")
    ngram: int = Field(5, ge=1, description="Word n-gram size of the shingles (after NFKC + lowercase)")
    seed: int = Field(1, ge=0, description="MinHash seed (independent of the job seed, so indexes are "
                      "comparable across jobs)")
    hash_bits: Literal[32, 64] = Field(64, description="Bits kept per signature value (scheme fast); "
                                       "datasketch schemes have their own width")
    scheme: Literal["fast", "datasketch"] = Field(
        "fast", description="fast: numba 64-bit kernel; datasketch: bit-identical to datasketch 2.x MinHash")
    datasketch_scheme: Literal["affine32", "affine64", "legacy"] = Field(
        "affine32", description="datasketch permutation scheme when scheme=datasketch (2.x default affine32)")
    verify_jaccard: float | None = Field(
        None, gt=0.0, le=1.0,
        description="If set, a candidate edge joins a cluster only if the exact shingle-set Jaccard >= this")
    keep: str = Field("lowest_id", description="Which document of a cluster survives: lowest_id | longest | "
                      "highest:<column> | newest:<column> | source_priority:[src1,src2,...] (ties: lowest id)")
    mode: Literal["drop", "annotate"] = Field(
        "drop", description="drop: reject all but the kept document; annotate: drop nothing, add "
        "dup_cluster, dup_cluster_size, dup_kept")
    against_index: Annotated[str | None, ReadPath] = Field(
        None, description="Directory of a band index written earlier: new documents that collide with "
        "(and, if verifying, truly match) an indexed document are removed. A missing index is an error, "
        "except when it is also write_index (the first run of a refresh creates it)")
    write_index: Annotated[str | None, WritePath] = Field(
        None, description="Directory to write this run's survivors to as a new index version (appends "
        "if an index exists there)")
    verify_split: Literal["keep", "coverage"] = Field(
        "keep", description="With verify_jaccard, how a component is split into clusters whose members all "
        "truly match their kept document: keep = keepers in keep-policy order; coverage = next keeper is "
        "the member with most unassigned true matches (removes the most; keep policy breaks ties)")
    bands_per_pass: int = Field(7, ge=1, description="Bands shuffled per LSH pass (bounds memory)")
    num_partitions: int | None = Field(None, ge=1, description="Shuffle partitions (default: one per 250k "
                                       "documents, between 1x and 4x the executor's parallelism)")

    @field_validator("keep")
    @classmethod
    def _check_keep(cls, v: str) -> str:
        parse_keep(v)
        return v.strip()

    @model_validator(mode="after")
    def _check_perm(self) -> MinHashDedupParams:
        if self.bands * self.rows != self.num_perm:
            raise ValueError(
                f"num_perm ({self.num_perm}) must equal bands*rows ({self.bands}*{self.rows}="
                f"{self.bands * self.rows})")
        return self


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------


def _uid(ids: list[str], salt: bytes = b"") -> np.ndarray:
    """Non-negative 63-bit integer node id of every document id."""
    out = np.fromiter((xxhash.xxh3_64_intdigest(salt + str(i).encode("utf-8")) for i in ids),
                      dtype=np.uint64, count=len(ids))
    return (out & np.uint64(0x7FFFFFFFFFFFFFFF)).astype(np.int64)


def _index_uid(ids: list[str], version: int) -> np.ndarray:
    """Negative node ids of indexed documents (so an index doc is always a component's root)."""
    return _uid(ids, b"\x01index\x00%d\x00" % version) | np.int64(-(1 << 63))


def _bcol(j: int) -> str:
    return f"b{j:03d}"


def _sets_column(values: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """Shingle-hash sets as one binary value per document (the little-endian uint64s;
    zero copy both ways, and Parquet writes and reads binary far faster than lists)."""
    v = np.ascontiguousarray(values, dtype="<u8")
    o = np.ascontiguousarray(offsets, dtype=np.int64) * 8
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(o) - 1, [None, pa.py_buffer(o), pa.py_buffer(v)])


def _as_sets(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A sets column in the current (binary) layout; list<uint64> sets of version-1
    indexes are converted."""
    if pa.types.is_large_binary(arr.type):
        return arr
    vals, offs = _flat(arr)
    return _sets_column(vals, offs)


def _flat(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """Values and offsets of a sets column (binary, or list<uint64> of version-1 indexes;
    nulls count as empty sets)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        if arr.null_count:
            arr = pc.fill_null(arr, pa.scalar(b"", arr.type))
        bufs = arr.buffers()
        ot = np.int64 if pa.types.is_large_binary(arr.type) else np.int32
        offs = np.frombuffer(bufs[1], dtype=ot)[arr.offset: arr.offset + len(arr) + 1].astype(np.int64)
        if offs.size and (offs % 8).any():
            raise StageError("minhash_dedup: corrupt shingle-set column (length not a multiple of 8)")
        data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None and offs.size else np.zeros(0, np.uint8)
        base = offs[0] if offs.size else 0
        vals = data[base: offs[-1] if offs.size else 0].view("<u8").astype(np.uint64, copy=False)
        return vals, (offs - base) // 8
    arr = arr.cast(pa.large_list(pa.uint64()))
    arr = pc.fill_null(arr, pa.scalar([], pa.large_list(pa.uint64())))
    offs = arr.offsets.to_numpy().astype(np.int64)
    vals = arr.values.to_numpy(zero_copy_only=False).astype(np.uint64, copy=False)
    base = offs[0]
    return vals[base: offs[-1]], offs - base


def _np(t: pa.Table, col: str) -> np.ndarray:
    return t.column(col).to_numpy().astype(np.int64, copy=False)


def _tagged(tag: str, paths: list[str]) -> list[str]:
    return [f"{tag}|{p}" for p in paths]


def _untag(source: str) -> tuple[str, str]:
    tag, _, path = source.partition("|")
    return tag, path


# ----------------------------------------------------------------------------------------
# node filter: a bitmap (2 hash positions per node) of the uids that appear in edges, so
# only those documents' shingle sets travel through the verification/keep shuffles
# ----------------------------------------------------------------------------------------

_FILTERS: dict[str, np.ndarray] = {}


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
            p1, p2 = _filter_positions(_np(t, c), self.nbits)
            for p in (p1, p2):
                np.bitwise_or.at(bm, p >> 3, (1 << (p & 7)).astype(np.uint8))
        return bm


def _filter_merge(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.bitwise_or(x, y)


def build_node_filter(ctx: FitContext, edge_files: list[str], path: Path) -> str | None:
    """Bitmap of every node of ``edge_files`` (distributed OR-aggregate), saved at ``path``."""
    if not edge_files:
        return None
    n_edges = _count(edge_files)
    nbits = 1 << 16
    while nbits < 32 * n_edges and nbits < (1 << 31):
        nbits <<= 1
    bm = ctx.aggregate(ShardSet(files=tuple(edge_files)), _FilterPartial(nbits), _filter_merge, columns=["a", "b"])
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, bm if bm is not None else np.zeros(nbits // 8, np.uint8))
    return str(path)


def filter_nodes(path: str | None) -> int:
    """About how many distinct nodes a filter holds (2 bits each, collisions ignored)."""
    if path is None:
        return 0
    bm = np.load(path)
    return int(np.unpackbits(bm).sum()) // 2


def _set_partitions(set_files: list[str], rows: int, nparts: int) -> int:
    """Partitions for a shuffle that carries the shingle sets of ``rows`` documents: about
    ``_PART_BYTES`` of sets per partition (so a reducer's memory is bounded however big
    the corpus), at least ``nparts`` and at most 1024."""
    total = n = 0
    for f in set_files:
        md = pq.ParquetFile(f).metadata
        names = md.schema.to_arrow_schema().names
        if "sh" not in names:
            continue
        c = names.index("sh")
        n += md.num_rows
        total += sum(md.row_group(g).column(c).total_uncompressed_size for g in range(md.num_row_groups))
    if n == 0:
        return nparts
    est = total / n * rows
    return int(min(max(nparts, -(-int(est) // _PART_BYTES)), max(nparts, 1024)))


def filter_mask(path: str | None, uids: np.ndarray) -> np.ndarray:
    """True for uids that may be in the filter (no false negatives)."""
    if path is None:
        return np.ones(len(uids), dtype=bool)
    bm = _FILTERS.get(path)
    if bm is None:
        bm = np.load(path)
        if len(_FILTERS) > 4:
            _FILTERS.clear()
        _FILTERS[path] = bm
    nbits = len(bm) * 8
    p1, p2 = _filter_positions(uids, nbits)
    return ((bm[p1 >> 3] >> (p1 & 7)) & 1).astype(bool) & ((bm[p2 >> 3] >> (p2 & 7)) & 1).astype(bool)


# ----------------------------------------------------------------------------------------
# 1. signatures
# ----------------------------------------------------------------------------------------


class _SignatureTask:
    """Per part file: uid, id, band keys, keep value, shingle sets -> one scratch file."""

    def __init__(self, cfg: dict, text_column: str, out_dir: str, batch_size: int):
        self.cfg, self.text_column, self.out_dir, self.batch_size = cfg, text_column, out_dir, batch_size

    def _hasher(self) -> MinHasher:
        c = self.cfg
        return MinHasher(c["num_perm"], c["ngram"], c["seed"], c["scheme"], c["datasketch_scheme"])

    def _keep_values(self, t: pa.Table) -> pa.Array:
        pol, col, srcs = self.cfg["keep_policy"], self.cfg["keep_column"], self.cfg["keep_sources"]
        n = t.num_rows
        if pol == "lowest_id":
            return pa.array(np.zeros(n, np.int64))
        if pol == "longest":
            return pc.cast(pc.fill_null(pc.utf8_length(t.column(self.text_column)), 0), pa.int64())
        if pol == "source_priority":
            vals = t.column(col).to_pylist()
            rank = {s: i for i, s in enumerate(srcs)}
            return pa.array([rank.get(v, len(srcs)) for v in vals], pa.int64())
        return t.column(col).combine_chunks() if isinstance(t.column(col), pa.ChunkedArray) else t.column(col)

    def __call__(self, path: str) -> dict:
        mh = self._hasher()
        c = self.cfg
        name = hashlib.sha1(path.encode("utf-8")).hexdigest()[:16]
        out = Path(self.out_dir) / f"sig-{name}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        cols = [schema.ID, self.text_column] + ([c["keep_column"]] if c["keep_column"] else [])
        rows = rows_for_bytes(path, _MAX_CHUNK_BYTES, self.text_column, max_rows=self.batch_size)
        n_docs = n_empty = 0
        with ParquetParts(dictionary=False) as files:  # ids, band keys and hashes are nearly all distinct
            for t in iter_file_batches(path, cols, rows):
                for chunk in _byte_chunks(t, self.text_column):
                    tbl = self._signatures(mh, chunk)
                    n_docs += chunk.num_rows
                    n_empty += chunk.num_rows - tbl.num_rows
                    if tbl.num_rows:
                        files.write(out, tbl)
            wrote = out in files
        return {"path": str(out) if wrote else None, "docs": n_docs, "empty": n_empty}

    def _signatures(self, mh: MinHasher, t: pa.Table) -> pa.Table:
        c = self.cfg
        ids = t.column(schema.ID).to_pylist()
        bs = mh.signatures(t.column(self.text_column), with_sets=c["with_sets"])
        sig = bs.sig
        if c["scheme"] == "fast" and c["hash_bits"] == 32:
            sig = sig & np.uint64(0xFFFFFFFF)
        keep = np.flatnonzero(bs.has_shingles)
        keys = band_keys(sig[keep], c["bands"], c["rows"], seed=c["seed"])
        ids_k = [str(ids[i]) for i in keep]
        data: dict[str, Any] = {"uid": pa.array(_uid(ids_k), pa.int64()), "id": pa.array(ids_k, pa.string())}
        for j in range(c["bands"]):
            data[_bcol(j)] = pa.array(keys[:, j], pa.int64())
        data["n"] = pa.array(bs.n_shingles[keep], pa.int64())
        data["kv"] = self._keep_values(t).take(pa.array(keep, pa.int64()))
        if c["with_sets"]:
            so = bs.set_offsets
            starts, ends = so[keep], so[keep + 1]
            lens = ends - starts
            offs = np.zeros(len(keep) + 1, np.int64)
            np.cumsum(lens, out=offs[1:])
            idx = np.repeat(starts - offs[:-1], lens) + np.arange(offs[-1])
            data["sh"] = _sets_column(bs.set_values[idx], offs)
        return pa.table(data)


def _byte_chunks(t: pa.Table, text_column: str):
    """Split a batch so no chunk holds more than ``_MAX_CHUNK_BYTES`` of text (bounded kernel memory)."""
    lens = pc.fill_null(pc.binary_length(t.column(text_column)), 0).to_numpy(zero_copy_only=False)
    if lens.sum() <= _MAX_CHUNK_BYTES:
        yield t
        return
    start, acc = 0, 0
    for i, n in enumerate(lens):
        if acc and acc + n > _MAX_CHUNK_BYTES:
            yield t.slice(start, i - start)
            start, acc = i, 0
        acc += int(n)
    yield t.slice(start)


# ----------------------------------------------------------------------------------------
# 2. LSH buckets -> star edges
# ----------------------------------------------------------------------------------------


class _BandMap:
    def __init__(self, bands: list[int]):
        self.bands = bands

    def __call__(self, path: str) -> pa.Table | None:
        t = pq.read_table(path, columns=["uid", "n"] + [_bcol(j) for j in self.bands])
        if t.num_rows == 0:
            return None
        uid = _np(t, "uid")
        keys = np.concatenate([_np(t, _bcol(j)) for j in self.bands])
        nb_ = len(self.bands)
        return pa.table({"k": keys, "u": np.tile(uid, nb_), "n": np.tile(_np(t, "n"), nb_)})


class _BucketEdges:
    """Every bucket (equal band key) links its minimum member to each other member.

    With a verification threshold, edges whose shingle-set sizes alone rule the match
    out (``min(|A|,|B|) < thr * max(|A|,|B|)`` implies ``J < thr``) are dropped here."""

    def __init__(self, thr: float | None):
        self.thr = thr

    def __call__(self, t: pa.Table) -> pa.Table | None:
        k, u = _np(t, "k"), _np(t, "u")
        n = _np(t, "n") if "n" in t.column_names else np.zeros(len(k), np.int64)
        order = np.lexsort((u, k))
        k, u, n = k[order], u[order], n[order]
        first = np.r_[True, k[1:] != k[:-1]]
        starts = np.flatnonzero(first)
        reps = np.diff(np.r_[starts, len(u)])
        gmin = np.repeat(u[starts], reps)
        mask = (~first) & (u != gmin) & ~((u < 0) & (gmin < 0))  # skip index-index pairs
        if self.thr is not None:
            nmin = np.repeat(n[starts], reps)
            mask &= np.minimum(n, nmin) >= self.thr * np.maximum(n, nmin) - 1e-9
        return _edge_table(*unique_pairs(gmin[mask], u[mask]))


def _edge_table(a: np.ndarray, b: np.ndarray) -> pa.Table | None:
    if len(a) == 0:
        return None
    return pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b, pa.int64())})


# ----------------------------------------------------------------------------------------
# 3. verification (edge x set joins)
# ----------------------------------------------------------------------------------------


class _VerifyMap:
    """E|edges -> (k=a, o=b); S|sets -> (k=uid, sh); X|half-joined -> passthrough."""

    def __init__(self, stage: int, node_filter: str | None = None):
        self.stage, self.node_filter = stage, node_filter

    def __call__(self, source: str) -> pa.Table | None:
        tag, path = _untag(source)
        if tag == "E":
            t = pq.read_table(path, columns=["a", "b"])
            return pa.table({"k": t.column("a"), "o": t.column("b")}) if t.num_rows else None
        if tag == "X":
            return _chunks(path, None)
        return self._sets(path)

    def _sets(self, path: str):
        """Shingle sets of the filtered documents, one bounded batch at a time."""
        for t in _chunks(path, ["uid", "sh"]):
            mask = filter_mask(self.node_filter, _np(t, "uid"))
            if mask.any():
                t = t.filter(pa.array(mask))
                yield pa.table({"k": t.column("uid"), "sh": _as_sets(t.column("sh"))})


def _chunks(path: str, columns: list[str] | None):
    return iter_file_chunks(path, columns, _MAX_CHUNK_BYTES)


def _split_sets(t: pa.Table) -> tuple[pa.Table, pa.Table]:
    if "o" not in t.column_names:
        return t.slice(0, 0), t
    is_edge = pc.is_valid(t.column("o"))
    return t.filter(is_edge), t.filter(pc.invert(is_edge))


def _lookup(keys: np.ndarray, set_uids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(set_uids, kind="stable")
    su = set_uids[order]
    pos = np.searchsorted(su, keys)
    pos_c = np.minimum(pos, max(len(su) - 1, 0))
    found = (len(su) > 0) & (su[pos_c] == keys) if len(su) else np.zeros(len(keys), bool)
    return order[pos_c], found


def _verify_join_a(t: pa.Table) -> pa.Table | None:
    """Attach the shingle set of edge end ``a``; re-key by ``b``."""
    edges, sets = _split_sets(t)
    if edges.num_rows == 0 or sets.num_rows == 0:
        return None
    a, b = unique_pairs(_np(edges, "k"), _np(edges, "o"))
    idx, found = _lookup(a, _np(sets, "k"))
    a, b, idx = a[found], b[found], idx[found]
    if len(a) == 0:
        return None
    sh = sets.column("sh").take(pa.array(idx, pa.int64()))
    return pa.table({"k": pa.array(b, pa.int64()), "o": pa.array(a, pa.int64()), "sh": sh})


class _VerifyJoinB:
    """Compare the carried set of ``a`` with the set of ``b``; keep edges >= threshold."""

    def __init__(self, thr: float):
        self.thr = thr

    def __call__(self, t: pa.Table) -> pa.Table | None:
        edges, sets = _split_sets(t)
        if edges.num_rows == 0 or sets.num_rows == 0:
            return None
        b = _np(edges, "k")
        idx, found = _lookup(b, _np(sets, "k"))
        ei = np.flatnonzero(found)
        if len(ei) == 0:
            return None
        va, oa = _flat(edges.column("sh"))
        vb, ob = _flat(sets.column("sh"))
        j = sorted_jaccard(va, oa, ei.astype(np.int64), vb, ob, idx[ei].astype(np.int64))
        ok = j >= self.thr - 1e-12
        a = _np(edges, "o")[ei][ok]
        if len(a) == 0:
            return None
        return pa.table({"a": pa.array(a, pa.int64()), "b": pa.array(b[ei][ok], pa.int64()),
                         "j": pa.array(j[ok], pa.float64())})


# ----------------------------------------------------------------------------------------
# 5. keep choice
# ----------------------------------------------------------------------------------------


class _MetaMap:
    """C|components -> (k=node, root); M|signature meta -> (k=uid, id, kv[, sh]); I|index -> (k=uid, id[, sh])."""

    def __init__(self, with_sets: bool, node_filter: str | None = None):
        self.with_sets, self.node_filter = with_sets, node_filter

    def __call__(self, source: str) -> pa.Table | None:
        tag, path = _untag(source)
        if tag == "C":
            t = pq.read_table(path)
            return pa.table({"k": t.column("node"), "root": t.column("root")}) if t.num_rows else None
        return self._meta(tag, path)

    def _meta(self, tag: str, path: str):
        cols = ["uid", "id"] + (["kv"] if tag == "M" else []) + (["sh"] if self.with_sets else [])
        for t in _chunks(path, cols):
            data = {"k": t.column("uid"), "id": t.column("id")}
            if tag == "M":
                data["kv"] = t.column("kv")
            if self.with_sets:  # sets only for cluster members (every row still checks id uniqueness)
                mask = filter_mask(self.node_filter, _np(t, "uid"))
                sh = _as_sets(t.column("sh"))
                data["sh"] = pc.if_else(pa.array(mask), sh, pa.nulls(t.num_rows, sh.type))
            yield pa.table(data)


def _meta_join(t: pa.Table) -> pa.Table | None:
    if "root" in t.column_names:
        is_c = pc.is_valid(t.column("root"))
        comp, meta = t.filter(is_c), t.filter(pc.invert(is_c))
    else:
        comp, meta = t.slice(0, 0), t
    mk = _np(meta, "k")
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
    node = _np(comp, "k")
    idx, found = _lookup(node, mk)
    if not found.all():
        missing = int((~found).sum())
        raise StageError(f"minhash_dedup: {missing} cluster members have no metadata (corrupt scratch/index?)")
    sel = pa.array(idx, pa.int64())
    data = {"k": comp.column("root"), "uid": comp.column("k"), "id": meta.column("id").take(sel)}
    for c in ("kv", "sh"):
        if c in meta.column_names:
            data[c] = meta.column(c).take(sel)
    return pa.table(data)


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

    An unassigned member becomes a keeper and every unassigned member whose exact
    Jaccard with it is >= ``thr`` joins its cluster; repeat. In components of at most
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
            for i in range(m):  # forced keepers first (indexed documents)
                if forced[s0 + i] and assign[s0 + i] < 0:
                    assign[s0 + i] = s0 + i
                    left -= 1
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
                if assign[j] < 0 and _jac_at_least(vals, offs, i, j, thr):
                    assign[j] = i
    return assign


class _KeepReduce:
    """Per component: choose kept documents; emit a decision row per new member.

    Without verification the component is the cluster (one kept document). With
    ``verify`` the component is split by greedy pivot clustering on exact Jaccard, so
    every removed document truly matches its kept document."""

    def __init__(self, direction: str, verify: float | None, central: bool, max_pivot: int = 20000):
        self.direction, self.verify, self.max_pivot = direction, verify, max_pivot
        self.central_max = 256 if central else 0

    def __call__(self, t: pa.Table) -> pa.Table | None:
        n = t.num_rows
        if n == 0:
            return None
        uid = _np(t, "uid")
        is_index = uid < 0
        if "kv" not in t.column_names:
            t = t.append_column("kv", pa.nulls(n, pa.int64()))
        t = t.append_column("_idx", pa.array(is_index.astype(np.int8) * -1, pa.int8()))
        keys = [("k", "ascending"), ("_idx", "ascending"), ("kv", self.direction), ("id", "ascending")]
        try:  # pyarrow >= 25: null placement per key
            order = pc.sort_indices(t, sort_keys=[(c, o, "at_end") for c, o in keys])
        except (TypeError, ValueError, pa.ArrowInvalid):
            order = pc.sort_indices(t, sort_keys=keys, null_placement="at_end")
        t = t.take(order)
        root = _np(t, "k")
        first = np.r_[True, root[1:] != root[:-1]]
        starts = np.flatnonzero(first)
        ends = np.r_[starts[1:], n]
        if self.verify is not None and "sh" in t.column_names:
            vals, offs = _flat(t.column("sh"))
            assign = _pivot_groups(vals, offs, starts.astype(np.int64), ends.astype(np.int64),
                                   float(self.verify), self.max_pivot, self.central_max, _np(t, "uid") < 0)
        else:
            assign = starts[np.cumsum(first) - 1]
        sizes = np.bincount(assign, minlength=n)
        uid = _np(t, "uid")
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


# ----------------------------------------------------------------------------------------
# index
# ----------------------------------------------------------------------------------------


def _index_params(cfg: dict) -> dict:
    keys = ("scheme", "datasketch_scheme", "seed", "num_perm", "bands", "rows", "ngram", "hash_bits")
    out = {k: cfg[k] for k in keys}
    if out["scheme"] != "datasketch":
        out["datasketch_scheme"] = None
    out["normalization"] = "nfkc-lower-words-v1"
    out["band_hash"] = "fmix64-fold-v1"
    return out


def read_index_manifest(path: str | Path, cfg: dict | None = None) -> dict:
    """Load and validate an index manifest (clear StageError on any problem)."""
    p = Path(path)
    mf = p / "index.json"
    if not mf.exists():
        raise StageError(f"minhash index {p}: no index.json (not an index, or never written)")
    try:
        man = json.loads(mf.read_text())
    except (OSError, ValueError) as e:
        raise StageError(f"minhash index {p}: corrupt index.json ({e})") from e
    if not isinstance(man, dict) or man.get("format") != INDEX_FORMAT:
        raise StageError(f"minhash index {p}: index.json is not a {INDEX_FORMAT} manifest")
    if man.get("format_version") not in READABLE_INDEX_VERSIONS:
        raise StageError(
            f"minhash index {p}: format version {man.get('format_version')!r} is not supported "
            f"(this curate reads versions {', '.join(map(str, READABLE_INDEX_VERSIONS))}); rebuild the index")
    if cfg is not None:
        want = _index_params(cfg)
        have = man.get("params", {})
        diff = {k: (have.get(k), v) for k, v in want.items() if have.get(k) != v}
        if diff:
            desc = ", ".join(f"{k}: index={a!r} stage={b!r}" for k, (a, b) in sorted(diff.items()))
            raise StageError(f"minhash index {p}: built with different parameters ({desc})")
    for v in man.get("versions", []):
        for f in v.get("bands", []) + v.get("sets", []):
            fp = p / f
            try:
                md = pq.ParquetFile(fp).metadata
            except Exception as e:
                raise StageError(f"minhash index {p}: file {f} of version {v.get('version')} is missing or "
                                 f"corrupt ({type(e).__name__}: {e})") from e
            del md
    return man


class _IndexWriter:
    """Per signature file: write the survivors' band keys and sets into an index version."""

    def __init__(self, decision_files: list[str], out_dir: str, version: int, bands: int):
        self.decision_files, self.out_dir, self.version, self.bands = decision_files, out_dir, version, bands

    def __call__(self, path: str) -> dict:
        parts = []
        for f in self.decision_files:  # node ids of removed documents: 8 bytes each, sorted
            d = pq.read_table(f, columns=["uid", "kept"])
            parts.append(_np(d, "uid")[~d.column("kept").to_numpy(zero_copy_only=False).astype(bool)])
        removed = np.sort(np.concatenate(parts)) if parts else np.zeros(0, np.int64)
        name = Path(path).stem.replace("sig-", "")
        b_rel = f"v{self.version:05d}/bands-{name}.parquet"
        s_rel = f"v{self.version:05d}/sets-{name}.parquet"
        root = Path(self.out_dir)
        docs = 0
        out: dict[str, Any] = {}
        with ParquetParts(dictionary=False) as files:  # streamed: one chunk in memory at a time
            for t in _chunks(path, None):
                if len(removed):
                    u = _np(t, "uid")
                    pos = np.minimum(np.searchsorted(removed, u), len(removed) - 1)
                    t = t.filter(pa.array(removed[pos] != u))
                if t.num_rows == 0:
                    continue
                docs += t.num_rows
                uid = pa.array(_index_uid(t.column("id").to_pylist(), self.version), pa.int64())
                files.write(root / b_rel, pa.table({"uid": uid, "id": t.column("id"), "n": t.column("n"),
                                                    **{_bcol(j): t.column(_bcol(j)) for j in range(self.bands)}}))
                out["bands"] = b_rel
                if "sh" in t.column_names:
                    files.write(root / s_rel, pa.table({"uid": uid, "id": t.column("id"), "sh": t.column("sh")}))
                    out["sets"] = s_rel
        out["docs"] = docs
        sig_schema = pq.read_schema(path)
        for key, rel, cols in (("bands", b_rel, ["uid", "id", "n"] + [_bcol(j) for j in range(self.bands)]),
                               ("sets", s_rel, ["uid", "id", "sh"])):
            if key not in out and all(c in sig_schema.names for c in cols):
                # every document of this file was removed: an empty (valid) file
                write_parquet_atomic(Path(self.out_dir) / rel, pa.table(
                    {c: pa.array([], sig_schema.field(c).type) for c in cols}))
                out[key] = rel
        return out


# ----------------------------------------------------------------------------------------
# apply-side cache
# ----------------------------------------------------------------------------------------

class DecisionTable:
    """The fitted decisions in compact columnar form, sorted by 63-bit node id.

    About 25 bytes per clustered document plus its cluster id string (no per-row Python
    objects), looked up with a vectorized binary search per batch."""

    def __init__(self, files: tuple[str, ...]):
        cols = [schema.ID, "uid", "cluster", "size", "kept", "of_index"]
        tables = [pq.read_table(f, columns=cols) for f in files]
        t = pa.concat_tables(tables) if tables else pa.table(
            {c: pa.array([], ty) for c, ty in zip(cols, [pa.string(), pa.int64(), pa.string(), pa.int64(),
                                                       pa.bool_(), pa.bool_()])})
        t = t.take(pc.sort_indices(t, sort_keys=[("uid", "ascending")]))
        self.uid = _np(t, "uid")
        self.size = _np(t, "size")
        self.kept = t.column("kept").to_numpy(zero_copy_only=False).astype(bool)
        self.of_index = t.column("of_index").to_numpy(zero_copy_only=False).astype(bool)
        self.cluster = t.column("cluster").combine_chunks()

    def __len__(self) -> int:
        return len(self.uid)

    def lookup(self, ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """Row of every id in the table and whether it was found."""
        q = _uid(ids)
        if len(self.uid) == 0:
            return np.zeros(len(q), np.int64), np.zeros(len(q), bool)
        pos = np.minimum(np.searchsorted(self.uid, q), len(self.uid) - 1)
        return pos, self.uid[pos] == q


# ----------------------------------------------------------------------------------------
# the stage
# ----------------------------------------------------------------------------------------


class MinHashDedup(DedupHooks, BarrierStage):
    """Remove near-duplicate documents (MinHash LSH, distributed connected components).

    Word 5-gram shingles after NFKC/lowercase/punctuation folding; 112 permutations as
    14 bands x 8 rows (FineWeb/datatrove defaults; P(candidate) 0.92 at Jaccard 0.8,
    0.99 at 0.85). Optional exact Jaccard verification of every candidate edge, a keep
    policy (lowest_id, longest, highest:<col>, newest:<col>, source_priority:[...]),
    annotate mode (dup_cluster, dup_cluster_size, dup_kept) and a persisted, versioned
    band index to dedup later snapshots against (write_index / against_index).
    Documents without words are never duplicates. Rejected rows: reason
    `near_duplicate`, detail naming the kept document (or the index)."""

    name = "minhash_dedup"
    Params = MinHashDedupParams
    reject_reasons = {REASON: "near-duplicate of the kept document in dup_cluster (or of an indexed one)"}

    def _keep(self) -> tuple[str, str | None, list[str] | None]:
        return parse_keep(self.params.keep)

    def required_columns(self) -> set[str]:
        _pol, col, _ = self._keep()
        return {col} if col else set()

    def provided_columns(self) -> set[str]:
        return {schema.DUP_CLUSTER, schema.DUP_CLUSTER_SIZE, schema.DUP_KEPT}

    def _cfg(self) -> dict:
        p = self.params
        pol, col, srcs = self._keep()
        d = p.model_dump()
        d.update(keep_policy=pol, keep_column=col, keep_sources=srcs,
                 with_sets=p.verify_jaccard is not None or p.write_index is not None)
        return d

    # -- fit ---------------------------------------------------------------------------
    def fit(self, inputs: dict[str, ShardSet], ctx: FitContext) -> dict[str, Any]:
        p, cfg = self.params, self._cfg()
        files: list[str] = []
        text_column = ctx.text_column
        for ss in inputs.values():
            files.extend(ss.files)
            text_column = ss.text_column or text_column
        self._check_columns(files, text_column, cfg)
        par = max(1, ctx.runner.parallelism)
        n_rows = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
        # ~250k documents per partition, at least one per worker, at most 4 per worker
        nparts = p.num_partitions or max(par, min(4 * par, -(-n_rows // 250_000)))
        scratch = Path(ctx.scratch_dir) / "minhash"
        if scratch.exists():
            shutil.rmtree(scratch)
        stats: dict[str, Any] = {"bands": p.bands, "rows": p.rows, "threshold": round(threshold(p.bands, p.rows), 4),
                                 "p_candidate_at_0.8": round(float(candidate_probability(0.8, p.bands, p.rows)), 4)}

        clock = _Clock()
        # 1. signatures
        sig_res = ctx.map_files(_SignatureTask(cfg, text_column, str(scratch / "sig"), ctx.batch_size), files)
        sig_files = [r["path"] for r in sig_res if r["path"]]
        stats["docs"] = sum(r["docs"] for r in sig_res)
        stats["docs_without_shingles"] = sum(r["empty"] for r in sig_res)
        clock.mark("signatures")

        # index to dedup against
        idx_bands: list[str] = []
        idx_sets: list[str] = []
        man = None
        first_run = (p.against_index and p.write_index and Path(p.against_index).resolve() ==
                     Path(p.write_index).resolve() and not (Path(p.against_index) / "index.json").exists())
        if first_run:
            ctx.warnings.append(f"minhash_dedup: index {p.against_index} does not exist yet; this first run "
                                "dedups within its own input only and creates it")
        elif p.against_index:
            man = read_index_manifest(p.against_index, cfg)
            root = Path(p.against_index)
            for v in man.get("versions", []):
                idx_bands += [str(root / f) for f in v.get("bands", [])]
                idx_sets += [str(root / f) for f in v.get("sets", [])]
            if p.verify_jaccard is not None and len(idx_sets) != len(idx_bands):
                raise StageError(f"minhash index {root}: verify_jaccard needs shingle sets, which this index "
                                 "does not store")
            stats["index_docs"] = sum(v.get("docs", 0) for v in man.get("versions", []))

        # 2. LSH in band groups
        edge_files: list[str] = []
        # a band row is 24 bytes (key, node, set size): about _PART_BYTES of them per reducer
        n_index = sum(pq.ParquetFile(f).metadata.num_rows for f in idx_bands)
        lparts = p.num_partitions or int(min(max(nparts, -(-(n_rows + n_index) * min(p.bands_per_pass, p.bands) * 24
                                                       // _PART_BYTES)), max(nparts, 1024)))
        stats["lsh_partitions"] = lparts
        for g0 in range(0, p.bands, p.bands_per_pass):
            group = list(range(g0, min(p.bands, g0 + p.bands_per_pass)))
            edge_files += ctx.shuffle(sig_files + idx_bands, _BandMap(group), "k", _BucketEdges(p.verify_jaccard), lparts,
                                      name=f"minhash/lsh{g0:03d}")
        stats["candidate_edges"] = _count(edge_files)
        clock.mark("lsh")

        # 3. verification
        if p.verify_jaccard is not None and edge_files:
            flt = build_node_filter(ctx, edge_files, scratch / "filter-candidates.npy")
            # each edge carries one end's set in the second join: size partitions for both
            vparts = _set_partitions(sig_files + idx_sets, filter_nodes(flt) + stats["candidate_edges"], nparts)
            stats["verify_partitions"] = vparts
            half = ctx.shuffle(_tagged("E", edge_files) + _tagged("S", sig_files + idx_sets), _VerifyMap(1, flt), "k",
                               _verify_join_a, vparts, name="minhash/verify_a")
            edge_files = ctx.shuffle(_tagged("X", half) + _tagged("S", sig_files + idx_sets), _VerifyMap(2, flt),
                                     "k", _VerifyJoinB(p.verify_jaccard), vparts, name="minhash/verify_b")
            stats["verified_edges"] = _count(edge_files)
            clock.mark("verify")

        # 4. connected components
        cc_files, cc_stats = connected_components(ctx, edge_files, nparts, name="minhash/cc")
        stats["cc_rounds"] = cc_stats["rounds"]
        stats["docs_in_clusters"] = cc_stats.get("nodes", 0)
        clock.mark("components")

        # 5. keep choice
        direction = "ascending" if cfg["keep_policy"] in ("lowest_id", "source_priority") else "descending"
        # the meta join also checks that ids are unique, so it runs even without clusters
        verify = p.verify_jaccard
        idx_meta = idx_sets if verify is not None else idx_bands
        member_filter = build_node_filter(ctx, edge_files, scratch / "filter-members.npy") if verify else None
        mparts = _set_partitions(sig_files + idx_sets, filter_nodes(member_filter), nparts) if verify else nparts
        joined = ctx.shuffle(_tagged("C", cc_files) + _tagged("M", sig_files) + _tagged("I", idx_meta),
                             _MetaMap(verify is not None, member_filter), "k", _meta_join, mparts,
                             name="minhash/meta")
        keep_reduce = _KeepReduce(direction, verify, p.verify_split == "coverage")
        outs = ctx.shuffle(joined, _Passthrough(), "k", keep_reduce, mparts, name="minhash/keep") if joined else []
        decisions = ctx.persist(outs, "decisions")
        removed = kept_in_clusters = of_index = 0
        for f in decisions:
            d = pq.read_table(f, columns=["kept", "of_index"])
            k = d.column("kept").to_numpy(zero_copy_only=False)
            removed += int((~k).sum())
            kept_in_clusters += int(k.sum())
            of_index += int((~k & d.column("of_index").to_numpy(zero_copy_only=False)).sum())
        stats.update(removed=removed, kept_cluster_members=kept_in_clusters, removed_as_dup_of_index=of_index)
        clock.mark("keep")

        # index of survivors
        if p.write_index:
            stats["index_version"] = self._write_index(ctx, cfg, sig_files, decisions)
            clock.mark("write_index")
        shutil.rmtree(scratch, ignore_errors=True)
        stats["phase_seconds"] = clock.marks
        return {"decisions": decisions, "mode": p.mode, "stats": stats}

    def _check_columns(self, files: list[str], text_column: str, cfg: dict) -> None:
        for f in files[:1]:
            names = set(pq.ParquetFile(f).schema_arrow.names)
            if schema.ID not in names:
                raise StageError(f"minhash_dedup: input has no {schema.ID!r} column")
            if text_column not in names:
                raise StageError(f"minhash_dedup: input has no text column {text_column!r}")
            col = cfg["keep_column"]
            if col and col not in names:
                raise StageError(f"minhash_dedup: parameter keep={self.params.keep!r} needs column {col!r}, which "
                                 f"the input does not have (columns: {sorted(names)})")

    def _write_index(self, ctx: FitContext, cfg: dict, sig_files: list[str], decisions: list[str]) -> int:
        root = Path(self.params.write_index)  # type: ignore[arg-type]
        root.mkdir(parents=True, exist_ok=True)
        if (root / "index.json").exists():
            man = read_index_manifest(root, cfg)
        else:
            man = {"format": INDEX_FORMAT, "format_version": INDEX_FORMAT_VERSION, "params": _index_params(cfg),
                   "versions": []}
        version = max([v["version"] for v in man["versions"]], default=0) + 1
        vdir = root / f"v{version:05d}"
        if vdir.exists():
            shutil.rmtree(vdir)
        res = ctx.map_files(_IndexWriter(decisions, str(root), version, self.params.bands), sig_files)
        entry = {"version": version, "node": ctx.node_id, "docs": sum(r["docs"] for r in res),
                 "bands": [r["bands"] for r in res], "sets": [r["sets"] for r in res if "sets" in r]}
        man["versions"].append(entry)
        man["format_version"] = INDEX_FORMAT_VERSION  # new files use the current layout
        write_json_atomic(root / "index.json", man)
        return version

    def refresh_params(self, state_dir: str) -> dict[str, Any]:
        """A scheduled refresh dedups each run against the survivors of earlier runs: the
        band index lives in the node's schedule directory; each run appends a version."""
        has_index = (Path(state_dir) / "index.json").is_file()
        return {"against_index": state_dir if has_index else None, "write_index": state_dir}

    # -- apply -------------------------------------------------------------------------
    def load(self, state: dict[str, Any]) -> DecisionTable:
        return DecisionTable(tuple(state.get("decisions", [])))

    def process(self, batch: pa.Table, dec: DecisionTable) -> MapResult:
        id_col = pc.cast(batch.column(schema.ID), pa.string())
        ids = id_col.to_pylist()
        n = len(ids)
        pos, found = dec.lookup([str(x) for x in ids])
        size = np.where(found, dec.size[pos] if len(dec) else 1, 1).astype(np.int64)
        kept = np.where(found, dec.kept[pos] if len(dec) else True, True)
        if len(dec):
            cluster = pc.if_else(pa.array(found), dec.cluster.take(pa.array(pos, pa.int64())), id_col)
        else:
            cluster = id_col
        detail = [""] * n
        for i in np.flatnonzero(~kept):
            where = "an indexed document" if dec.of_index[pos[i]] else "document"
            detail[i] = f"near-duplicate of {where} {cluster[int(i)].as_py()} (cluster size {size[i]})"
        cluster = cluster.combine_chunks() if isinstance(cluster, pa.ChunkedArray) else cluster
        out = batch
        for name in (schema.DUP_CLUSTER, schema.DUP_CLUSTER_SIZE, schema.DUP_KEPT):
            if name in out.column_names:
                out = out.drop_columns([name])
        out = out.append_column(schema.DUP_CLUSTER, cluster)
        out = out.append_column(schema.DUP_CLUSTER_SIZE, pa.array(size, pa.int64()))
        out = out.append_column(schema.DUP_KEPT, pa.array(kept))
        if self.params.mode == "annotate":
            return MapResult(out, None)
        return split_batch(out, pa.array(kept), REASON, detail)


class _Clock:
    def __init__(self) -> None:
        import time

        self._now = time.perf_counter
        self.t = self._now()
        self.marks: dict[str, float] = {}

    def mark(self, name: str) -> None:
        t = self._now()
        self.marks[name] = round(t - self.t, 3)
        self.t = t


class _Passthrough:
    def __call__(self, path: str):
        return _chunks(path, None)


def _count(files: list[str]) -> int:
    return int(sum(pq.ParquetFile(f).metadata.num_rows for f in files))
