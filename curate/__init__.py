"""curate: curate and select LLM pretraining data.

The library (this package) is pure logic on ``pyarrow.Table`` batches. Execution lives
in ``workers`` and the service in ``api``. For ad hoc Ray scripts::

    import curate
    ds = curate.stages.LengthFilter(min_words=50).apply(ds)
    result = curate.run("pipelines/quickstart.yaml", ray_address="auto")
"""

from __future__ import annotations

import os
from typing import Any

__version__ = "0.1.0"

# Arrow's default allocator (mimalloc) keeps freed pages and commits arenas eagerly; on
# the fit's short-lived, large batches that doubles resident memory. Return freed memory
# to the OS promptly instead (defaults only: a value you export wins). Takes effect when
# curate is imported before pyarrow; Ray workers started by curate inherit it.
for _k, _v in (("MIMALLOC_PURGE_DELAY", "0"), ("MIMALLOC_ARENA_EAGER_COMMIT", "0")):
    os.environ.setdefault(_k, _v)
del _k, _v


def run(spec: Any, *, ray_address: str | None = None, executor: str = "ray", job_dir: str | None = None, resume: bool = False):
    """Run a whole spec (on Ray by default; an existing cluster via ``ray_address``)."""
    from workers import run_pipeline

    return run_pipeline(spec, executor=executor, job_dir=job_dir, ray_address=ray_address, resume=resume)


def __getattr__(name: str) -> Any:
    if name == "stages":
        import importlib

        return importlib.import_module("curate.stages")
    if name == "read_corpus":
        from workers.ray_api import read_corpus

        return read_corpus
    raise AttributeError(name)
