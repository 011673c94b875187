"""What a barrier's ``fit`` works with: materialized inputs, a task runner and a context.

:class:`ShardSet` names the Parquet parts an earlier step wrote. :class:`FitContext`
gives a fit its distributed primitives (``map_files``, ``aggregate``, ``shuffle``), its
directories and ``persist``. The executor supplies the :class:`TaskRunner`: tasks run
one after another here (:class:`LocalTaskRunner`), on threads or as Ray tasks in
``workers/``. Fit tasks must therefore be picklable and thread-safe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq

from curate import jobfs, schema
from curate.parquet_io import iter_file_batches


@dataclass(frozen=True)
class ShardSet:
    """A materialized dataset: Parquet part files written by an earlier step."""

    files: tuple[str, ...]
    text_column: str = schema.TEXT

    def iter_batches(self, columns: Sequence[str] | None = None, batch_size: int = 8192) -> Iterator[pa.Table]:
        """Stream every batch of every part, in part order (driver-side; small uses only)."""
        for f in self.files:
            yield from iter_file_batches(f, columns, batch_size)

    def num_rows(self) -> int:
        return sum(pq.ParquetFile(str(f)).metadata.num_rows for f in self.files)


class TaskRunner:
    """Runs picklable ``fn(item)`` over items, possibly in parallel (supplied by an executor)."""

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:  # pragma: no cover
        raise NotImplementedError

    @property
    def parallelism(self) -> int:
        return 1


class LocalTaskRunner(TaskRunner):
    """Runs tasks one after another in this process."""

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        return [fn(x) for x in items]


@dataclass
class FitContext:
    """What a barrier's ``fit`` may use: a task runner, a seed and two directories.

    ``state_dir`` is persisted with the job (put fitted files there and reference them
    from the returned state). ``scratch_dir`` is for intermediate shuffle files.
    """

    runner: TaskRunner
    state_dir: Path | jobfs.RemotePath
    scratch_dir: Path | jobfs.RemotePath
    seed: int
    node_id: str
    text_column: str = schema.TEXT
    batch_size: int = 8192
    num_partitions: int = 16
    warnings: list[str] = field(default_factory=list)

    def persist(self, files: Sequence[str], name: str) -> list[str]:
        """Move ``files`` (e.g. a shuffle's outputs in ``scratch_dir``) into the state
        directory as ``state_dir/name/part-XXXXX.parquet``, in order, and return the new
        paths. A move, not a copy: scratch is deleted after the fit anyway (on an object store a
        move is a copy and a delete; the ``state.json`` written after the fit is the marker)."""
        dst = jobfs.path(self.state_dir) / name
        jobfs.rmtree(dst)
        dst.mkdir(parents=True, exist_ok=True)
        out = []
        for i, f in enumerate(files):
            target = dst / f"part-{i:05d}.parquet"
            jobfs.replace(f, target)
            out.append(str(target))
        return out

    def map_files(self, fn: Callable[[str], Any], shards: ShardSet | Sequence[str]) -> list[Any]:
        """Run ``fn(path)`` for every part file, distributed; returns results in file order."""
        files = list(shards.files if isinstance(shards, ShardSet) else shards)
        return self.runner.map(fn, files)

    def aggregate(
        self,
        shards: ShardSet,
        partial: Callable[[pa.Table], Any],
        merge: Callable[[Any, Any], Any],
        columns: Sequence[str] | None = None,
    ) -> Any:
        """Associative reduction: ``partial`` per batch on workers, ``merge`` everywhere.

        Per-file partials are merged on the workers; only one value per file reaches the
        driver, where they are merged in file order (deterministic).
        """
        fn = _FileAggregate(partial, merge, list(columns) if columns else None, self.batch_size)
        parts = [p for p in self.map_files(fn, shards) if p is not None]
        if not parts:
            return None
        acc = parts[0]
        for p in parts[1:]:
            acc = merge(acc, p)
        return acc

    def shuffle(
        self,
        sources: Sequence[Any],
        map_fn: Callable[[str], pa.Table | None],
        key: str,
        reduce_fn: Callable[[pa.Table], pa.Table | None],
        num_partitions: int,
        name: str = "shuffle",
    ) -> list[str]:
        """Hash-partitioned shuffle through Parquet files (a distributed MapReduce).

        ``map_fn(source)`` turns one source (usually a part file path) into a keyed table;
        rows are partitioned by ``key`` (an integer column) modulo ``num_partitions``.
        ``reduce_fn`` then runs once per partition on every row of that partition and its
        output is written to ``scratch_dir/name/out-XXXXX.parquet``. Returns those paths.
        """
        from curate.shuffle import run_shuffle

        return run_shuffle(self, sources, map_fn, key, reduce_fn, num_partitions, name)


class _FileAggregate:
    """Picklable per-file aggregation used by :meth:`FitContext.aggregate`."""

    def __init__(self, partial: Callable, merge: Callable, columns: list[str] | None, batch_size: int):
        self.partial, self.merge, self.columns, self.batch_size = partial, merge, columns, batch_size

    def __call__(self, path: str) -> Any:
        acc = None
        for t in iter_file_batches(path, self.columns, self.batch_size):
            p = self.partial(t)
            acc = p if acc is None else self.merge(acc, p)
        return acc


