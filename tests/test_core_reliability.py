"""A worker node dies mid-job; the job completes with the undisturbed run's output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.corpus import write_corpus
from workers import read_output, run_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.ray]


def _spec(inp: str, out: str) -> dict:
    return {
        "name": "reliable",
        "seed": 11,
        "settings": {"rows_per_shard": 10, "batch_size": 8},
        "inputs": {"docs": {"path": inp}},
        "nodes": [
            {"id": "len", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}},
            {"id": "dd", "stage": "exact_dedup", "inputs": ["len"]},
            {"id": "s", "stage": "sample", "inputs": ["dd"], "params": {"fraction": 0.7}},
        ],
        "outputs": {"kept": {"node": "s", "path": out}},
    }


def test_worker_node_killed_mid_job(tmp_path):
    write_corpus(tmp_path / "in", n_files=6, rows=60, row_group_size=10)
    ref = run_pipeline(_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "ref")), job_dir=tmp_path / "jref")
    spec = _spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"))
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0")
    p = subprocess.run(
        [sys.executable, "tests/scripts/node_failure.py", str(tmp_path / "spec.json"), str(tmp_path / "job"), str(tmp_path / "res.json")],
        env=env, capture_output=True, text=True, timeout=600, cwd=Path(__file__).parents[1],
    )
    assert p.returncode == 0, p.stderr[-4000:]
    res = json.loads((tmp_path / "res.json").read_text())
    assert res["killed_after"] is not None, "the worker node was never killed"
    expected = read_output(tmp_path / "ref")
    assert res["ids"] == expected.column("id").to_pylist()
    assert res["texts"] == expected.column("text").to_pylist()
    assert res["ledger"] == ref.ledger
    assert not any(f.endswith(".tmp") for f in res["files"])
