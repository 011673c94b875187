"""Scheduled refreshes: mocked time and a fast cron; new shards only; MinHash index chaining."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.scheduler import check_cron, next_fire, node_state_dir, output_path
from api.views import iso
from curate.registry import stage_names
from curate.testing import textgen
from tests.test_api_util import local_config, wait_state

HAS_MINHASH = "minhash_dedup" in stage_names()


def _shard(path: Path, texts: list[str], ids: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"id": ids, "text": texts}), path)


def _template(with_minhash: bool) -> dict:
    nodes = [
        {"id": "len", "stage": "length_filter", "inputs": ["feed"], "params": {"min_words": 5}},
        {"id": "dd", "stage": "exact_dedup", "inputs": ["len"]},
    ]
    if with_minhash:
        nodes.append({"id": "mh", "stage": "minhash_dedup", "inputs": ["dd"], "params": {}})
    return {
        "name": "refresh",
        "seed": 1,
        "inputs": {"feed": {"path": "feed/*.parquet"}},
        "nodes": nodes,
        "outputs": {"kept": {"node": nodes[-1]["id"], "path": "curated"}},
    }


def _rows(out: str) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in Path(out).glob("part-*.parquet"))


def test_cron_helpers():
    assert check_cron(" 0  3 * * * ") == "0 3 * * *"
    assert check_cron("*/2 * * * * *")  # seconds field
    for bad in ("", "bogus", "* * *", "61 * * * *", "* * * * * * * *"):
        with pytest.raises(ValueError):
            check_cron(bad)
    t0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
    assert next_fire("0 3 * * *", t0) - t0 == pytest.approx(4 * 3600 + 46 * 60 + 40)
    assert output_path("s3://b/out", 3) == "s3://b/out/run-00003"
    assert output_path("/x/{run}/kept", 12) == "/x/00012/kept"


def test_node_state_dirs_stay_inside_and_apart(tmp_path):
    assert node_state_dir(tmp_path, "mh") == tmp_path / "mh"
    odd = ["../up", "a/b", "a_b", "..", ".", "", "x y", "a\\b"]
    dirs = [node_state_dir(tmp_path, n) for n in odd]
    assert len(set(dirs)) == len(odd)  # "a/b" and "a_b" do not share a directory
    for d in dirs:
        assert d.parent == tmp_path and d.name not in ("", ".", "..")


def test_refresh_params_come_from_each_stage_hook(tmp_path, monkeypatch):
    """The scheduler applies whatever a node's stage returns from refresh_params (None
    removes a key), passing each node its own state dir; it names no stage."""
    import curate.registry
    from api.scheduler import apply_refresh_params
    from curate.params import StageParams
    from curate.stage import MapStage

    seen = []

    class ToyParams(StageParams):
        drop: int | None = None
        keep: int = 0
        where: str | None = None

    class Toy(MapStage):
        name = "toy"
        Params = ToyParams

        def refresh_params(self, state_dir: str) -> dict:
            seen.append((self.params.keep, state_dir))
            return {"where": state_dir, "drop": None}

    real = curate.registry.get_stage_class
    monkeypatch.setattr(curate.registry, "get_stage_class", lambda n: Toy if n == "toy" else real(n))
    spec = {
        "nodes": [
            {"id": "t", "stage": "toy", "params": {"drop": 1, "keep": 2}},
            {"id": "len", "stage": "length_filter", "params": {"min_words": 3}},
        ]
    }
    apply_refresh_params(spec, tmp_path)
    assert spec["nodes"][0]["params"] == {"keep": 2, "where": str(tmp_path / "t")}
    assert spec["nodes"][1]["params"] == {"min_words": 3}  # the default hook changes nothing
    assert seen == [(2, str(tmp_path / "t"))]  # the stage was built from the node's params


def test_schedule_runs_new_shards_only_missed_runs_fire_once_and_survive_restart(tmp_path):
    data = tmp_path / "data"
    prose = textgen.prose_paragraphs(90, 11)
    _shard(data / "feed/a.parquet", prose[0:30], [f"a{i}" for i in range(30)])
    _shard(data / "feed/b.parquet", prose[30:60], [f"b{i}" for i in range(30)])
    cfg = local_config(tmp_path)
    app = create_app(cfg)
    with TestClient(app) as c:
        svc = app.state.service
        r = c.post(
            "/v1/schedules", json={"name": "daily", "cron": "0 3 * * *", "spec": _template(HAS_MINHASH)}
        )
        assert r.status_code == 201, r.text
        s = r.json()
        sid = s["id"]
        stored = svc.store.get_schedule(sid)
        assert s["state_dir"] == stored["state_dir"] == str(cfg.schedules_dir / sid / "state")
        assert s["created_at"] == iso(stored["created_at"]) and s["next_run_at"].endswith("Z")
        nxt = svc.store.get_schedule(sid)["next_run_at"]
        assert nxt > time.time()
        assert svc.scheduler.tick(now=nxt - 10) == []  # not due yet

        # run 1 (time mocked to the cron tick): both shards
        (j1,) = svc.scheduler.tick(now=nxt + 1)
        r1 = wait_state(c.get, j1)
        assert r1["state"] == "succeeded", r1["error"]
        assert r1["run_number"] == 1 and r1["schedule_id"] == sid
        assert sorted(Path(p).name for p in r1["spec"]["inputs"]["feed"]["path"]) == [
            "a.parquet",
            "b.parquet",
        ]
        assert r1["outputs"]["kept"] == str(data / "curated/run-00001")
        assert r1["ledger"]["feed"]["in"] == 60
        assert _rows(r1["outputs"]["kept"]) == r1["ledger"][r1["spec"]["outputs"]["kept"]["node"]]["kept"] > 0

        # nothing new: no run
        assert svc.scheduler.tick(now=nxt + 86400 + 1) == []
        assert svc.store.get_schedule(sid)["last_message"] == "no new shards"

        # a new shard and a rewritten one (new digest) arrive; a missed stretch of 30 days fires once
        _shard(data / "feed/c.parquet", prose[60:90], [f"c{i}" for i in range(30)])
        _shard(data / "feed/a.parquet", prose[0:31], [f"a{i}" for i in range(31)])
        svc.store.update_schedule(sid, next_run_at=nxt - 30 * 86400)
        now = nxt + 2 * 86400 + 5
        started = svc.scheduler.tick(now=now)
        assert len(started) == 1
        assert svc.store.get_schedule(sid)["next_run_at"] > now
        r2 = wait_state(c.get, started[0])
        assert r2["state"] == "succeeded", r2["error"]
        assert sorted(Path(p).name for p in r2["spec"]["inputs"]["feed"]["path"]) == [
            "a.parquet",
            "c.parquet",
        ]
        assert r2["ledger"]["feed"]["in"] == 61
        assert r2["outputs"]["kept"] == str(data / "curated/run-00002")
        assert _rows(str(data / "curated/run-00001")) == _rows(r1["outputs"]["kept"])  # run 1 untouched

        if HAS_MINHASH:
            # minhash_dedup's refresh hook points it at its node directory in the schedule's state dir
            idx = str(node_state_dir(svc.store.get_schedule(sid)["state_dir"], "mh"))
            mh1 = next(n for n in r1["spec"]["nodes"] if n["id"] == "mh")["params"]
            mh2 = next(n for n in r2["spec"]["nodes"] if n["id"] == "mh")["params"]
            assert "against_index" not in mh1 and mh1["write_index"] == idx
            assert mh2["against_index"] == idx and mh2["write_index"] == idx
            # a.parquet was rewritten with the same 30 documents plus one: they are duplicates of
            # what run 1 already indexed, so run 2 rejects them against the schedule's index
            assert r2["ledger"]["mh"]["rejected"] >= 25, r2["ledger"]
            assert r1["ledger"]["mh"]["rejected"] == 0
            man = json.loads((Path(idx) / "index.json").read_text())
            assert len(man["versions"]) == 2  # each run appended a version

        listing = c.get("/v1/jobs", params={"schedule_id": sid}).json()
        assert [x["run_number"] for x in listing["items"]] == [2, 1]

    # schedules survive a restart
    app2 = create_app(cfg)
    with TestClient(app2) as c2:
        (s2,) = c2.get("/v1/schedules").json()
        assert s2["id"] == sid and s2["runs"] == 2 and s2["last_job_id"] == started[0]
        assert c2.delete(f"/v1/schedules/{sid}").status_code == 204
        assert c2.get("/v1/schedules").json() == []


def test_fast_cron_fires_from_the_scheduler_thread(tmp_path):
    data = tmp_path / "data"
    prose = textgen.prose_paragraphs(20, 3)
    _shard(data / "feed/a.parquet", prose, [f"a{i}" for i in range(20)])
    app = create_app(local_config(tmp_path))
    with TestClient(app) as c:
        sid = c.post("/v1/schedules", json={"cron": "* * * * * *", "spec": _template(False)}).json()["id"]
        deadline = time.time() + 30
        while time.time() < deadline and not c.get("/v1/jobs", params={"schedule_id": sid}).json()["items"]:
            time.sleep(0.2)
        items = c.get("/v1/jobs", params={"schedule_id": sid}).json()["items"]
        assert items, "the every-second schedule never fired"
        assert wait_state(c.get, items[-1]["id"])["state"] == "succeeded"
        time.sleep(2.5)  # more ticks: no new shards, so no more runs
        assert c.get("/v1/jobs", params={"schedule_id": sid}).json()["total"] == 1
        assert c.post(f"/v1/schedules/{sid}/trigger").json()["job_id"] is None
    shutil.rmtree(tmp_path / "home", ignore_errors=True)
