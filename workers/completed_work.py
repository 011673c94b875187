"""What an earlier run left in a job directory that ``--resume`` could reuse.

A run records each finished shard as ``_done/<step>/<shard key>.json`` and each fitted
barrier as ``state/<node>/state.json``. A run without ``--resume`` deletes them and starts
over; :func:`completed_work` counts them first (listing only, nothing is read) so the CLI
can say so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curate import jobfs

DONE_DIR = "_done"
"""Shard completion records: ``<job_dir>/_done/<step id>/<shard key>.json``."""
STATE_DIR = "state"
"""Fitted barrier states: ``<job_dir>/state/<node id>/state.json``."""


@dataclass(frozen=True)
class CompletedWork:
    """Completion records found in a job directory."""

    shards: int = 0
    steps: int = 0  # steps with at least one completed shard
    fits: int = 0

    def __bool__(self) -> bool:
        return bool(self.shards or self.fits)

    def describe(self) -> str:
        """e.g. ``12 completed shards in 3 steps and 1 fitted barrier``."""
        parts = []
        if self.shards:
            parts.append(f"{_n(self.shards, 'completed shard')} in {_n(self.steps, 'step')}")
        if self.fits:
            parts.append(_n(self.fits, "fitted barrier"))
        return " and ".join(parts)


def _n(k: int, what: str) -> str:
    return f"{k} {what}{'' if k == 1 else 's'}"


def completed_work(job_dir: str | Path) -> CompletedWork:
    """Count the shard and fit completion records in ``job_dir`` (none if it is missing)."""
    root = jobfs.path(job_dir)
    shards = steps = 0
    done = root / DONE_DIR
    if done.is_dir():
        for step in done.iterdir():
            n = sum(1 for _ in step.glob("*.json")) if step.is_dir() else 0
            shards += n
            steps += n > 0
    state = root / STATE_DIR
    fits = sum(1 for _ in state.glob("*/state.json")) if state.is_dir() else 0
    return CompletedWork(shards=shards, steps=steps, fits=fits)


def resume_hint(job_dir: str | Path) -> str | None:
    """One line for a run about to start over in ``job_dir``, or None if it holds no
    completed work."""
    work = completed_work(job_dir)
    if not work:
        return None
    return (f"job directory {job_dir} holds {work.describe()} from an earlier run; this run starts over "
            "(--resume would reuse those that still match the spec)")
