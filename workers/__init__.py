"""Execution backends for curate pipelines (local in-process, and Ray), and the API for
ad hoc Ray scripts::

    import workers
    from curate.stages import LengthFilter

    ds = workers.read_corpus("s3://bucket/crawl/*.parquet")   # stable ids, bad docs quarantined
    ds = workers.apply(LengthFilter(min_words=50), ds)        # any stage on a ray.data.Dataset
    result = workers.run_pipeline("pipelines/quickstart.yaml", executor="ray", ray_address="auto")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from workers.executor import ProgressFn
from workers.job import Job, JobResult
from workers.job_errors import JobFailed, LedgerError
from workers.outputs import read_output

__all__ = ["apply", "run_pipeline", "read_corpus", "JobResult", "JobFailed", "LedgerError", "read_output",
           "make_executor"]


def apply(stage: Any, ds: Any, **kwargs: Any) -> Any:
    """Apply a stage to a ``ray.data.Dataset`` (see :func:`workers.ray_api.apply`)."""
    from workers.ray_api import apply as _apply

    return _apply(stage, ds, **kwargs)


def read_corpus(path: Any, **kwargs: Any) -> Any:
    """Read Parquet as a Ray dataset with curate's stable ids (see :func:`workers.ray_api.read_corpus`)."""
    from workers.ray_api import read_corpus as _read

    return _read(path, **kwargs)


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
