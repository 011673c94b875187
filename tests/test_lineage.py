"""`explain` on a job that runs every stage kind, checked against the ledger and the files."""

from __future__ import annotations

import glob
import json
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from curate.lineage import explain, format_explanation
from tests.test_report import DOMAINS, run_job


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    return run_job(tmp_path_factory.mktemp("lineage"))


def _table(pattern: str) -> pa.Table:
    files = sorted(glob.glob(pattern))
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="permissive")


def test_rejected_documents_name_the_right_stage_and_reason(job):
    jd = Path(job.job_dir)
    stats = job.stats
    checked: Counter = Counter()
    for node, ns in stats["nodes"].items():
        for reason, n in ns["rejects_by_reason"].items():
            rej = _table(str(jd / "rejects" / node / "part-*.parquet"))
            ids = rej.filter(pc.equal(rej.column("reason"), reason)).column("id").to_pylist()
            assert len(ids) == n  # the ledger and the rejects sink agree
            for doc in ids[:: max(1, len(ids) // 3)][:3]:  # a spread-out sample per (node, reason)
                e = explain(str(jd), doc)
                assert e["status"] == "rejected", format_explanation(e)
                assert e["rejected"]["node"] == node and e["rejected"]["reason"] == reason
                assert e["rejected"]["stage"] == ns["stage"]
                assert e["path"][-1]["node"] == node and e["path"][-1]["status"] == "rejected"
                # the path is upstream of the rejecting node, in DAG order, from one input
                assert e["path"][0]["node"] in DOMAINS
                assert [p["node"] for p in e["path"] if p["node"] not in DOMAINS] == [
                    "u",
                    "len",
                    "ppl",
                    "dsir",
                    "dd",
                    "top",
                    "mx",
                ][: len(e["path"]) - 1]
                checked[(node, reason)] += 1
    # every reject reason of the ledger was exercised (ingest, map, barrier and mix rejects)
    assert set(checked) == {(n, r) for n, ns in stats["nodes"].items() for r in ns["rejects_by_reason"]}
    assert {
        "null_text",
        "empty_text",
        "too_few_words",
        "threshold",
        "exact_duplicate",
        "below_threshold",
        "mix_not_sampled",
    } <= {r for _, r in checked}


def test_scores_dedup_and_mix_details(job):
    jd = Path(job.job_dir)
    # a document the ppl threshold rejected: its perplexity is reported at that stage
    rej = _table(str(jd / "rejects" / "ppl" / "part-*.parquet"))
    e = explain(str(jd), rej.column("id")[0].as_py())
    assert e["path"][-1]["scores"]["perplexity"] == pytest.approx(rej.column("perplexity")[0].as_py())
    assert e["path"][-1]["scores"]["perplexity"] > 900
    # an exact duplicate: the id kept in its place is a document that made it past dedup
    dup = _table(str(jd / "rejects" / "dd" / "part-*.parquet"))
    e = explain(str(jd), dup.column("id")[0].as_py())
    assert e["dedup"]["removed_as_duplicate"] and e["dedup"]["kept_id"] == dup.column("detail")[0].as_py()
    kept_id = e["dedup"]["kept_id"]
    kept_e = explain(str(jd), kept_id)
    # where that document ended, read from the files: rejected after dedup, or in the output
    rejected_ids = {
        n: _table(str(jd / "rejects" / n / "part-*.parquet")).column("id").to_pylist() for n in ("top", "mx")
    }
    ended = [n for n, ids in rejected_ids.items() if kept_id in ids]
    out_ids = _table(str(Path(job.outputs["kept"]) / "part-*.parquet")).column("id").to_pylist()
    assert len(ended) + (kept_id in out_ids) == 1
    assert kept_e["status"] == ("rejected" if ended else "kept")
    assert (kept_e["rejected"] or {}).get("node") == (ended[0] if ended else None)
    dd_step = next(p for p in kept_e["path"] if p["node"] == "dd")
    assert dd_step["status"] == "passed"
    # a mixed document with copies: bucket, repeat count and the ids of its copies
    out = _table(str(Path(job.outputs["kept"]) / "part-*.parquet"))
    copies = out.filter(pc.greater(out.column("mix_copy"), 0))
    assert copies.num_rows > 0
    cid = copies.column("id")[0].as_py()
    src = copies.column("source_id")[0].as_py()
    e = explain(str(jd), cid)
    assert e["status"] == "kept" and e["source_id"] == src and e["outputs"] == ["kept"]
    n_copies = int(pc.sum(pc.equal(out.column("source_id"), src)).as_py())
    assert e["mix"]["repeat"] == n_copies == len(e["mix"]["copy_ids"])
    assert e["mix"]["bucket"] == copies.column("domain")[0].as_py()
    assert set(e["mix"]["copy_ids"]) == {src} | {f"{src}#r{k}" for k in range(1, n_copies)}
    # the quality score of a kept document is reported at the select_top stage
    top = next(p for p in e["path"] if p["node"] == "top")
    assert "quality" in top["scores"] and top["status"] == "passed"
    assert e["dedup"] is not None and e["dedup"]["cluster_size"] >= 1  # dup_cluster_size carried through
    # sampled out by mixing
    mrej = _table(str(jd / "rejects" / "mx" / "part-*.parquet"))
    e = explain(str(jd), mrej.column("id")[0].as_py())
    assert e["mix"]["repeat"] == 0 and e["mix"]["bucket"] in DOMAINS


def test_unknown_id_and_cli(job):
    from typer.testing import CliRunner

    from cli.main import app

    e = explain(str(job.job_dir), "no-such-doc")
    assert e["status"] == "not_found" and "neither" in e["message"]
    rej = _table(str(Path(job.job_dir) / "rejects" / "len" / "part-*.parquet"))
    doc = rej.column("id")[0].as_py()
    r = CliRunner().invoke(app, ["explain", str(job.job_dir), doc])
    assert r.exit_code == 0 and "REJECTED at node 'len'" in r.output and "too_few_words" in r.output
    r = CliRunner().invoke(app, ["explain", str(job.job_dir), doc, "--json"])
    assert json.loads(r.output)["rejected"]["reason"] == "too_few_words"
    r = CliRunner().invoke(app, ["explain", str(job.job_dir), "no-such-doc"])
    assert r.exit_code == 1


@pytest.mark.ray
def test_explain_and_report_agree_on_ray(job, tmp_path, ray_local):
    """The same job on the Ray executor: identical lineage answers, a report is written."""
    rjob = run_job(tmp_path, executor="ray")
    assert (Path(rjob.job_dir) / "report.html").exists()
    assert json.loads((Path(rjob.job_dir) / "summary.json").read_text())["job"]["executor"] == "ray"
    sample = []
    for node in ("web", "len", "ppl", "dd", "top", "mx"):
        files = sorted(glob.glob(str(Path(job.job_dir) / "rejects" / node / "part-*.parquet")))
        if files:
            sample.append(pq.read_table(files[0], columns=["id"]).column("id")[0].as_py())
    out = _table(str(Path(job.outputs["kept"]) / "part-*.parquet"))
    sample += out.column("id").to_pylist()[:3]
    for doc in sample:
        a, b = explain(str(job.job_dir), doc), explain(str(rjob.job_dir), doc)
        assert (a["status"], a["rejected"], a.get("mix"), a.get("dedup")) == (
            b["status"],
            b["rejected"],
            b.get("mix"),
            b.get("dedup"),
        )
        assert [p["node"] for p in a["path"]] == [p["node"] for p in b["path"]]


def test_explain_result_is_strict_json(tmp_path):
    """NaN scores, bytes and timestamps come back JSON-safe (the API returns the dict as is)."""
    import datetime

    from workers import run_pipeline

    p = tmp_path / "in" / "a.parquet"
    p.parent.mkdir()
    pq.write_table(
        pa.table(
            {
                "text": ["one two three", "x"],
                "quality": [float("nan"), 0.5],
                "blob": [b"\xff\x00", b"ok"],
                "ts": [datetime.datetime(2024, 1, 1), datetime.datetime(2024, 1, 2)],
            }
        ),
        p,
    )
    spec = {
        "name": "j",
        "seed": 1,
        "inputs": {"d": {"path": str(p)}},
        "nodes": [{"id": "len", "stage": "length_filter", "inputs": ["d"], "params": {"min_words": 2}}],
        "outputs": {"kept": {"node": "len", "path": str(tmp_path / "out")}},
    }
    res = run_pipeline(spec, job_dir=tmp_path / "job")
    for doc in (
        _table(str(tmp_path / "out" / "part-*.parquet")).column("id").to_pylist()
        + _table(str(tmp_path / "job" / "rejects" / "len" / "part-*.parquet")).column("id").to_pylist()
    ):
        e = explain(str(res.job_dir), doc)
        json.loads(json.dumps(e, allow_nan=False))  # raises on NaN / non-JSON values
        assert e["status"] in ("kept", "rejected")
