"""Ingest: list input shards, read them with stable ids, quarantine bad documents.

A *shard* is a file, or a range of a file's row groups when the file is large. Its key
depends only on the input name, the file's path relative to the input root and the
row-group range, so outputs and completion records never depend on how shards are
grouped into tasks.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

from curate import schema
from curate.spec import InputSpec, input_root, resolve_input_files


class ShardError(RuntimeError):
    """A shard (file) cannot be read: not Parquet, truncated, or a bad text column."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):  # picklable, so it crosses Ray task boundaries intact
        return (type(self), (self.path, self.problem))


@dataclass
class Shard:
    """One unit of work read from an input."""

    input: str
    path: str
    relpath: str
    rg_start: int
    rg_end: int
    row_offset: int
    num_rows: int
    key: str
    fingerprint: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _open(path: str):
    if "://" in path:
        import fsspec

        return fsspec.open(path, "rb").open()
    return path


def _relpath(path: str, root: str) -> str:
    root = root.rstrip("/")
    if root and path.startswith(root + "/"):
        return path[len(root) + 1 :]
    return os.path.basename(path) if not root else path


def check_text_type(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_string_view(t)


def list_input_shards(name: str, inp: InputSpec, rows_per_shard: int) -> tuple[list[Shard], list[dict]]:
    """Shards of one input, plus a list of bad files ({path, problem}).

    Reads only Parquet footers. Bad files are reported, not raised; the caller
    decides (``on_bad_shard``).
    """
    files = resolve_input_files(inp.path)
    paths = inp.path if isinstance(inp.path, list) else [inp.path]
    roots = [input_root(p) for p in paths]
    shards: list[Shard] = []
    bad: list[dict] = []
    if not files:
        bad.append({"path": str(inp.path), "problem": "no Parquet files match this input"})
    for f in files:
        root = next((r for r in roots if f.startswith(r.rstrip("/") + "/")), roots[0])
        rel = _relpath(f, root)
        try:
            pf = pq.ParquetFile(_open(f))
            md = pf.metadata
            sch = pf.schema_arrow
        except Exception as e:  # pyarrow raises several types for non-Parquet/truncated files
            bad.append({"path": f, "problem": f"not a readable Parquet file ({type(e).__name__}: {e})"})
            continue
        if inp.text_column not in sch.names:
            bad.append({"path": f, "problem": f"missing text column '{inp.text_column}' (columns: {', '.join(sch.names)})"})
            continue
        tt = sch.field(inp.text_column).type
        if not check_text_type(tt):
            bad.append({"path": f, "problem": f"text column '{inp.text_column}' has type {tt}, expected a string"})
            continue
        try:
            st = os.stat(f) if "://" not in f else None
            fp = f"{md.num_rows}:{st.st_size}:{st.st_mtime_ns}:{_footer_digest(f)}" if st else f"{md.num_rows}:{md.serialized_size}"
        except OSError:
            fp = f"{md.num_rows}"
        start, acc, offset = 0, 0, 0
        n_rg = md.num_row_groups
        if n_rg == 0:
            shards.append(_mk(name, f, rel, 0, 0, 0, 0, fp))
            continue
        for rg in range(n_rg):
            acc += md.row_group(rg).num_rows
            if acc >= rows_per_shard or rg == n_rg - 1:
                shards.append(_mk(name, f, rel, start, rg + 1, offset, acc, fp))
                offset += acc
                start, acc = rg + 1, 0
    return shards, bad


def _footer_digest(path: str) -> str:
    """xxh3 of a local Parquet file's footer (schema, row groups, offsets, column statistics).

    Part of a shard's identity for resume: a file rewritten with the same size within the
    same mtime tick still gets a new fingerprint unless its footer is byte-identical.
    """
    with open(path, "rb") as fh:
        fh.seek(-8, os.SEEK_END)
        n = int.from_bytes(fh.read(4), "little")
        fh.seek(-(8 + n), os.SEEK_END)
        return xxhash.xxh3_64_hexdigest(fh.read(n))


def _mk(name: str, path: str, rel: str, a: int, b: int, off: int, n: int, fp: str) -> Shard:
    key = xxhash.xxh3_64_hexdigest(f"{name}\x00{rel}\x00{a}-{b}".encode())
    return Shard(name, path, rel, a, b, off, n, key, fp)


def assign_ids(input_name: str, relpath: str, row_offset: int, n: int) -> pa.Array:
    """Stable ids: xxh3-64 hex of "<input>\\x00<relpath>\\x00<row index in file>" (see curate.schema)."""
    prefix = input_name.encode() + b"\x00" + relpath.encode() + b"\x00"
    return pa.array(
        [xxhash.xxh3_64_hexdigest(prefix + str(row_offset + i).encode()) for i in range(n)], pa.string()
    )


def read_shard(
    shard: Shard, inp: InputSpec, batch_size: int, max_doc_bytes: int, renames: dict[int, int] | None = None
) -> Iterator[tuple[pa.Table, pa.Table | None]]:
    """Yield (clean rows, quarantined rows) per batch of a shard.

    ``renames`` (row in file -> k) renames repeated user ids; given (even empty) for every
    shard of an input with repeats, so that input's ids are strings throughout.

    Clean rows have an ``id`` (kept or assigned), the text column as UTF-8 string and
    ``domain`` when the input sets one. Quarantined rows carry ``reason``/``detail``:
    null_id, null_text, empty_text, too_long or invalid_utf8.
    """
    try:
        pf = pq.ParquetFile(_open(shard.path))
    except Exception as e:
        raise ShardError(shard.path, f"not a readable Parquet file ({type(e).__name__}: {e})") from None
    rgs = list(range(shard.rg_start, shard.rg_end))
    row = shard.row_offset
    has_id = inp.id_column in pf.schema_arrow.names
    it = pf.iter_batches(batch_size=batch_size, row_groups=rgs) if rgs else iter(())
    produced = False
    while True:
        try:
            rb = next(it)
        except StopIteration:
            break
        except Exception as e:
            raise ShardError(shard.path, f"corrupt data while reading ({type(e).__name__}: {e})") from None
        produced = True
        t = pa.Table.from_batches([rb])
        n = t.num_rows
        yield _clean(t, inp, has_id, shard.input, shard.relpath, row, max_doc_bytes, renames)
        row += n
    if not produced:
        t = pf.schema_arrow.empty_table()
        yield _clean(t, inp, has_id, shard.input, shard.relpath, row, max_doc_bytes, renames)


def _renamed(ids: pa.ChunkedArray | pa.Array, row: int, renames: dict[int, int]) -> pa.Array:
    """The ids as strings, the k-th repeat of a value as ``"<id>#dup<k>"`` (workers.dupids)."""
    as_text = pc.cast(ids, pa.string())
    hits = [(r - row, k) for r, k in renames.items() if row <= r < row + len(as_text)]
    if not hits:
        return as_text
    out = as_text.to_pylist()
    for i, k in hits:
        if out[i] is not None:
            out[i] = f"{out[i]}#dup{k}"
    return pa.array(out, pa.string())


def _clean(
    t: pa.Table, inp: InputSpec, has_id: bool, input_name: str, relpath: str, row: int, max_doc_bytes: int,
    renames: dict[int, int] | None = None,
) -> tuple[pa.Table, pa.Table | None]:
    n = t.num_rows
    tc = inp.text_column
    if has_id:
        if inp.id_column != schema.ID or renames is not None:
            ids = t.column(inp.id_column)
            t = _set_col(t, schema.ID, ids if renames is None else _renamed(ids, row, renames))
    else:
        t = _set_col(t, schema.ID, assign_ids(input_name, relpath, row, n), first=True)
    if inp.domain is not None:
        t = _set_col(t, schema.DOMAIN, pa.array([inp.domain] * n, pa.string()))
    col = t.column(tc)
    reason = np.full(n, "", dtype=object)
    detail = np.full(n, "", dtype=object)
    if has_id:  # a null id cannot be deduplicated, sampled or traced: quarantine it
        reason[pc.is_null(t.column(schema.ID)).to_numpy(zero_copy_only=False)] = schema.NULL_ID
        detail[reason == schema.NULL_ID] = f"column '{inp.id_column}' is null"
    if pa.types.is_binary(col.type) or pa.types.is_large_binary(col.type):
        vals = col.to_pylist()
        dec: list[str | None] = []
        for i, v in enumerate(vals):
            if v is None:
                dec.append(None)
                continue
            try:
                dec.append(v.decode("utf-8"))
            except UnicodeDecodeError as e:
                dec.append(None)
                reason[i] = schema.INVALID_UTF8
                detail[i] = f"byte {e.start}: {e.reason}"
        col = pa.array(dec, pa.string())
        t = _set_col(t, tc, col)
    elif not pa.types.is_string(col.type):
        col = pc.cast(col, pa.string())
        t = _set_col(t, tc, col)
    nulls = pc.is_null(col).to_numpy(zero_copy_only=False)
    reason[(nulls) & (reason == "")] = schema.NULL_TEXT
    filled = pc.fill_null(col, "")
    blank = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(filled)), 0).to_numpy(zero_copy_only=False)
    reason[blank & (reason == "")] = schema.EMPTY_TEXT
    nbytes = pc.binary_length(filled).to_numpy(zero_copy_only=False)
    long = nbytes > max_doc_bytes
    sel = long & (reason == "")
    reason[sel] = schema.TOO_LONG
    detail[sel] = [f"{b} bytes > max_doc_bytes {max_doc_bytes}" for b in nbytes[sel]]
    bad = reason != ""
    if not bad.any():
        return t, None
    keep = pa.array(~bad)
    rej = t.filter(pa.array(bad))
    rej = rej.append_column(schema.REASON, pa.array(reason[bad], pa.string()))
    rej = rej.append_column(schema.DETAIL, pa.array(detail[bad], pa.string()))
    return t.filter(keep), rej


def _set_col(t: pa.Table, name: str, arr: pa.Array | pa.ChunkedArray, first: bool = False) -> pa.Table:
    if name in t.column_names:
        return t.set_column(t.column_names.index(name), name, arr)
    if first:
        return t.add_column(0, name, arr)
    return t.append_column(name, arr)
