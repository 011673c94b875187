"""The interface an execution backend implements (local in-process, or Ray)."""

from __future__ import annotations

from typing import Callable

from curate.fit import TaskRunner

ProgressFn = Callable[[str, int, int], None]


class Executor:
    """An executor supplies two things: ``run_shards`` (process shards, possibly in
    parallel) and a :class:`curate.fit.TaskRunner` for barrier fits. Everything else
    (resume, the ledger, stats, outputs, the report) is the job driver's, the same for both."""

    name = "base"

    def task_runner(self) -> TaskRunner:  # pragma: no cover - interface
        raise NotImplementedError

    def run_shards(self, task, shards: list[dict], uses_model: bool, on_result: Callable[[dict], None]) -> list[dict]:
        raise NotImplementedError  # pragma: no cover
