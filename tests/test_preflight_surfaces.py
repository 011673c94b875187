"""The preflight where users meet it: `curate validate`, `curate run` and the API."""

from __future__ import annotations

import yaml
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app
from tests.corpus import branch_join_spec, write_corpus
from tests.test_api_util import TOKEN, local_config, wait_state

runner = CliRunner()


def _write(tmp_path, spec: dict):
    p = tmp_path / "spec.yaml"
    p.write_text(yaml.safe_dump(spec))
    return p


def test_validate_and_run_refuse_a_typo_in_the_input_glob(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "data/sample")
    spec = branch_join_spec("data/sampel/*.parquet", "out/kept")
    p = _write(tmp_path, spec)
    r = runner.invoke(app, ["validate", str(p)])
    assert r.exit_code == 2
    assert "preflight failed" in r.output
    assert ("node 'docs', path: no files match 'data/sampel/*.parquet'; directory 'data/sampel' does not "
            "exist (did you mean 'data/sample'?)") in " ".join(r.output.split())
    assert "--no-preflight" in r.output
    r = runner.invoke(app, ["validate", str(p), "--no-preflight"])
    assert r.exit_code == 0 and "valid" in r.output
    r = runner.invoke(app, ["run", str(p), "--quiet"])
    assert r.exit_code == 2 and "no files match 'data/sampel/*.parquet'" in r.output
    assert not (tmp_path / "runs").exists()  # refused before the job directory is made

    spec["inputs"]["docs"]["path"] = "data/sample/*.parquet"
    p = _write(tmp_path, spec)
    r = runner.invoke(app, ["validate", str(p)])
    assert r.exit_code == 0 and "input docs: 3 files" in r.output


def test_run_reports_a_missing_model_before_any_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "data/sample/web")
    spec = {
        "name": "ppl",
        "inputs": {"web": {"path": "data/sample/web/*.parquet"}},
        "nodes": [
            {"id": "dedup", "stage": "exact_dedup", "inputs": ["web"]},
            {"id": "ppl", "stage": "perplexity_score", "inputs": ["dedup"],
             "params": {"model": "data/sample/lm/prose.arpa"}},
        ],
        "outputs": {"kept": {"node": "ppl", "path": "out/ppl"}},
    }
    r = runner.invoke(app, ["run", str(_write(tmp_path, spec)), "--quiet"])
    assert r.exit_code == 2
    assert "node 'ppl', params.model: file not found: 'data/sample/lm/prose.arpa'" in " ".join(r.output.split())
    assert not (tmp_path / "runs").exists()


def test_api_submit_and_validate_answer_422_with_problems_by_node(tmp_path):
    write_corpus(tmp_path / "data" / "in")
    cfg = local_config(tmp_path, api_token=TOKEN)
    spec = branch_join_spec("inn/*.parquet", "out/kept")  # relative: resolved under the data root
    with TestClient(create_app(cfg), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for url in ("/v1/validate", "/v1/jobs"):
            r = c.post(url, json=spec)
            assert r.status_code == 422, r.text
            body = r.json()
            assert body["detail"].startswith("preflight failed")
            assert body["problems"] == [{
                "node": "docs", "field": "path",
                "message": f"no files match '{tmp_path / 'data/inn/*.parquet'}'; directory "
                           f"'{tmp_path / 'data/inn'}' does not exist (did you mean '{tmp_path / 'data/in'}'?)",
            }]
        assert c.get("/v1/jobs").json()["items"] == []  # nothing was queued

        r = c.post("/v1/validate", params={"preflight": "false"}, json=spec)
        assert r.status_code == 200 and r.json()["input_files"] is None
        good = branch_join_spec("in/*.parquet", "out/kept")
        r = c.post("/v1/validate", json=good)
        assert r.status_code == 200 and r.json()["input_files"] == {"docs": 3}

        # Skipped at submit, the job is accepted and fails when it runs (the driver does not
        # preflight again: the service already decided).
        r = c.post("/v1/jobs", params={"preflight": "false"}, json=spec)
        assert r.status_code == 202, r.text
        j = wait_state(c.get, r.json()["id"])
        assert j["state"] == "failed" and "bad input shard" in j["error"]


def test_parameter_and_stage_typos_get_a_suggestion(tmp_path):
    write_corpus(tmp_path / "in", n_files=1)
    spec = {
        "inputs": {"docs": {"path": str(tmp_path / "in/*.parquet")}},
        "nodes": [
            {"id": "len", "stage": "length_filter", "inputs": ["docs"], "params": {"min_word": 5}},
            {"id": "dd", "stage": "exact_dedup", "inputs": ["len"], "params": {"qqq": 1}},
            {"id": "mh", "stage": "minhash_dedupe", "inputs": ["dd"]},
        ],
    }
    r = runner.invoke(app, ["validate", str(_write(tmp_path, spec))])
    text = " ".join(r.output.split())
    assert r.exit_code == 2
    assert "node 'len', params.min_word: unknown parameter 'min_word'; did you mean `min_words`?" in text
    assert "node 'dd', params.qqq: unknown parameter 'qqq'; exact_dedup takes normalize" in text
    assert "node 'mh', stage: unknown stage 'minhash_dedupe'; did you mean minhash_dedup?" in text

    r = runner.invoke(app, ["stages", "lenght_filter"])
    assert r.exit_code == 2 and "unknown stage 'lenght_filter'; did you mean length_filter" in r.output
    r = runner.invoke(app, ["stages", "zzzzzz"])
    assert r.exit_code == 2 and "known stages: " in r.output and "minhash_dedup" in r.output


def test_rerun_without_resume_says_resume_would_reuse_completed_steps(tmp_path, monkeypatch):
    from workers.completed_work import completed_work

    monkeypatch.chdir(tmp_path)
    write_corpus(tmp_path / "in")
    spec = branch_join_spec("in/*.parquet", "out/kept")
    spec["job_dir"] = "job"
    p = _write(tmp_path, spec)
    r = runner.invoke(app, ["run", str(p), "--quiet"])
    assert r.exit_code == 0 and "--resume" not in r.output  # a fresh job directory: nothing to say
    work = completed_work(tmp_path / "job")
    # 3 files of 60 rows, 50 rows per shard -> 6 input shards; dd (exact_dedup) is the one barrier
    assert work.fits == 1 and work.shards >= 6 and work.steps >= 2
    r = runner.invoke(app, ["run", str(p), "--quiet"])
    assert r.exit_code == 0
    notes = [line for line in r.output.splitlines() if "--resume" in line]
    assert notes == [(f"note: job directory job holds {work.describe()} from an earlier run; this run starts "
                     "over (--resume would reuse those that still match the spec)")]
    r = runner.invoke(app, ["run", str(p), "--quiet", "--resume"])
    assert r.exit_code == 0 and "--resume would" not in r.output
