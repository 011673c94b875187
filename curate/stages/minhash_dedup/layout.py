"""The data layout every phase of ``minhash_dedup`` shares.

* **node ids**: every document is a 63-bit integer node id in the shuffles and the
  components: non-negative for this run's documents, negative for indexed ones (so an
  indexed document is always the root of its component).
* **scratch columns**: a signature file (one per input part) holds ``uid``, ``id``, one
  band-key column per band (``b000``...), ``n_shingles`` and ``keep_value``. Shingle
  sets are recomputed from the input text when needed (verification, the index).
* **the index's stored names**: index files are signature files filtered to the
  survivors; they keep the names of the first index format (``n``, ``sh``) so every
  index written so far stays readable. :class:`Source` translates on read.
* **shuffle sources**: a shuffle map reads several kinds of file; a :class:`Source` says
  which kind a file is (a picklable value, not a tag in the path string).
* **shingle sets**: one binary value per document (its sorted little-endian uint64s).

``MAX_CHUNK_BYTES`` and ``PART_BYTES`` are read at call time (tests shrink them).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from curate.parquet_io import iter_file_chunks
from curate.stage import StageError

MAX_CHUNK_BYTES = 4 * 1024 * 1024  # text (or sets) per chunk a task holds at once
PART_BYTES = 8 * 1024 * 1024  # shuffle rows (or sets) per reducer partition

SHINGLES = "shingles"
TEXT = "member_text"  # a candidate document's input text in the keep joins (verification)
N_SHINGLES = "n_shingles"
KEEP_VALUE = "keep_value"
#: scratch column -> its name in index files (the persisted format; never renamed)
INDEX_STORED_NAMES = {SHINGLES: "sh", N_SHINGLES: "n"}
_SCRATCH_NAMES = {v: k for k, v in INDEX_STORED_NAMES.items()}


def band_column(j: int) -> str:
    """Column of band ``j``'s keys (in signature and index files)."""
    return f"b{j:03d}"


def node_ids(ids: list[str], salt: bytes = b"") -> np.ndarray:
    """Non-negative 63-bit integer node id of every document id."""
    out = np.fromiter((xxhash.xxh3_64_intdigest(salt + str(i).encode("utf-8")) for i in ids),
                      dtype=np.uint64, count=len(ids))
    return (out & np.uint64(0x7FFFFFFFFFFFFFFF)).astype(np.int64)


def index_node_ids(ids: list[str], version: int) -> np.ndarray:
    """Negative node ids of indexed documents (so an index doc is always a component's root)."""
    return node_ids(ids, b"\x01index\x00%d\x00" % version) | np.int64(-(1 << 63))


def int64s(t: pa.Table, column: str) -> np.ndarray:
    """An integer column as an int64 array."""
    return t.column(column).to_numpy().astype(np.int64, copy=False)


def count_rows(files: list[str]) -> int:
    """Rows of Parquet files, from their footers."""
    return int(sum(pq.ParquetFile(f).metadata.num_rows for f in files))


def read_chunks(path: str, columns: list[str] | None) -> Iterator[pa.Table]:
    """A scratch file in chunks of at most about ``MAX_CHUNK_BYTES``."""
    return iter_file_chunks(path, columns, MAX_CHUNK_BYTES)


class SourceKind(Enum):
    """What a shuffle source file holds."""

    SIGNATURES = "signatures"  # this run's signature file
    INDEX_BANDS = "index_bands"  # index band file: uid, id, n, b000...
    INDEX_SETS = "index_sets"  # index set file: uid, id, sh
    CANDIDATE_EDGES = "candidate_edges"  # LSH edges: a, b
    TEXTS = "texts"  # an input file: candidate documents' texts, for verification
    COMPONENTS = "components"  # connected components: node, root


@dataclass(frozen=True)
class Source:
    """One input file of a shuffle map and its kind."""

    kind: SourceKind
    path: str

    @property
    def is_index(self) -> bool:
        return self.kind in (SourceKind.INDEX_BANDS, SourceKind.INDEX_SETS)

    def stored_name(self, column: str) -> str:
        """The name a scratch column has in this file."""
        return INDEX_STORED_NAMES.get(column, column) if self.is_index else column

    def _scratch_names(self, t: pa.Table) -> pa.Table:
        if not self.is_index:
            return t
        return t.rename_columns([_SCRATCH_NAMES.get(c, c) for c in t.column_names])

    def read(self, columns: list[str] | None = None) -> pa.Table:
        """The whole file, with scratch column names."""
        stored = None if columns is None else [self.stored_name(c) for c in columns]
        return self._scratch_names(pq.read_table(self.path, columns=stored))

    def chunks(self, columns: list[str] | None = None) -> Iterator[pa.Table]:
        """The file in bounded chunks, with scratch column names."""
        stored = None if columns is None else [self.stored_name(c) for c in columns]
        for t in read_chunks(self.path, stored):
            yield self._scratch_names(t)


def sources(kind: SourceKind, paths: list[str]) -> list[Source]:
    """The same kind for every path."""
    return [Source(kind, p) for p in paths]


def set_partitions(set_sources: list[Source], rows: int, nparts: int) -> int:
    """Partitions for a shuffle that carries the shingle sets of ``rows`` documents: about
    ``PART_BYTES`` of sets per partition (so a reducer's memory is bounded however big
    the corpus), at least ``nparts`` and at most 1024."""
    total = n = 0
    for src in set_sources:
        md = pq.ParquetFile(src.path).metadata
        names = md.schema.to_arrow_schema().names
        name = src.stored_name(SHINGLES)
        if name not in names:
            continue
        c = names.index(name)
        n += md.num_rows
        total += sum(md.row_group(g).column(c).total_uncompressed_size for g in range(md.num_row_groups))
    if n == 0:
        return nparts
    est = total / n * rows
    return int(min(max(nparts, -(-int(est) // PART_BYTES)), max(nparts, 1024)))


# -- shingle sets ------------------------------------------------------------------------


def sets_column(values: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """Shingle-hash sets as one binary value per document (the little-endian uint64s;
    zero copy both ways, and Parquet writes and reads binary far faster than lists)."""
    v = np.ascontiguousarray(values, dtype="<u8")
    o = np.ascontiguousarray(offsets, dtype=np.int64) * 8
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(o) - 1, [None, pa.py_buffer(o), pa.py_buffer(v)])


def as_sets(arr: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """A sets column in the current (binary) layout; list<uint64> sets of version-1
    indexes are converted."""
    if pa.types.is_large_binary(arr.type):
        return arr
    vals, offs = flat_sets(arr)
    return sets_column(vals, offs)


def flat_sets(arr: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
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
