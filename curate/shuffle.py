"""Hash-partitioned shuffle through Parquet files.

The map phase turns each source into a keyed table and writes one Parquet file per
(source, partition). The reduce phase reads every file of one partition and runs the
reducer on them. Both phases go through the executor's task runner, so they run on Ray
workers when the job runs on Ray. No process ever holds more than one partition.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import jobfs
from curate.parquet_io import ParquetParts, parquet_settings, write_parquet_atomic


class ShuffleContext(Protocol):
    """What a shuffle needs of a fit context (:class:`curate.fit.FitContext` is one)."""

    scratch_dir: Any
    runner: Any


def partition_of(keys: np.ndarray, num_partitions: int) -> np.ndarray:
    """Partition index of integer keys (mixed first, so sequential keys spread out)."""
    k = keys.astype(np.uint64, copy=False)
    with np.errstate(over="ignore"):
        h = (k ^ (k >> np.uint64(31))) * np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return (h % np.uint64(num_partitions)).astype(np.int64)


class _MapTask:
    def __init__(self, map_fn: Callable, key: str, num_partitions: int, out_dir: str):
        self.map_fn, self.key, self.num_partitions, self.out_dir = map_fn, key, num_partitions, out_dir

    def __call__(self, item: tuple[int, str]) -> list[int]:
        """``map_fn`` returns a table, None, or an iterator of tables (streamed: one chunk
        in memory at a time, appended as a row group to one file per partition)."""
        idx, source = item
        out = self.map_fn(source)
        counts = [0] * self.num_partitions
        with ParquetParts() as files:
            for table in [out] if out is None or isinstance(out, pa.Table) else out:
                if table is not None and table.num_rows:
                    self._write(table, f"m{idx:06d}", counts, files)
        return counts

    def _write(self, table: pa.Table, name: str, counts: list[int], files: ParquetParts) -> None:
        keys = table.column(self.key).to_numpy(zero_copy_only=False)
        parts = partition_of(keys, self.num_partitions)
        order = np.argsort(parts, kind="stable")
        sorted_parts = parts[order]
        table = table.take(pa.array(order))
        bounds = np.searchsorted(sorted_parts, np.arange(self.num_partitions + 1))
        for p in range(self.num_partitions):
            lo, hi = int(bounds[p]), int(bounds[p + 1])
            if hi > lo:
                files.write(jobfs.path(self.out_dir) / f"p{p:05d}" / f"{name}.parquet", table.slice(lo, hi - lo))
                counts[p] += hi - lo


class _ReduceTask:
    def __init__(self, reduce_fn: Callable, in_dir: str, out_dir: str):
        self.reduce_fn, self.in_dir, self.out_dir = reduce_fn, in_dir, out_dir

    def __call__(self, p: int) -> str | None:
        pdir = jobfs.path(self.in_dir) / f"p{p:05d}"
        files = sorted(pdir.glob("m*.parquet")) if pdir.exists() else []
        if not files:
            return None
        table = pa.concat_tables([pq.read_table(str(f)) for f in files], promote_options="default")
        out = self.reduce_fn(table)
        if out is None:
            return None
        path = jobfs.path(self.out_dir) / f"out-{p:05d}.parquet"
        write_parquet_atomic(path, out, *parquet_settings(out.schema))
        return str(path)


def run_shuffle(
    ctx: ShuffleContext,
    sources: Sequence[Any],
    map_fn: Callable[[str], pa.Table | None],
    key: str,
    reduce_fn: Callable[[pa.Table], pa.Table | None],
    num_partitions: int,
    name: str,
) -> list[str]:
    base = jobfs.path(ctx.scratch_dir) / name
    jobfs.rmtree(base)
    map_dir, out_dir = base / "map", base / "out"
    ctx.runner.map(_MapTask(map_fn, key, num_partitions, str(map_dir)), list(enumerate(sources)))
    outs = ctx.runner.map(_ReduceTask(reduce_fn, str(map_dir), str(out_dir)), list(range(num_partitions)))
    jobfs.rmtree(map_dir)
    return [o for o in outs if o is not None]


def sort_table(table: pa.Table, by: str) -> pa.Table:
    """Sort a table by one column (ascending); a small helper for reducers."""
    return table.take(pc.sort_indices(table, sort_keys=[(by, "ascending")]))
