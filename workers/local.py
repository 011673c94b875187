"""The local in-process executor: shards one after another, batches streamed."""

from __future__ import annotations

from typing import Callable

from curate.stage import LocalTaskRunner, TaskRunner
from workers.runner import Executor


class LocalExecutor(Executor):
    """Runs every shard and every fit task in this process. Memory is bounded by the
    batch size (plus whatever a barrier's state needs), not by the corpus size."""

    name = "local"

    def task_runner(self) -> TaskRunner:
        return LocalTaskRunner()

    def run_shards(self, task, shards: list[dict], uses_model: bool, on_result: Callable[[dict], None]) -> list[dict]:
        out = []
        for s in shards:
            r = task(s)
            on_result(r)
            out.append(r)
        return out
