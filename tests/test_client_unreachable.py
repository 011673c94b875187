"""The client CLI without a server: one line naming the URL and `curate serve`, exit 1."""

from __future__ import annotations

import socket

import pytest
from typer.testing import CliRunner

from api.raycluster import free_port
from cli.main import app

runner = CliRunner()


def _commands(spec: str) -> list[list[str]]:
    return [["submit", spec], ["submit", spec, "--wait"], ["jobs"], ["status", "j123"], ["cancel", "j123"],
            ["retry", "j123"]]


@pytest.fixture
def spec_file(tmp_path):
    p = tmp_path / "spec.yaml"
    p.write_text("inputs: {a: {path: x.parquet}}\nnodes: []\n")
    return str(p)


def test_connection_refused_is_one_line_for_every_client_command(spec_file, monkeypatch):
    url = f"http://127.0.0.1:{free_port()}"  # bound and released: nothing listens there
    monkeypatch.delenv("CURATE_SERVER", raising=False)
    for args in _commands(spec_file):
        r = runner.invoke(app, [*args, "--server", url])
        assert r.exit_code == 1, (args, r.output)
        assert r.exception is None or isinstance(r.exception, SystemExit), (args, r.exception)
        lines = r.output.strip().splitlines()
        assert len(lines) == 1, (args, r.output)
        assert lines[0].startswith(f"curate server not reachable at {url}: cannot connect"), lines[0]
        assert "`curate serve`" in lines[0] and "Traceback" not in r.output
    # the URL comes from CURATE_SERVER when --server is not given, and the line names the request
    monkeypatch.setenv("CURATE_SERVER", url + "/")
    r = runner.invoke(app, ["status", "j123"])
    assert r.exit_code == 1 and f"[GET {url}/v1/jobs/j123?include_spec=false]" in r.output


def test_a_server_that_never_answers_times_out_in_one_line(monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)  # connections complete in the backlog; nothing ever reads or replies
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        monkeypatch.setenv("CURATE_CLIENT_TIMEOUT", "0.3")
        r = runner.invoke(app, ["jobs", "--server", url])
    assert r.exit_code == 1
    assert r.output.strip().splitlines() == [
        (f"curate server not reachable at {url}: no answer within 0.3s [GET {url}/v1/jobs?limit=20]. Start one "
        "with `curate serve`, or point --server / CURATE_SERVER at a running server.")
    ]
