"""Reliability of the real service: a uvicorn process on loopback, jobs on embedded Ray.

Restart keeps everything (adopted driver; killed driver -> interrupted -> retry resumes),
cancel, two concurrent jobs. One server home (and one embedded Ray head) per module.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import psutil
import pyarrow.compute as pc
import pytest

from api.raycluster import EmbeddedRay
from tests.corpus import branch_join_spec, write_corpus
from tests.test_api_util import TOKEN, Server, wait_state
from workers import read_output, run_pipeline

pytestmark = [pytest.mark.slow, pytest.mark.ray]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("svc")
    write_corpus(tmp / "data" / "in", n_files=4, rows=60, seed=5)
    env = {
        "CURATE_HOME": str(tmp / "home"),
        "CURATE_DATA_ROOTS": str(tmp / "data"),
        "CURATE_API_TOKEN": TOKEN,
        "CURATE_RAY_CPUS": "2",
        "CURATE_MAX_JOBS": "2",
        "CURATE_POLL_S": "0.2",
        "RAY_memory_monitor_refresh_ms": "0",  # shared CI box: no OOM-killer surprises
    }
    yield tmp, env
    EmbeddedRay(tmp / "home").stop()  # whatever a test left behind


@pytest.fixture
def server(home):
    tmp, env = home
    s = Server(env, tmp / "server.log").start()
    yield s
    s.stop()


def slow_spec(out: str, name: str = "slow") -> dict:
    """The core's branch/join spec, cut into many small shards so it runs for a while."""
    spec = branch_join_spec("in/*.parquet", out)
    spec["name"] = name
    spec["settings"] = {"rows_per_shard": 6, "batch_size": 8}
    return spec


def reference(tmp: Path, out: str):
    spec = slow_spec(str(tmp / "data" / out))
    spec["inputs"]["docs"]["path"] = str(tmp / "data/in/*.parquet")
    run_pipeline(spec, executor="local", job_dir=tmp / f"ref-{out}")
    return read_output(tmp / "data" / out)


def wait_progress(c, jid: str, timeout: float = 120.0) -> dict:
    """Until at least one shard of some step is done (and the job is still running)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        j = c.get(f"/v1/jobs/{jid}").json()
        if j["state"] != "running" and j["state"] != "queued":
            raise AssertionError(
                f"job finished before the test could interrupt it: {j['state']} {j['error']}"
            )
        if any((s.get("done") or 0) >= 1 for s in j["progress"]):
            return j
        time.sleep(0.1)
    raise AssertionError("no progress")


def assert_clean_output(tmp: Path, out: str, ref) -> None:
    got = read_output(tmp / "data" / out)
    # Same multiset of documents as an uninterrupted local run: nothing lost, nothing doubled
    # (the union node legitimately carries a document once per branch).
    assert got.num_rows == ref.num_rows
    assert sorted(got.column("id").to_pylist()) == sorted(ref.column("id").to_pylist())
    assert pc.count_distinct(got.column("id")).as_py() == pc.count_distinct(ref.column("id")).as_py()
    assert not (tmp / "data" / out / "INCOMPLETE").exists()


def test_restart_keeps_everything(home):
    tmp, env = home
    s = Server(env, tmp / "server.log").start()
    try:
        c = s.client()
        a = c.post("/v1/jobs", json=slow_spec("out/a", "a")).json()["id"]
        b = c.post("/v1/jobs", json=slow_spec("out/b", "b")).json()["id"]
        wait_progress(c, a)
        jb = wait_progress(c, b)
        driver_b = c.get(f"/v1/jobs/{b}").json()
        head_before = json.loads((tmp / "home/ray/head.json").read_text())
        s.kill()  # the API dies mid-job
        # job b's machine "crashes" too: its driver dies while the API is down
        store_pid = _pid_of(tmp, b)
        os.killpg(store_pid, signal.SIGKILL)
        _wait_gone(store_pid)
        assert driver_b["state"] == "running" and jb["progress"]

        s = Server(env, tmp / "server.log").start()  # same home: same DB, same Ray head
        c = s.client()
        assert json.loads((tmp / "home/ray/head.json").read_text()) == head_before  # head adopted
        ja = wait_state(c.get, a, timeout=300)
        assert ja["state"] == "succeeded", ja["error"]  # its driver kept running on Ray; adopted
        jb = c.get(f"/v1/jobs/{b}").json()
        assert jb["state"] == "interrupted" and "retry" in jb["history"][-1]["message"]
        assert (Path(jb["artifacts"]["job_dir"]) / "INCOMPLETE").exists()
        done_before = len(list((Path(jb["artifacts"]["job_dir"]) / "_done").rglob("*.json")))
        assert done_before >= 1

        r = c.post(f"/v1/jobs/{b}/retry")
        assert r.status_code == 202, r.text
        jb = wait_state(c.get, b, timeout=300)
        assert jb["state"] == "succeeded", jb["error"]
        assert jb["attempt"] == 2
        assert [h["state"] for h in jb["history"]] == [
            "queued",
            "running",
            "interrupted",
            "queued",
            "running",
            "succeeded",
        ]
        log = (Path(jb["artifacts"]["job_dir"]) / "driver.log").read_text()
        assert "--resume" in log.split("=== attempt 2")[1].splitlines()[0]

        listing = c.get("/v1/jobs").json()
        assert {a, b} <= {x["id"] for x in listing["items"]}
        ref = reference(tmp, "ref_ab")
        assert_clean_output(tmp, "out/a", ref)
        assert_clean_output(tmp, "out/b", ref)
    finally:
        s.stop()


def test_cancel_and_concurrent_jobs(server, home):
    tmp, _ = home
    c = server.client()
    # two jobs at once on one cluster, separate outputs
    j1 = c.post("/v1/jobs", json=slow_spec("out/c1", "c1")).json()["id"]
    j2 = c.post("/v1/jobs", json=dict(branch_join_spec("in/*.parquet", "out/c2"), name="c2")).json()["id"]
    r1, r2 = wait_state(c.get, j1, timeout=300), wait_state(c.get, j2, timeout=300)
    assert r1["state"] == r2["state"] == "succeeded", (r1["error"], r2["error"])
    assert _overlap(r1, r2), "the two jobs did not run at the same time"
    assert_clean_output(tmp, "out/c1", reference(tmp, "ref_c1"))
    out2 = read_output(tmp / "data/out/c2")
    assert out2.num_rows == r2["ledger"]["both"]["kept"] and r1["outputs"]["kept"] != r2["outputs"]["kept"]

    # cancel a running job while an earlier, good run's output sits at the same path: its
    # driver process group dies, the job is cancelled, only its own files are marked, and the
    # earlier output is untouched
    good = reference(tmp, "out/cancel")
    good_files = {f.name: f.read_bytes() for f in (tmp / "data/out/cancel").iterdir()}
    jid = c.post("/v1/jobs", json=slow_spec("out/cancel", "cancel")).json()["id"]
    # a second job on the same output while the first is queued or running: refused, naming it
    r409 = c.post("/v1/jobs", json=slow_spec("out/cancel", "cancel2"))
    assert r409.status_code == 409 and jid in r409.json()["detail"], r409.text
    wait_progress(c, jid)
    pid = _pid_of(tmp, jid)
    r = c.post(f"/v1/jobs/{jid}/cancel")
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    _wait_gone(pid)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    job_dir = Path(r.json()["artifacts"]["job_dir"])
    assert "cancelled" in (job_dir / "INCOMPLETE").read_text()
    assert {f.name: f.read_bytes() for f in (tmp / "data/out/cancel").iterdir()} == good_files
    assert_clean_output(tmp, "out/cancel", good)
    staged = list((tmp / "data/out").glob(".cancel.staging-*"))  # only if it got that far
    assert len(staged) <= 1 and all("cancelled" in (d / "INCOMPLETE").read_text() for d in staged)
    assert c.post(f"/v1/jobs/{jid}/cancel").status_code == 409
    m = c.get("/metrics").text
    assert 'curate_jobs{state="cancelled"} 1.0' in m


def _pid_of(tmp: Path, job_id: str) -> int:
    from api.store import Store

    s = Store(f"sqlite:///{tmp / 'home' / 'curate.db'}")
    try:
        return int(s.get_job(job_id)["pid"])
    finally:
        s.close()


def _wait_gone(pid: int, timeout: float = 30) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.1)
    raise AssertionError(f"pid {pid} still alive")


def _overlap(a: dict, b: dict) -> bool:
    def span(j: dict) -> tuple[str, str]:
        return j["started_at"], j["finished_at"]

    (s1, e1), (s2, e2) = span(a), span(b)
    return s1 < e2 and s2 < e1
