"""curate: curate and select LLM pretraining data.

The library (this package) is pure logic on ``pyarrow.Table`` batches: the spec, the
planner, the stages and their text kernels, stats, the report and lineage. It imports
no executor, service, Ray, HTTP or database module. Execution lives in ``workers``
(including the API for ad hoc Ray scripts) and the service in ``api``.
"""

from __future__ import annotations

import os

__version__ = "0.1.0"

# Arrow's default allocator (mimalloc) keeps freed pages and commits arenas eagerly; on
# the fit's short-lived, large batches that doubles resident memory. Return freed memory
# to the OS promptly instead (defaults only: a value you export wins). Takes effect when
# curate is imported before pyarrow; Ray workers started by curate inherit it.
for _k, _v in (("MIMALLOC_PURGE_DELAY", "0"), ("MIMALLOC_ARENA_EAGER_COMMIT", "0")):
    os.environ.setdefault(_k, _v)
del _k, _v
