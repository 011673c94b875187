"""Task runners for barrier fits in this process: threads, with memory handed back.

The Ray executor runs fit tasks as Ray tasks (``workers/ray_exec.py``); the local
executor uses :class:`ThreadTaskRunner`.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import pyarrow as pa

from curate.fit import TaskRunner

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


