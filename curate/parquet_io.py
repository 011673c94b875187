"""Parquet and JSON file helpers shared by stages and executors.

Streaming reads bounded by rows or bytes, the writer settings for hash columns, and
writes that readers never see half-done (a temporary name, then a rename).
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq


def iter_file_batches(path: str, columns: Sequence[str] | None = None, batch_size: int = 8192) -> Iterator[pa.Table]:
    """Stream one Parquet file as tables of at most ``batch_size`` rows."""
    pf = pq.ParquetFile(path)
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
        md = pq.ParquetFile(path).metadata
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
    dictionary-encoded if ``dictionary``)."""
    comp = {f.name: ("none" if _is_hash_column(f.type) else "zstd") for f in schema}
    return comp, ([f.name for f in schema if not _is_hash_column(f.type)] if dictionary else False)


class ParquetParts:
    """Parquet files written a table at a time (each ``write`` appends a row group) under
    temporary names, renamed into place together by ``commit`` (``abort`` removes them).
    Used as a context manager: commit on success, abort on error."""

    def __init__(self, dictionary: bool = True):
        self.dictionary = dictionary
        self._open: dict[Path, tuple[pq.ParquetWriter, Path]] = {}

    def write(self, path: Path | str, table: pa.Table) -> None:
        path = Path(path)
        if path not in self._open:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
            comp, dic = parquet_settings(table.schema, self.dictionary)
            self._open[path] = (pq.ParquetWriter(tmp, table.schema, compression=comp, use_dictionary=dic), tmp)
        w = self._open[path][0]
        w.write_table(table if table.schema == w.schema else table.cast(w.schema))

    def __contains__(self, path: Path | str) -> bool:
        return Path(path) in self._open

    def commit(self) -> list[Path]:
        done = list(self._open)
        for path, (w, tmp) in self._open.items():
            w.close()
            os.replace(tmp, path)
        self._open.clear()
        return done

    def abort(self) -> None:
        for w, tmp in self._open.values():
            w.close()
            tmp.unlink(missing_ok=True)
        self._open.clear()

    def __enter__(self) -> ParquetParts:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


def write_json_atomic(path: Path | str, obj: Any) -> None:
    """Write JSON to ``path`` via a temporary name and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True, default=str))
    os.replace(tmp, path)


def write_parquet_atomic(path: Path | str, table: pa.Table, compression: str | dict = "zstd",
                         use_dictionary: bool | list[str] = True) -> None:
    """Write a Parquet file via a temporary name and a rename (readers never see halves)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.{threading.get_ident()}.tmp")
    pq.write_table(table, tmp, compression=compression, use_dictionary=use_dictionary)
    os.replace(tmp, path)
