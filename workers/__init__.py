"""Execution backends for curate pipelines (local in-process, and Ray)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.runner import Job, JobFailed, JobResult, LedgerError, ProgressFn, read_output

__all__ = ["run_pipeline", "JobResult", "JobFailed", "LedgerError", "read_output", "make_executor"]


def make_executor(executor: str = "local", ray_address: str | None = None):
    """Build an executor by name: ``local`` or ``ray``."""
    if executor == "local":
        from workers.local import LocalExecutor

        return LocalExecutor()
    if executor == "ray":
        from workers.ray_exec import RayExecutor

        return RayExecutor(ray_address)
    raise ValueError(f"unknown executor '{executor}' (use 'local' or 'ray')")


def run_pipeline(
    spec: Any,
    *,
    executor: str = "local",
    job_dir: str | Path | None = None,
    ray_address: str | None = None,
    resume: bool = False,
    progress: ProgressFn | None = None,
) -> JobResult:
    """Validate and run a pipeline spec (dict, YAML/JSON text or file path).

    Raises :class:`curate.spec.SpecError` for an invalid spec and :class:`JobFailed`
    (naming the file or node) when the job cannot complete.
    """
    return Job(spec, make_executor(executor, ray_address), job_dir=job_dir, resume=resume, progress=progress).run()
