"""The driver <-> service protocol: the two files a job driver writes for its supervisor.

A job driver (``curate run ... --job-dir DIR``, started by the service's supervisor as a
subprocess) reports only through files in its job directory, so the service can adopt
a driver after a restart and read a finished job without talking to it:

* ``progress.json`` (:class:`Progress`): rewritten atomically while the job runs: the
  job state, every step's done/total shard counts so far, and per-node in/kept/rejected
  document counts so far.
* ``result.json`` (:class:`JobOutcome`): written once at the end: ``succeeded`` or
  ``failed``, the error message and the named outputs. Its absence after the driver
  exited means the driver died (killed, out of memory) before it could report.

Both sides use this module, so the schema is defined once. ``read_*`` return None for a
missing or unreadable file (a file being replaced, or from an older version).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

from curate import jobfs
from curate.parquet_io import write_json_atomic

PROGRESS_FILE = "progress.json"
RESULT_FILE = "result.json"


class StepProgress(BaseModel):
    """Shards of one step done so far (``fit:<node>`` steps count 0/1)."""

    step: str
    done: int = Field(ge=0)
    total: int = Field(ge=0)


class NodeCounts(BaseModel):
    """Documents a node has seen, kept and rejected so far."""

    model_config = {"populate_by_name": True}
    in_: int = Field(0, alias="in")
    kept: int = 0
    rejected: int = 0


class Progress(BaseModel):
    """``progress.json``."""

    state: Literal["running"] = "running"
    steps: list[StepProgress] = Field(default_factory=list)
    nodes: dict[str, NodeCounts] = Field(default_factory=dict)

    def step(self, name: str, done: int, total: int) -> None:
        """Record a step's progress (replacing its earlier entry, keeping step order)."""
        for s in self.steps:
            if s.step == name:
                s.done, s.total = done, total
                return
        self.steps.append(StepProgress(step=name, done=done, total=total))


class JobOutcome(BaseModel):
    """``result.json``."""

    state: Literal["succeeded", "failed"]
    error: str | None = None
    outputs: dict[str, str] = Field(default_factory=dict)


def write_progress(job_dir: str | Path, progress: Progress) -> None:
    write_json_atomic(jobfs.path(job_dir) / PROGRESS_FILE, progress.model_dump(mode="json", by_alias=True))


def write_result(job_dir: str | Path, outcome: JobOutcome) -> None:
    write_json_atomic(jobfs.path(job_dir) / RESULT_FILE, outcome.model_dump(mode="json"))


def _read(path: jobfs.JobPath, model: type[BaseModel]) -> BaseModel | None:
    try:
        return model.model_validate_json(path.read_bytes())
    except (OSError, ValueError, ValidationError):
        return None


def read_progress(job_dir: str | Path) -> Progress | None:
    return _read(jobfs.path(job_dir) / PROGRESS_FILE, Progress)  # type: ignore[return-value]


def read_result(job_dir: str | Path) -> JobOutcome | None:
    return _read(jobfs.path(job_dir) / RESULT_FILE, JobOutcome)  # type: ignore[return-value]
