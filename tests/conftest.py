"""Shared fixtures. Ray starts once per session, small: 2 CPUs, no dashboard.

Every Ray runtime the tests start (the shared one, and the embedded ones of driver
subprocesses, which inherit the environment) keeps its session files under one private
``RAY_TMPDIR``, removed when the session ends: nothing is left in ``/tmp/ray``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
_RAY_TMPDIR = tempfile.mkdtemp(prefix="curate-tests-")  # short: Ray's socket paths have a length limit
os.environ["RAY_TMPDIR"] = _RAY_TMPDIR


def pytest_sessionfinish(session, exitstatus):
    import sys

    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()  # the session started it
    shutil.rmtree(_RAY_TMPDIR, ignore_errors=True)


@pytest.fixture(scope="session")
def ray_local():
    """An embedded Ray runtime shared by every Ray test in the session."""
    import ray

    if not ray.is_initialized():
        ray.init(
            address="local",
            num_cpus=2,
            object_store_memory=200 * 1024 * 1024,
            include_dashboard=False,
            ignore_reinit_error=True,
            log_to_driver=False,
        )
    yield ray
    # The session owns this runtime (shut down in pytest_sessionfinish); tests never shut
    # down a cluster they did not start.


@pytest.fixture
def tmp_job(tmp_path: Path) -> Path:
    d = tmp_path / "job"
    d.mkdir()
    return d
