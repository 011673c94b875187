"""The core CLI: run, validate, stages (through typer's runner, in-process)."""

from __future__ import annotations

import json

import yaml
from typer.testing import CliRunner

from cli.main import app
from tests.corpus import branch_join_spec, write_corpus

runner = CliRunner()


def test_run_validate_and_resume(tmp_path):
    write_corpus(tmp_path / "in")
    spec = branch_join_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"))
    spec["job_dir"] = str(tmp_path / "job")
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(spec))
    r = runner.invoke(app, ["validate", str(p)])
    assert r.exit_code == 0 and "valid" in r.output and "step dd" in r.output
    r = runner.invoke(app, ["run", str(p), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "ledger" in r.output and "exact_duplicate=5" in r.output and "output kept:" in r.output
    ledger = json.loads((tmp_path / "job/ledger.json").read_text())
    r = runner.invoke(app, ["run", str(p), "--quiet", "--resume"])
    assert r.exit_code == 0
    assert json.loads((tmp_path / "job/ledger.json").read_text()) == ledger


def test_invalid_spec_exit_code_2_lists_problems(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("inputs: {a: {path: x.parquet}}\nnodes:\n  - {id: n, stage: nope, inputs: [a]}\n  - {id: m, stage: sample, inputs: [zz], params: {fraction: 3}}\n")
    r = runner.invoke(app, ["validate", str(p)])
    assert r.exit_code == 2
    assert "unknown stage 'nope'" in r.output and "unknown input or node 'zz'" in r.output and "fraction" in r.output
    p.write_text("inputs: [unclosed\n")
    r = runner.invoke(app, ["run", str(p), "--quiet"])
    assert r.exit_code == 2 and "line" in r.output


def test_stages_catalogue(tmp_path):
    r = runner.invoke(app, ["stages", "--json"])
    assert r.exit_code == 0
    cat = {c["name"]: c for c in json.loads(r.output)}
    assert {"length_filter", "exact_dedup", "sample", "union", "threshold_filter"} <= set(cat)
    assert all("params_schema" in c and c["kind"] in ("map", "barrier") for c in cat.values())
    r = runner.invoke(app, ["stages", "no_such_stage"])
    assert r.exit_code == 2
