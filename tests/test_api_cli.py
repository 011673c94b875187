"""The CLI client against a live server: submit --wait, jobs, status, cancel, retry; serve guard."""

from __future__ import annotations

import json

import pytest
import typer
import yaml
from typer.testing import CliRunner

from cli.service_commands import register
from tests.corpus import branch_join_spec, write_corpus
from tests.test_api_util import TOKEN, Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli")
    write_corpus(tmp / "data" / "in")
    env = {
        "CURATE_HOME": str(tmp / "home"),
        "CURATE_DATA_ROOTS": str(tmp / "data"),
        "CURATE_RAY_ADDRESS": "none",
        "CURATE_API_TOKEN": TOKEN,
        "CURATE_POLL_S": "0.1",
    }
    s = Server(env, tmp / "server.log").start()
    yield s, tmp
    s.stop()


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)
    return app


def test_cli_submit_wait_jobs_status_cancel(live, monkeypatch):
    s, tmp = live
    monkeypatch.setenv("CURATE_SERVER", s.url)
    monkeypatch.chdir(tmp / "data")  # relative spec paths resolve against the client's cwd on loopback
    spec_file = tmp / "data" / "spec.yaml"
    spec_file.write_text(yaml.safe_dump(branch_join_spec("in/*.parquet", "out/cli")))
    runner = CliRunner()
    app = _app()

    r = runner.invoke(app, ["submit", str(spec_file), "--wait"])  # no token: 401, clear message
    assert r.exit_code == 1 and "401" in r.output and "bearer token" in r.output

    monkeypatch.setenv("CURATE_API_TOKEN", TOKEN)
    r = runner.invoke(app, ["submit", str(spec_file), "--wait"])
    assert r.exit_code == 0, r.output
    assert "[running]" in r.output or "[queued]" in r.output
    done = json.loads(r.output[r.output.index("{") :])
    assert done["state"] == "succeeded" and done["outputs"]["kept"] == str(tmp / "data/out/cli")
    jid = done["id"]

    r = runner.invoke(app, ["jobs", "--state", "succeeded"])
    assert r.exit_code == 0 and jid in r.output
    r = runner.invoke(app, ["status", jid])
    assert r.exit_code == 0 and json.loads(r.output)["ledger"]["docs"]["in"] == 180
    r = runner.invoke(app, ["cancel", jid])
    assert r.exit_code == 1 and "409" in r.output and "already succeeded" in r.output
    r = runner.invoke(app, ["status", "nope"])
    assert r.exit_code == 1 and "404" in r.output

    bad = branch_join_spec("in/*.parquet", "out/cli")
    bad["nodes"][0]["params"] = {"min_words": -1}
    spec_file.write_text(yaml.safe_dump(bad))
    r = runner.invoke(app, ["submit", str(spec_file)])
    assert r.exit_code == 1 and "422" in r.output and "node 'len'" in r.output and "min_words" in r.output
