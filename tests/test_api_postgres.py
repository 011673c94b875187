"""The job store on Postgres (CURATE_DB_URL): migrations, jobs, schedules, a job end to end.

Starts a throw-away PostgreSQL server (tests/services.py: initdb + pg_ctl as the `postgres`
user) on a free loopback port; skipped when the server binaries or psycopg are not installed.
"""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from api import migrations
from api.app import create_app
from api.store import Store
from tests.corpus import branch_join_spec, write_corpus
from tests.services import PG_BINDIRS, postgres_server
from tests.test_api_util import local_config, wait_state

pytest.importorskip("psycopg", reason="psycopg not installed (pip install 'psycopg[binary]')")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not PG_BINDIRS, reason="PostgreSQL server binaries not installed (apt-get install postgresql)"
    ),
]


@pytest.fixture(scope="module")
def pg_url():
    with postgres_server() as pg:
        yield pg.url("postgres")


def test_store_on_postgres(pg_url):
    s = Store(pg_url)
    assert s.version == migrations.LATEST == migrations.current_version(s.engine)
    s.create_job(job_id="p1", name="a", spec={"x": [1, 2]}, job_dir="/j/p1", outputs={"o": "/o"})
    time.sleep(0.01)
    s.create_job(
        job_id="p2", name="b", spec={"x": 3}, job_dir="/j/p2", outputs={}, schedule_id="s", run_number=1
    )
    assert s.transition(
        "p1", "running", "go", expect=["queued"], pid=123, progress={"steps": [{"step": "a"}]}
    )
    assert not s.transition("p1", "running", "again", expect=["queued"])
    assert s.get_job("p1")["progress"] == {"steps": [{"step": "a"}]} and s.get_job("p1")["pid"] == 123
    rows, total = s.list_jobs(limit=1)
    assert total == 2 and rows[0]["id"] == "p2"
    assert s.list_jobs(state="running")[1] == 1 and s.count_by_state()["queued"] == 1
    s.create_schedule(
        sched_id="s", name="n", cron="0 3 * * *", template={"t": 1}, next_run_at=1.0, state_dir="/i"
    )
    assert s.get_schedule("s")["state_dir"] == "/i"  # the column renamed by migration 4
    s.add_shards("s", "p2", [("/a.parquet", "xxh3:1"), ("/b.parquet", "xxh3:2")])
    assert s.seen_shards("s", ["queued"]) == {("/a.parquet", "xxh3:1"), ("/b.parquet", "xxh3:2")}
    assert s.seen_shards("s", ["succeeded"]) == set()
    assert s.delete_schedule("s") and s.get_schedule("s") is None
    s.close()
    assert Store(pg_url).version == migrations.LATEST  # re-open: nothing to migrate


def test_job_end_to_end_on_postgres(pg_url, tmp_path):
    write_corpus(tmp_path / "data" / "in")
    cfg = local_config(tmp_path, db_url=pg_url)
    with TestClient(create_app(cfg)) as c:
        jid = c.post("/v1/jobs", json=branch_join_spec("in/*.parquet", "out/pg")).json()["id"]
        j = wait_state(c.get, jid)
        assert j["state"] == "succeeded", j["error"]
        assert j["ledger"]["docs"]["in"] == 180
        assert [h["state"] for h in j["history"]] == ["queued", "running", "succeeded"]
