"""Parquet and JSON file helpers shared by stages and executors.

Streaming reads bounded by rows or bytes, the writer settings for hash columns, and
writes that readers never see half-done: a temporary name, then a rename, for a local
path; a local spill file, then one PUT, for an object-store path (:mod:`curate.jobfs`).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import jobfs


def iter_file_batches(path: str, columns: Sequence[str] | None = None, batch_size: int = 8192) -> Iterator[pa.Table]:
    """Stream one Parquet file as tables of at most ``batch_size`` rows."""
    pf = pq.ParquetFile(str(path))
    cols = None
    if columns is not None:
        names = set(pf.schema_arrow.names)
        cols = [c for c in columns if c in names]
    for rb in pf.iter_batches(batch_size=batch_size, columns=cols):
        yield pa.Table.from_batches([rb])


def rows_for_bytes(path: str, target_bytes: int, column: str | None = None, max_rows: int | None = None,
                   min_rows: int = 16) -> int:
    """Rows per read batch so a batch holds about ``target_bytes`` (uncompressed, from the
    Parquet metadata) of ``column``, or of every column if ``column`` is None."""
    fallback = max_rows or 8192
    try:
        md = pq.ParquetFile(str(path)).metadata
        if column is None:
            size = sum(md.row_group(g).total_byte_size for g in range(md.num_row_groups))
        else:
            c = md.schema.to_arrow_schema().get_field_index(column)
            size = sum(md.row_group(g).column(c).total_uncompressed_size for g in range(md.num_row_groups))
    except Exception:  # odd metadata: callers still bound their batches by rows
        return fallback
    if md.num_rows == 0 or size <= 0:
        return fallback
    rows = max(min_rows, target_bytes * md.num_rows // size)
    return int(min(rows, max_rows) if max_rows else rows)


def iter_file_chunks(path: str, columns: Sequence[str] | None, target_bytes: int) -> Iterator[pa.Table]:
    """Stream one Parquet file as tables of about ``target_bytes`` each (never the whole file)."""
    for t in iter_file_batches(path, columns, rows_for_bytes(path, target_bytes, min_rows=64)):
        if t.num_rows:
            yield t


def _is_hash_column(t: pa.DataType) -> bool:
    return ((pa.types.is_list(t) or pa.types.is_large_list(t)) and pa.types.is_integer(t.value_type)) or \
        pa.types.is_large_binary(t)


def parquet_settings(schema: pa.Schema, dictionary: bool = True) -> tuple[dict[str, str], bool | list[str]]:
    """``(compression, use_dictionary)`` for a Parquet writer: hash columns (lists of
    integers, large binary) are stored plain, since random 64-bit values do not compress
    and dictionary attempts on them only cost time; other columns are zstd (and
    dictionary-encoded if ``dictionary``, except ``large_string`` columns: long texts whose
    values are all distinct)."""
    comp = {f.name: ("none" if _is_hash_column(f.type) else "zstd") for f in schema}
    dic = [f.name for f in schema if not _is_hash_column(f.type) and not pa.types.is_large_string(f.type)]
    return comp, (dic if dictionary else False)


class SchemaDrift(ValueError):
    """A later table has columns the first one did not (``ParquetParts(conform=True)``)."""


def conform_table(table: pa.Table, target: pa.Schema) -> pa.Table:
    """``table`` with ``target``'s columns, types and order: casts, and nulls for columns it lacks."""
    extra = [n for n in table.column_names if n not in target.names]
    if extra:
        raise SchemaDrift(f"columns {extra} appeared in a later batch only; stages must add columns consistently")
    cols = []
    for f in target:
        if f.name in table.column_names:
            c = table.column(f.name)
            cols.append(c if c.type == f.type else pc.cast(c, f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=target)


def _nonnull_schema(s: pa.Schema) -> pa.Schema:
    # An all-null first table would pin a column to type null; widen it to string.
    return pa.schema([f.with_type(pa.string()) if pa.types.is_null(f.type) else f for f in s])


class ParquetParts:
    """Parquet files written a table at a time (each ``write`` appends a row group) under
    temporary names, renamed into place together by ``commit`` (``abort`` removes them).
    Used as a context manager: commit on success, abort on error.

    By default hash columns are stored plain (:func:`parquet_settings`) and later tables are
    cast to the first one's schema. With ``compression`` every column uses it (dictionary
    encoding as ``dictionary`` says). With ``conform``, the first table's all-null columns
    become strings and later tables are conformed (:func:`conform_table`): a stage's batches
    may differ in column types or lack columns, never add new ones."""

    def __init__(self, dictionary: bool = True, compression: str | None = None, conform: bool = False):
        self.dictionary = dictionary
        self.compression = compression
        self.conform = conform
        self._open: dict[jobfs.JobPath, tuple[pq.ParquetWriter, Path, pa.Schema]] = {}
        self.rows: dict[jobfs.JobPath, int] = {}

    def write(self, path: jobfs.JobPath | str, table: pa.Table) -> None:
        path = jobfs.path(path)
        if path not in self._open:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = _temp_name(path)
            schema = _nonnull_schema(table.schema) if self.conform else table.schema
            if self.compression:
                comp, dic = self.compression, self.dictionary
            else:
                comp, dic = parquet_settings(schema, self.dictionary)
            self._open[path] = (pq.ParquetWriter(tmp, schema, compression=comp, use_dictionary=dic), tmp, schema)
            self.rows[path] = 0
        w, _, schema = self._open[path]
        if table.schema != schema:
            table = conform_table(table, schema) if self.conform else table.cast(schema)
        w.write_table(table)
        self.rows[path] += table.num_rows

    def __contains__(self, path: jobfs.JobPath | str) -> bool:
        return jobfs.path(path) in self._open

    def commit(self) -> list[jobfs.JobPath]:
        done = list(self._open)
        for path, (w, _, _) in self._open.items():
            w.close()
        for path, (_, tmp, _) in self._open.items():
            _commit(tmp, path)
        self._open.clear()
        return done

    def abort(self) -> None:
        for w, tmp, _ in self._open.values():
            try:
                w.close()
            finally:
                tmp.unlink(missing_ok=True)
        self._open.clear()

    def __enter__(self) -> ParquetParts:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def _temp_name(path: jobfs.JobPath) -> Path:
    """Where a write of ``path`` is completed: beside it locally, in a spill file for a remote path."""
    if isinstance(path, jobfs.RemotePath):
        return jobfs.spill_file(path.name)
    return path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


def _commit(tmp: Path, path: jobfs.JobPath) -> None:
    if isinstance(path, jobfs.RemotePath):
        jobfs.put_spilled(tmp, path)
    else:
        os.replace(tmp, path)


def write_json_atomic(path: jobfs.JobPath | str, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary name and a rename (one PUT for a remote path)."""
    path = jobfs.path(path)
    text = json.dumps(obj, indent=2, sort_keys=True, default=str)
    if isinstance(path, jobfs.RemotePath):
        path.write_bytes(text.encode())
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    tmp.write_text(text)
    os.replace(tmp, path)


def write_parquet_atomic(path: jobfs.JobPath | str, table: pa.Table, compression: str | dict = "zstd",
                         use_dictionary: bool | list[str] = True) -> None:
    """Write a Parquet file via a temporary name and a rename (readers never see halves)."""
    path = jobfs.path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        pq.write_table(table, tmp, compression=compression, use_dictionary=use_dictionary)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    _commit(tmp, path)
