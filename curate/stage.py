"""Stage API: the two stage kinds every curate stage is built from.

A stage is pure logic over ``pyarrow.Table`` batches. It never imports Ray, HTTP or a
database; executors in ``workers/`` decide where and how often it runs.

* :class:`MapStage` works batch by batch. ``process`` returns a :class:`MapResult`: the
  kept rows (possibly with new columns) and the rejected rows with a ``reason`` and a
  ``detail`` string.
* :class:`BarrierStage` needs the whole input first. ``fit`` runs a global computation
  through a :class:`FitContext` (distributed map / aggregate / shuffle primitives the
  executor provides) and returns a JSON-able *state*, which the executor persists in the
  job directory. ``apply`` then uses that state as a map over every batch.

Each stage has exactly one pydantic ``Params`` model. It is the single source for the
spec's YAML keys, API validation, the ``curate stages`` catalogue and the docs.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import pyarrow as pa
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict

from curate import schema


class StageParams(BaseModel):
    """Base class of every stage's parameter model. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")


class StageError(ValueError):
    """A stage cannot run on the data it was given (a clear, user-facing message)."""


@dataclass
class MapResult:
    """The outcome of a map over one batch.

    ``kept`` holds the surviving rows (with any new columns). ``rejected`` holds the
    rejected rows with the batch's columns plus ``reason`` and ``detail`` (strings).
    ``len(kept) + len(rejected)`` always equals the batch length.
    """

    kept: pa.Table
    rejected: pa.Table | None = None

    @property
    def num_rejected(self) -> int:
        return 0 if self.rejected is None else self.rejected.num_rows


def split_batch(
    table: pa.Table,
    keep: Any,
    reason: str | Sequence[str] | pa.Array,
    detail: str | Sequence[str] | pa.Array | None = None,
) -> MapResult:
    """Split ``table`` by the boolean mask ``keep`` into kept and rejected rows.

    ``reason`` and ``detail`` may be scalars or per-row arrays (aligned with ``table``);
    only the rejected rows' values are used.
    """
    mask = pa.array(keep, type=pa.bool_()) if not isinstance(keep, (pa.Array, pa.ChunkedArray)) else keep
    if isinstance(mask, pa.ChunkedArray):
        mask = mask.combine_chunks()
    mask = pa.compute.fill_null(mask, False)
    kept = table.filter(mask)
    if kept.num_rows == table.num_rows:
        return MapResult(kept, None)
    inv = pa.compute.invert(mask)
    rej = table.filter(inv)
    n = rej.num_rows
    rej = rej.append_column(schema.REASON, _per_row(reason, inv, n))
    rej = rej.append_column(schema.DETAIL, _per_row(detail if detail is not None else "", inv, n))
    return MapResult(kept, rej)


def _per_row(value: Any, inv_mask: pa.Array, n: int) -> pa.Array:
    if isinstance(value, str):
        return pa.array([value] * n, type=pa.string())
    arr = value if isinstance(value, (pa.Array, pa.ChunkedArray)) else pa.array(list(value))
    arr = arr.filter(inv_mask)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pa.compute.cast(arr, pa.string())


class Stage:
    """Common behaviour of map and barrier stages.

    Subclasses set ``name`` (the spec's ``stage:`` key), ``Params`` and a docstring
    (shown in the catalogue). ``uses_model`` marks stages that hold a model: on Ray they
    run in an actor pool so ``setup`` (model loading) happens once per worker.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    Params: ClassVar[type[StageParams]] = StageParams
    uses_model: ClassVar[bool] = False

    def __init__(self, params: StageParams | dict | None = None, /, **kwargs: Any) -> None:
        if isinstance(params, StageParams):
            if kwargs:
                params = params.model_copy(update=kwargs)
            self.params = self.Params.model_validate(params.model_dump())
        else:
            self.params = self.Params.model_validate({**(params or {}), **kwargs})
        self.node_id: str = self.name
        self.seed: int = 0
        self.text_column: str = schema.TEXT
        self._ready = False

    # -- spec-time information -------------------------------------------------------
    def required_columns(self) -> set[str]:
        """Columns this stage needs from upstream (besides id and text)."""
        return set()

    def provided_columns(self) -> set[str]:
        """Columns this stage adds."""
        return set()

    def extra_inputs(self) -> list[str]:
        """DAG node ids this stage reads besides its data inputs (e.g. a DSIR target)."""
        return []

    # -- runtime -----------------------------------------------------------------------
    def bind(self, node_id: str, seed: int, text_column: str = schema.TEXT) -> "Stage":
        """Attach the stage to a DAG node: its id names rejects, its seed is derived."""
        self.node_id = node_id
        self.seed = seed
        self.text_column = text_column
        return self

    def setup(self) -> None:
        """Load models or other heavy resources. Called once per worker, before batches."""

    def ensure_setup(self) -> None:
        if not self._ready:
            self.setup()
            self._ready = True

    def run_stats(self) -> dict[str, Any]:
        """Extra facts for stats.json (e.g. a model digest). Must be JSON-able."""
        return {}

    @classmethod
    def catalogue_entry(cls) -> dict[str, Any]:
        doc = (cls.__doc__ or "").strip()
        return {
            "name": cls.name,
            "kind": cls.kind,
            "uses_model": cls.uses_model,
            "summary": doc.splitlines()[0] if doc else "",
            "description": doc,
            "params_schema": cls.Params.model_json_schema(),
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params!r})"

    # -- Ray convenience (for ad hoc scripts; imports nothing from Ray here) -----------
    def apply(self, ds: Any, **kwargs: Any) -> Any:
        """Apply this stage to a ``ray.data.Dataset`` and return the kept rows.

        See :func:`workers.ray_api.apply_stage` for options (``rejects_path``...).
        """
        from workers.ray_api import apply_stage  # local import keeps curate/ Ray-free

        return apply_stage(self, ds, **kwargs)


class MapStage(Stage):
    """A per-batch, streamable stage."""

    kind: ClassVar[str] = "map"

    def process(self, batch: pa.Table) -> MapResult:  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, batch: pa.Table) -> MapResult:
        self.ensure_setup()
        return self.process(batch)


class BarrierStage(Stage):
    """A stage with a global fit over its whole input, then a per-batch apply.

    ``fit`` must not pull the corpus onto one process: use ``ctx.aggregate`` for
    associative reductions and ``ctx.shuffle`` for keyed, hash-partitioned work.
    """

    kind: ClassVar[str] = "barrier"

    def __init_subclass__(cls, **kwargs: Any) -> None:
        # ``stage.apply(batch, state)`` is the per-batch apply; ``stage.apply(ds, ...)``
        # with a Ray dataset is the ad hoc-script convenience (fit, then apply).
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("apply")
        if own is None or getattr(own, "_dispatching", False):
            return

        def apply(self, data: Any, state: Any = None, **kw: Any):  # type: ignore[no-untyped-def]
            if isinstance(data, pa.Table):
                return own(self, data, state if state is not None else {}, **kw)
            return Stage.apply(self, data, **kw)

        apply._dispatching = True  # type: ignore[attr-defined]
        apply.__doc__ = own.__doc__
        cls.apply = apply  # type: ignore[method-assign]

    def fit(self, inputs: dict[str, "ShardSet"], ctx: "FitContext") -> dict[str, Any]:
        raise NotImplementedError  # pragma: no cover - abstract

    def apply(self, batch: pa.Table, state: dict[str, Any]) -> MapResult:
        raise NotImplementedError  # pragma: no cover - abstract

    def data_inputs(self, inputs: Sequence[str]) -> list[str]:
        """Which of the node's inputs flow through ``apply`` (default: all)."""
        extra = set(self.extra_inputs())
        return [i for i in inputs if i not in extra]


# ----------------------------------------------------------------------------------------
# Data handles and distributed primitives used by barrier fits
# ----------------------------------------------------------------------------------------


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
        return sum(pq.ParquetFile(f).metadata.num_rows for f in self.files)


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


_LIBC: Any = None


def release_memory() -> None:
    """Hand freed memory back to the OS: Arrow's pool (mimalloc/jemalloc keep freed pages
    for reuse) and glibc's heap. Called between fit tasks, so one task's peak does not
    stay resident for the rest of the fit."""
    global _LIBC
    try:
        pa.default_memory_pool().release_unused()
    except Exception:  # pragma: no cover - old pyarrow
        pass
    if _LIBC is None:
        try:
            import ctypes
            import ctypes.util

            _LIBC = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _LIBC.malloc_trim  # noqa: B018 - glibc only
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


class _Released:
    def __init__(self, fn: Callable[[Any], Any]):
        self.fn = fn

    def __call__(self, x: Any) -> Any:
        try:
            return self.fn(x)
        finally:
            release_memory()


class ThreadTaskRunner(TaskRunner):
    """Runs tasks on ``n`` threads of this process (results in item order).

    The fit kernels (numba ``nogil``, Arrow compute and Parquet I/O) release the GIL, so
    threads give parallel fits with one copy of the interpreter, libraries and JIT code
    instead of one per worker process."""

    def __init__(self, n: int | None = None):
        self.n = max(1, n or os.cpu_count() or 1)
        self._pool = None

    def map(self, fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
        items = list(items)
        if self.n == 1 or len(items) <= 1:
            return [_Released(fn)(x) for x in items]
        if self._pool is None:
            import concurrent.futures as cf

            self._pool = cf.ThreadPoolExecutor(self.n, thread_name_prefix="curate-fit")
        return list(self._pool.map(_Released(fn), items))

    @property
    def parallelism(self) -> int:
        return self.n

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


@dataclass
class FitContext:
    """What a barrier's ``fit`` may use: a task runner, a seed and two directories.

    ``state_dir`` is persisted with the job (put fitted files there and reference them
    from the returned state). ``scratch_dir`` is for intermediate shuffle files.
    """

    runner: TaskRunner
    state_dir: Path
    scratch_dir: Path
    seed: int
    node_id: str
    text_column: str = schema.TEXT
    batch_size: int = 8192
    num_partitions: int = 16
    warnings: list[str] = field(default_factory=list)

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
        sources: Sequence[str],
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
