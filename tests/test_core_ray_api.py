"""The Python API for ad hoc Ray scripts, on a cluster the user started."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

from tests.corpus import branch_join_spec, write_corpus

pytestmark = pytest.mark.ray


def test_stage_apply_on_ray_dataset(tmp_path, ray_local):
    import workers
    from curate.stages import ExactDedup, LengthFilter

    write_corpus(tmp_path / "in")
    ds = workers.read_corpus(str(tmp_path / "in/*.parquet"))
    assert ds.count() == 174  # 180 minus 3 null and 3 blank
    kept = workers.apply(LengthFilter(min_words=5), ds)
    assert kept.count() == 171
    annotated = workers.apply(LengthFilter(min_words=5), ds, rejects="keep")
    rows = annotated.filter(lambda r: r["reason"] is not None).take_all()
    assert len(rows) == 3 and {r["reason"] for r in rows} == {"too_few_words"}
    dd = workers.apply(ExactDedup(), kept, work_dir=str(tmp_path / "dd"))
    assert dd.count() == 166


@pytest.mark.slow
def test_user_script_on_existing_cluster(tmp_path):
    """A separate driver process connects to a `ray start` cluster and runs curate."""
    write_corpus(tmp_path / "in")
    spec = branch_join_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"))
    spec["job_dir"] = str(tmp_path / "job")
    (tmp_path / "spec.yaml").write_text(yaml.safe_dump(spec))
    # Ray 2.60 clusters started with `ray start` use token auth: the cluster and every
    # driver that connects share the token (here through the environment).
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED="0", RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(16))
    ray_bin = str(Path(sys.executable).with_name("ray"))
    port = 26379 + os.getpid() % 1000
    # A private temp dir (short: Ray's socket paths must fit in 107 bytes): nothing of this
    # cluster lands in /tmp/ray, where a stale `ray_current_cluster` would make a user's later
    # plain `ray.init(num_cpus=2)` try to connect to a dead cluster.
    temp_dir = tempfile.mkdtemp(prefix="curate-ray-")
    shared_marker = Path("/tmp/ray/ray_current_cluster")
    marker_before = shared_marker.exists()
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         "--object-store-memory=150000000", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.time() + 90
    while time.time() < deadline:
        st = subprocess.run([ray_bin, "status", f"--address=127.0.0.1:{port}"], env=env, capture_output=True, timeout=60)
        if st.returncode == 0:
            break
        time.sleep(1)
    try:
        out = tmp_path / "res.json"
        p = subprocess.run(
            [sys.executable, "tests/scripts/user_ray_script.py", f"127.0.0.1:{port}", str(tmp_path / "in/*.parquet"),
             str(tmp_path / "spec.yaml"), str(out)],
            env=env, capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1],
        )
        assert p.returncode == 0, p.stderr[-3000:]
        res = json.loads(out.read_text())
        assert res["n_in"] == 174 and len(res["ids"]) == 166
        assert res["ledger"]["dd"]["rejected"] == 5
        # The cluster is still alive after the script: curate never shut it down.
        st = subprocess.run([ray_bin, "status", f"--address=127.0.0.1:{port}"], env=env, capture_output=True, text=True, timeout=60)
        assert st.returncode == 0, st.stderr
    finally:
        # Stop only the cluster this test started (never `ray stop`, which stops every cluster).
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)
    assert marker_before or not shared_marker.exists()
