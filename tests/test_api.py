"""The REST service in-process: jobs end to end (local executor), bad input, store, sandbox."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from fastapi.testclient import TestClient

from api import migrations
from api.app import create_app
from api.config import serve_host
from api.security import PathNotAllowed, check_path, sandbox_spec
from api.store import Store
from api.views import iso
from tests.corpus import branch_join_spec, write_corpus
from tests.test_api_util import TOKEN, local_config, wait_state


@pytest.fixture
def env(tmp_path):
    write_corpus(tmp_path / "data" / "in")
    cfg = local_config(tmp_path, api_token=TOKEN, max_body_bytes=64 * 1024)
    app = create_app(cfg)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c, tmp_path, app


ISO_MS_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def _spec(tmp: Path, out: str = "out/kept") -> dict:
    return branch_join_spec("in/*.parquet", out)


def test_job_end_to_end_ledger_history_rejects_report_metrics(env):
    c, tmp, _ = env
    r = c.post("/v1/jobs", json=_spec(tmp))
    assert r.status_code == 202, r.text
    jid = r.json()["id"]
    j = wait_state(c.get, jid)
    assert j["state"] == "succeeded", j["error"]
    # Same ledger as the core's own test of this spec and corpus.
    assert j["ledger"]["docs"]["in"] == 180
    assert j["ledger"]["dd"]["rejected"] == 5
    for nid, rec in j["ledger"].items():
        assert rec["in"] == rec["kept"] + rec["rejected"], nid
    assert [h["state"] for h in j["history"]] == ["queued", "running", "succeeded"]
    assert j["outputs"]["kept"] == str(tmp / "data/out/kept")
    kept = sum(pq.ParquetFile(f).metadata.num_rows for f in (tmp / "data/out/kept").glob("part-*.parquet"))
    assert kept == j["ledger"]["both"]["kept"] > 0
    assert (
        not (tmp / "data/out/kept/INCOMPLETE").exists()
        and not Path(j["artifacts"]["job_dir"], "INCOMPLETE").exists()
    )
    assert j["duration_s"] > 0 and j["spec"]["inputs"]["docs"]["path"] == str(tmp / "data/in/*.parquet")
    assert {s["step"] for s in j["progress"]} >= {"len", "dd"}

    rej = c.get(f"/v1/jobs/{jid}/rejects", params={"reason": "exact_duplicate", "limit": 3}).json()
    assert rej["count"] == 3 and {x["reason"] for x in rej["items"]} == {"exact_duplicate"}
    assert rej["reasons"]["exact_duplicate"] == 5 and rej["reasons"]["null_text"] == 3
    assert c.get(f"/v1/jobs/{jid}/rejects", params={"reason": "no_such_reason"}).json()["count"] == 0

    rep = c.get(f"/v1/jobs/{jid}/report")
    assert (
        rep.status_code == 200 and "text/html" in rep.headers["content-type"] and "<html" in rep.text.lower()
    )

    m = c.get("/metrics").text
    assert 'curate_jobs{state="succeeded"} 1.0' in m
    assert "curate_docs_processed_total 180.0" in m
    assert 'curate_stage_duration_seconds_count{stage="exact_dedup"}' in m

    listing = c.get("/v1/jobs", params={"state": "succeeded"}).json()
    assert listing["total"] == 1 and listing["items"][0]["id"] == jid
    # one timestamp format in details, history and the list
    stamps = [j[k] for k in ("created_at", "started_at", "finished_at")] + [h["at"] for h in j["history"]]
    stamps += [listing["items"][0][k] for k in ("created_at", "started_at", "finished_at")]
    assert all(ISO_MS_Z.match(t) for t in stamps), stamps
    assert listing["items"][0]["created_at"] == j["created_at"]
    assert c.get("/v1/jobs", params={"state": "failed"}).json()["total"] == 0


def test_yaml_body_list_pagination_newest_first(env):
    c, tmp, _ = env
    ids = []
    for i in range(3):
        body = yaml.safe_dump(dict(_spec(tmp, f"out/k{i}"), name=f"j{i}"))
        r = c.post("/v1/jobs", content=body, headers={"Content-Type": "application/yaml"})
        assert r.status_code == 202, r.text
        ids.append(r.json()["id"])
        time.sleep(0.01)
    p1 = c.get("/v1/jobs", params={"limit": 2}).json()
    assert [x["id"] for x in p1["items"]] == ids[::-1][:2] and p1["total"] == 3 and p1["next_offset"] == 2
    p2 = c.get("/v1/jobs", params={"limit": 2, "offset": 2}).json()
    assert [x["id"] for x in p2["items"]] == [ids[0]] and p2["next_offset"] is None
    for i in ids:
        assert wait_state(c.get, i)["state"] == "succeeded"


def test_validate_stages_health(env):
    c, tmp, _ = env
    r = c.post("/v1/validate", json=_spec(tmp))
    assert r.status_code == 200 and r.json()["valid"] is True
    assert r.json()["spec"]["outputs"]["kept"]["path"] == str(tmp / "data/out/kept")
    cat = c.get("/v1/stages").json()
    names = {s["name"] for s in cat}
    assert {"length_filter", "exact_dedup"} <= names
    assert "min_words" in next(s for s in cat if s["name"] == "length_filter")["params_schema"]["properties"]
    assert c.get("/healthz").json() == {"status": "ok"}
    ready = c.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"]["db"]["ok"]
    oa = c.get("/openapi.json").json()
    assert "PipelineSpec" in oa["components"]["schemas"] and "/v1/jobs/{job_id}/cancel" in oa["paths"]


# -- bad input: always a 4xx with a clear message ------------------------------------------------
def test_bad_input_is_4xx_with_clear_message(env):
    c, tmp, _ = env
    good = _spec(tmp)

    r = c.post("/v1/jobs", content=b'{"name": "x", "inputs": {', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "malformed JSON" in r.json()["detail"]
    r = c.post("/v1/jobs", content=b"name: [unclosed\n  - x: :", headers={"Content-Type": "application/yaml"})
    assert r.status_code == 400 and "YAML" in r.json()["detail"]
    r = c.post("/v1/jobs", content=b"", headers={"Content-Type": "application/yaml"})
    assert r.status_code == 400 and "empty" in r.json()["detail"]
    r = c.post("/v1/jobs", content=b"[1, 2]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "object" in r.json()["detail"]

    bad = json.loads(json.dumps(good))
    bad["nodes"][0]["stage"] = "lenght_filter"
    bad["nodes"][1]["params"] = {"bogus": 1}
    bad["nodes"][2]["params"] = {"fraction": 7}
    r = c.post("/v1/jobs", json=bad)
    assert r.status_code == 422
    probs = r.json()["problems"]
    by_node = {p["node"]: p for p in probs}
    assert (
        "unknown stage 'lenght_filter'" in by_node["len"]["message"]
        and "length_filter" in by_node["len"]["message"]
    )
    assert "bogus" in by_node["dd"]["field"]
    assert "fraction" in by_node["a"]["field"]

    for path, why in [
        ("/etc/*.parquet", "outside"),
        ("in/../../../etc/passwd", "outside"),
        ("s3://bucket/x", "outside"),
    ]:
        bad = json.loads(json.dumps(good))
        bad["inputs"]["docs"]["path"] = path
        r = c.post("/v1/jobs", json=bad)
        assert r.status_code == 403 and why in r.json()["detail"], (path, r.text)
    bad = json.loads(json.dumps(good))
    bad["outputs"]["kept"]["path"] = "/tmp/elsewhere"
    r = c.post("/v1/jobs", json=bad)
    assert r.status_code == 403 and "outputs.kept.path" in r.json()["detail"]

    # symlink escape: a link inside the root pointing outside
    outside = tmp / "outside"
    write_corpus(outside, n_files=1)
    os.symlink(outside, tmp / "data" / "link")
    bad = json.loads(json.dumps(good))
    bad["inputs"]["docs"]["path"] = "link/*.parquet"
    r = c.post("/v1/jobs", json=bad)
    assert r.status_code == 403 and "outside the data roots" in r.json()["detail"]
    os.symlink(outside / "part-0.parquet", tmp / "data" / "in" / "sneaky.parquet")
    r = c.post("/v1/jobs", json=good)
    assert r.status_code == 403 and "sneaky.parquet" in r.json()["detail"]
    os.unlink(tmp / "data" / "in" / "sneaky.parquet")

    r = c.post("/v1/jobs", json=good, headers={"Authorization": ""})
    assert r.status_code == 401 and "missing bearer token" in r.json()["detail"]
    r = c.post("/v1/jobs", json=good, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and "invalid" in r.json()["detail"]

    for path in ("/v1/jobs/nope", "/v1/jobs/nope/report", "/v1/jobs/nope/rejects", "/v1/jobs/nope/explain/x"):
        r = c.get(path)
        assert r.status_code == 404 and "no job with id 'nope'" in r.json()["detail"]
    assert c.post("/v1/jobs/nope/cancel").status_code == 404
    assert c.post("/v1/jobs/nope/retry").status_code == 404
    assert c.delete("/v1/schedules/nope").status_code == 404

    big = dict(good, description="x" * 70_000)
    r = c.post("/v1/jobs", json=big)
    assert r.status_code == 413 and "limit" in r.json()["detail"]

    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    r = c.post("/v1/validate", content=chunks(), headers={"Content-Type": "application/yaml"})
    assert r.status_code == 413

    r = c.post("/v1/schedules", json={"name": "s", "cron": "every tuesday", "spec": good})
    assert r.status_code == 422 and "invalid cron expression" in r.json()["detail"]
    r = c.post("/v1/schedules", json={"name": "s", "cron": "61 * * * *", "spec": good})
    assert r.status_code == 422
    r = c.get("/v1/jobs", params={"state": "bogus"})
    assert r.status_code == 422

    # cancelling / retrying a finished job
    jid = c.post("/v1/jobs", json=good).json()["id"]
    assert wait_state(c.get, jid)["state"] == "succeeded"
    r = c.post(f"/v1/jobs/{jid}/cancel")
    assert r.status_code == 409 and "already succeeded" in r.json()["detail"]
    r = c.post(f"/v1/jobs/{jid}/retry")
    assert r.status_code == 409
    r = c.get(f"/v1/jobs/{jid}/explain/doc-that-does-not-exist")
    assert r.status_code == 404 and "not found" in r.json()["detail"]
    dup = c.get(f"/v1/jobs/{jid}/rejects", params={"reason": "exact_duplicate", "limit": 1}).json()["items"][
        0
    ]
    ex = c.get(f"/v1/jobs/{jid}/explain/{dup['id']}")
    assert (
        ex.status_code == 200 and ex.json()["status"] == "rejected" and ex.json()["rejected"]["node"] == "dd"
    )


def test_failed_job_reports_error_and_marks_outputs_incomplete(env):
    c, tmp, _ = env
    (tmp / "data" / "junk").mkdir()
    (tmp / "data" / "junk" / "bad.parquet").write_bytes(b"this is not parquet")
    spec = dict(_spec(tmp), inputs={"docs": {"path": "junk/*.parquet"}})
    jid = c.post("/v1/jobs", json=spec).json()["id"]
    j = wait_state(c.get, jid)
    assert j["state"] == "failed" and "bad.parquet" in j["error"]
    assert Path(j["artifacts"]["job_dir"], "INCOMPLETE").exists()


def test_cancel_queued_job(tmp_path):
    write_corpus(tmp_path / "data" / "in")
    cfg = local_config(tmp_path, max_jobs=0)  # nothing ever launches
    with TestClient(create_app(cfg)) as c:
        jid = c.post("/v1/jobs", json=_spec(tmp_path)).json()["id"]
        assert c.get(f"/v1/jobs/{jid}").json()["state"] == "queued"
        r = c.post(f"/v1/jobs/{jid}/cancel")
        assert r.status_code == 200 and r.json()["state"] == "cancelled"
        assert [h["state"] for h in r.json()["history"]] == ["queued", "cancelled"]
        # retry a cancelled job: back to queued, resuming
        assert c.post(f"/v1/jobs/{jid}/retry").json()["state"] == "queued"


# -- units ------------------------------------------------------------------------------------------
def test_iso_is_utc_milliseconds_with_z():
    assert iso(None) is None
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1_700_000_000.5) == "2023-11-14T22:13:20.500Z"
    assert iso(1_700_000_000.0421) == "2023-11-14T22:13:20.042Z"
    assert iso(1_700_000_000.9999) == "2023-11-14T22:13:20.999Z"  # truncated, never the next second
    assert ISO_MS_Z.match(iso(time.time()))


def test_migrations_upgrade_an_old_database(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    from api.store import make_engine

    eng = make_engine(url)
    assert migrations.migrate(eng, target=1) == 1
    assert migrations.current_version(eng) == 1
    eng.dispose()
    s = Store(url)  # opens and upgrades
    assert s.version == migrations.LATEST == migrations.current_version(s.engine)
    row = s.create_job(
        job_id="j1", name="n", spec={"a": 1}, job_dir="/x", outputs={}, schedule_id="s1", run_number=1
    )
    assert s.get_job("j1")["schedule_id"] == "s1" and row["spec_hash"] == s.get_job("j1")["spec_hash"]
    assert s.transition("j1", "running", "go", expect=["queued"])
    assert not s.transition("j1", "running", "again", expect=["queued"])
    assert [e["state"] for e in s.job_events("j1")] == ["queued", "running"]
    s.close()
    assert Store(url).version == migrations.LATEST  # idempotent


def test_path_sandbox(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    roots = [str(root), "s3://bucket/curate"]
    check_path(str(root / "a" / "x.parquet"), roots, "w")
    check_path(str(root / "a" / ".." / "b"), roots, "w")  # .. that stays inside is fine
    check_path("s3://bucket/curate/in/*.parquet", roots, "w")
    for bad in (
        str(root / ".." / "x"),
        "/etc/passwd",
        "s3://bucket/curate/../other",
        "s3://bucket/curatex/a",
        "s3://other/curate",
        "gs://bucket/curate/x",
        "file:///etc/passwd",
        "relative/path",
    ):
        with pytest.raises(PathNotAllowed):
            check_path(bad, roots, "w")
    spec = {
        "inputs": {"a": {"path": ["a/x.parquet", "a/y.parquet"]}},
        "outputs": {"o": {"node": "n", "path": "out"}},
        "nodes": [
            {
                "id": "n",
                "stage": "fasttext_score",
                # model_path is typed as a read path; label and column are plain strings
                "params": {"model_path": "m/model.bin", "label": "a/b", "column": "doc"},
            }
        ],
    }
    sandbox_spec(spec, roots, str(root))
    assert spec["inputs"]["a"]["path"] == [str(root / "a/x.parquet"), str(root / "a/y.parquet")]
    assert spec["outputs"]["o"]["path"] == str(root / "out")
    assert spec["nodes"][0]["params"] == {
        "model_path": str(root / "m/model.bin"),
        "label": "a/b",
        "column": "doc",
    }
    with pytest.raises(PathNotAllowed):
        sandbox_spec({"nodes": [{"id": "n", "stage": "minhash_dedup", "params": {"against_index": "/var/idx"}}]},
                     roots, str(root))
    # a parameter is a path because its schema says so, whatever its name
    with pytest.raises(PathNotAllowed, match="nodes.d.params.target"):
        sandbox_spec({"nodes": [{"id": "d", "stage": "dsir_resample", "params": {"target": "/etc/t.parquet"}}]},
                     roots, str(root))


def test_serve_binds_loopback_without_token():
    assert serve_host("0.0.0.0", None)[0] == "127.0.0.1"
    assert "loopback only" in serve_host("0.0.0.0", None)[1]
    assert serve_host("127.0.0.1", None) == ("127.0.0.1", serve_host("127.0.0.1", None)[1])
    assert "loopback only" in serve_host("127.0.0.1", None)[1]
    assert serve_host("0.0.0.0", "tok") == ("0.0.0.0", None)


def test_readyz_reports_unreachable_ray(tmp_path):
    from api.raycluster import free_port

    cfg = local_config(tmp_path, executor="ray", embedded_ray=False, ray_address=f"127.0.0.1:{free_port()}")
    c = TestClient(create_app(cfg, start=False))
    r = c.get("/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["db"]["ok"] is True and r.json()["checks"]["ray"]["error"] == "unreachable"
    # mutating routes answer 503 (not 500) while the service is not started
    assert c.post("/v1/schedules", json={"cron": "0 3 * * *", "spec": {}}).status_code == 503
