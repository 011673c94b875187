"""The `curate sample-data` command."""

from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from cli.sample_commands import register


def _app() -> typer.Typer:
    app = typer.Typer()
    register(app)

    @app.command("noop")
    def noop() -> None:  # a second command so typer keeps sub-command names
        """Nothing."""

    return app


def test_sample_data_command_writes_corpus(tmp_path):
    res = CliRunner().invoke(_app(), ["sample-data", str(tmp_path / "s"), "--size-mb", "0.3", "--seed", "2"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((tmp_path / "s" / "manifest.json").read_text())
    assert manifest["seed"] == 2
    for domain in ("web", "code_docs", "prose", "readme", "legal"):
        assert domain in res.output
        assert list((tmp_path / "s" / domain).glob("part-*.parquet"))
    assert str(manifest["total_rows"]) in res.output


def test_sample_data_command_bad_target(tmp_path):
    (tmp_path / "file").write_text("x")
    res = CliRunner().invoke(_app(), ["sample-data", str(tmp_path / "file"), "--size-mb", "0.1"])
    assert res.exit_code == 1
    assert "sample-data failed" in res.output
    res = CliRunner().invoke(_app(), ["sample-data", str(tmp_path / "d"), "--size-mb", "0"])
    assert res.exit_code == 2 and "--size-mb" in res.output
