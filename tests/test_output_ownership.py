"""Outputs are owned by one run at a time and published only when it succeeds: a second run
on the same output is refused naming the holder, a dead holder's lock is taken over, and a
failed run never touches the output an earlier run published."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from tests.corpus import write_corpus
from workers import JobFailed, read_output, run_pipeline
from workers.output_lock import LockHeld, PathLocks, lock_file, live_holder

REPO = Path(__file__).resolve().parents[1]


def _spec(tmp: Path, out: Path, slow: float | None = None) -> dict:
    nodes = [{"id": "len", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}}]
    if slow is not None:
        nodes.append({"id": "slow", "stage": "toy_slow", "inputs": ["len"], "params": {"seconds": slow}})
    return {
        "name": "own",
        "inputs": {"docs": {"path": str(tmp / "in/*.parquet")}},
        "settings": {"rows_per_shard": 10, "batch_size": 5},
        "nodes": nodes,
        "outputs": {"o": {"node": nodes[-1]["id"], "path": str(out)}},
    }


def _start_slow(tmp: Path, out: Path, job_dir: Path, seconds: float = 0.3) -> subprocess.Popen:
    (tmp / "slow.json").write_text(json.dumps(_spec(tmp, out, slow=seconds)))
    return subprocess.Popen([sys.executable, "tests/scripts/slow_run.py", str(tmp / "slow.json"), str(job_dir)],
                            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _wait_for_lock(target: Path, proc: subprocess.Popen, timeout: float = 60) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        holder = live_holder(target)
        if holder is not None:
            return holder
        assert proc.poll() is None, proc.stderr.read().decode()
        time.sleep(0.05)
    raise AssertionError("the slow run never took its lock")


@pytest.fixture
def corpus(tmp_path):
    write_corpus(tmp_path / "in", n_files=3, rows=40, seed=3)
    return tmp_path


def test_a_second_cli_run_on_a_held_output_is_refused_naming_the_holder(corpus):
    tmp, out = corpus, corpus / "out"
    proc = _start_slow(tmp, out, tmp / "job-a")
    try:
        holder = _wait_for_lock(out, proc)
        assert holder["pid"] == proc.pid and holder["job_dir"] == str(tmp / "job-a")
        (tmp / "b.yaml").write_text(yaml.safe_dump(_spec(tmp, out)))
        r = CliRunner().invoke(app, ["run", str(tmp / "b.yaml"), "--job-dir", str(tmp / "job-b"), "-q"])
        assert r.exit_code == 1, r.output
        assert f"is being written by the run with job directory {tmp / 'job-a'}" in " ".join(r.output.split())
        assert not (tmp / "job-b" / "nodes").exists()  # refused before any work
        # the same job directory is refused too, even for another output
        with pytest.raises(LockHeld, match="job-a"):
            run_pipeline(_spec(tmp, tmp / "elsewhere"), job_dir=tmp / "job-a")
        assert not out.exists()  # nothing is published while the run is going
        assert proc.wait(timeout=120) == 0, proc.stderr.read().decode()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    got = read_output(out)
    ref = run_pipeline(_spec(tmp, tmp / "ref"), job_dir=tmp / "job-ref")
    assert got.num_rows == ref.ledger["len"]["kept"] and got.equals(read_output(tmp / "ref"))
    assert not lock_file(out).exists() and not lock_file(tmp / "job-a").exists()
    # once the holder is done, the other run goes ahead
    assert run_pipeline(_spec(tmp, out), job_dir=tmp / "job-b").outputs["o"] == str(out)


def test_a_killed_holder_s_lock_is_taken_over(corpus):
    tmp, out = corpus, corpus / "out"
    proc = _start_slow(tmp, out, tmp / "job-a", seconds=5)
    try:
        _wait_for_lock(out, proc)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert lock_file(out).exists() and live_holder(out) is None  # left behind, but stale
    res = run_pipeline(_spec(tmp, out), job_dir=tmp / "job-b")
    assert read_output(out).num_rows == res.ledger["len"]["kept"] > 0
    assert not lock_file(out).exists()


def test_a_lock_with_a_stale_heartbeat_is_taken_over_and_a_fresh_one_is_not(tmp_path, monkeypatch):
    target = tmp_path / "out"
    lf = lock_file(target)
    foreign = {"job_dir": "/elsewhere/job", "job_id": "j-1", "host": "another-host", "pid": 1, "pid_started": 0.0}
    lf.write_text(json.dumps({**foreign, "heartbeat": time.time()}))
    with pytest.raises(LockHeld, match=r"job j-1 \(pid 1 on another-host"):
        PathLocks([target], tmp_path / "job").acquire()
    monkeypatch.setenv("CURATE_LOCK_STALE_S", "30")
    lf.write_text(json.dumps({**foreign, "heartbeat": time.time() - 31}))
    with PathLocks([target], tmp_path / "job") as locks:
        assert json.loads(lf.read_text())["job_dir"] == str(tmp_path / "job") and locks.held == [lf]
    assert not lf.exists()


def test_the_holder_s_heartbeat_keeps_its_lock_fresh(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATE_LOCK_HEARTBEAT_S", "0.05")
    with PathLocks([tmp_path / "out"], tmp_path / "job"):
        first = json.loads(lock_file(tmp_path / "out").read_text())["heartbeat"]
        time.sleep(0.3)
        assert json.loads(lock_file(tmp_path / "out").read_text())["heartbeat"] > first


def test_a_failed_run_leaves_the_published_output_intact(corpus):
    tmp, out = corpus, corpus / "out"
    run_pipeline(_spec(tmp, out), job_dir=tmp / "job-a")
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    bad = _spec(tmp, out)
    bad["nodes"][0] = {"id": "len", "stage": "threshold_filter", "inputs": ["docs"],
                       "params": {"column": "text", "value": 3}}  # text vs number: fails at run time
    with pytest.raises(JobFailed):
        run_pipeline(bad, job_dir=tmp / "job-b")
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before
    assert not (out / "INCOMPLETE").exists()


def test_an_output_under_a_file_is_a_clear_failure_before_any_work(corpus):
    tmp = corpus
    (tmp / "blocker").write_text("a file where a directory should be\n")
    with pytest.raises(JobFailed, match=r"cannot write .*blocker/out: .*blocker is not a directory"):
        run_pipeline(_spec(tmp, tmp / "blocker" / "out"), job_dir=tmp / "job")
    assert not (tmp / "job" / "nodes").exists()
