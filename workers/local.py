"""The local in-process executor: shards one after another, batches streamed."""

from __future__ import annotations

import os
from typing import Callable

from curate.fit import TaskRunner
from workers.executor import Executor
from workers.task_runners import ThreadTaskRunner


class LocalExecutor(Executor):
    """Runs every shard and every fit task in this process. Memory is bounded by the
    batch size (plus whatever a barrier's state needs), not by the corpus size.

    Shards run one after another. Barrier fit tasks run on ``fit_threads`` threads
    (default: ``CURATE_FIT_THREADS`` or the CPU count): their kernels release the GIL,
    and threads share one copy of the libraries and JIT code instead of one per process."""

    name = "local"

    def __init__(self, fit_threads: int | None = None):
        env = os.environ.get("CURATE_FIT_THREADS")
        self.fit_threads = max(1, fit_threads or (int(env) if env and env.isdigit() else 0) or os.cpu_count() or 1)

    def task_runner(self) -> TaskRunner:
        return ThreadTaskRunner(self.fit_threads)

    def run_shards(self, task, shards: list[dict], uses_model: bool, on_result: Callable[[dict], None]) -> list[dict]:
        out = []
        for s in shards:
            r = task(s)
            on_result(r)
            out.append(r)
        return out
