"""Phase 1, signatures: one scratch signature file per input part.

Per part file and in bounded chunks (``ctx.map_files``): batch-vectorized MinHash
signatures cut into ``bands`` band keys, the node id, the shingle-set size, the keep
policy's sort value. ``n_shingles`` counts distinct shingles when verification or the index
needs set sizes. Shingle sets are never written here: verification recomputes them from
the input text of candidate documents only (see :mod:`.verification`), so scratch stays
a small multiple of the input. Documents without any shingle get no row (they are never
duplicates).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import jobfs, schema
from curate.fit import FitContext
from curate.parquet_io import ParquetParts, iter_file_batches, rows_for_bytes
from curate.stages.minhash_dedup import layout
from curate.stages.minhash_dedup.layout import KEEP_VALUE, N_SHINGLES, band_column
from curate.stages.minhash_dedup.partition import fold_partition
from curate.text.lsh import band_keys
from curate.text.minhash import MinHasher


def compute_signatures(ctx: FitContext, cfg: dict, files: list[str], text_column: str,
                       out_dir: str) -> tuple[list[tuple[str, str]], int, int]:
    """``(signature file, input file)`` of every input file with a shingled document (in
    file order), documents read and documents without shingles."""
    res = ctx.map_files(SignatureTask(cfg, text_column, out_dir, ctx.batch_size), files)
    pairs = [(r["path"], f) for r, f in zip(res, files) if r["path"]]
    return pairs, sum(r["docs"] for r in res), sum(r["empty"] for r in res)


class SignatureTask:
    """Per part file: uid, id, band keys, set size, keep value -> one scratch file."""

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
        out = jobfs.path(self.out_dir) / f"sig-{name}.parquet"
        out.parent.mkdir(parents=True, exist_ok=True)
        cols = [schema.ID, self.text_column] + ([c["keep_column"]] if c["keep_column"] else [])
        cols += [c["partition_by"]] if c.get("partition_by") and c["partition_by"] not in cols else []
        rows = rows_for_bytes(path, layout.MAX_CHUNK_BYTES, self.text_column, max_rows=self.batch_size)
        n_docs = n_empty = 0
        with ParquetParts(dictionary=False) as files:  # ids, band keys and hashes are nearly all distinct
            for t in iter_file_batches(path, cols, rows):
                for chunk in byte_chunks(t, self.text_column):
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
        bs = mh.signatures(t.column(self.text_column), count_unique=c["count_unique"])
        sig = bs.sig
        if c["scheme"] == "fast" and c["hash_bits"] == 32:
            sig = sig & np.uint64(0xFFFFFFFF)
        has = np.flatnonzero(bs.has_shingles)
        keys = band_keys(sig[has], c["bands"], c["rows"], seed=c["seed"])
        if c.get("partition_by"):
            keys = fold_partition(keys, t.column(c["partition_by"]).take(pa.array(has, pa.int64())))
        ids_k = [str(ids[i]) for i in has]
        data: dict[str, Any] = {"uid": pa.array(layout.node_ids(ids_k), pa.int64()), "id": pa.array(ids_k, pa.string())}
        for j in range(c["bands"]):
            data[band_column(j)] = pa.array(keys[:, j], pa.int64())
        data[N_SHINGLES] = pa.array(bs.n_shingles[has], pa.int64())
        data[KEEP_VALUE] = self._keep_values(t).take(pa.array(has, pa.int64()))
        return pa.table(data)


def byte_chunks(t: pa.Table, text_column: str) -> Iterator[pa.Table]:
    """Split a batch so no chunk holds more than ``MAX_CHUNK_BYTES`` of text (bounded kernel memory)."""
    lens = pc.fill_null(pc.binary_length(t.column(text_column)), 0).to_numpy(zero_copy_only=False)
    if lens.sum() <= layout.MAX_CHUNK_BYTES:
        yield t
        return
    start, acc = 0, 0
    for i, n in enumerate(lens):
        if acc and acc + n > layout.MAX_CHUNK_BYTES:
            yield t.slice(start, i - start)
            start, acc = i, 0
        acc += int(n)
    yield t.slice(start)
