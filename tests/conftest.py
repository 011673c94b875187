"""Shared fixtures. Ray starts once per session, small: 2 CPUs, no dashboard."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


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
    # The session owns this runtime; tests never shut down a cluster they did not start.


@pytest.fixture
def tmp_job(tmp_path: Path) -> Path:
    d = tmp_path / "job"
    d.mkdir()
    return d
