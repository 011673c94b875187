"""Resume reuses exactly what is still valid: same results as a fresh run, no stale parts or state."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.corpus import write_corpus
from tests.specs import one_node_spec, part_rows
from workers import JobFailed, read_output, run_pipeline


def test_exact_dedup_refit_in_same_job_dir_does_not_reuse_stale_drops(tmp_path):
    """A long-lived process (API worker, reused Ray worker) reruns a job after the data
    changed: the refit rewrites the same state file names; apply must not use the old ones."""
    (tmp_path / "in").mkdir()
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), {"id": "dd", "stage": "exact_dedup", "inputs": ["docs"]})
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["same", "same", "other"]}), tmp_path / "in/x.parquet")
    run_pipeline(spec, job_dir=tmp_path / "job")
    assert read_output(tmp_path / "out").column("id").to_pylist() == ["a", "c"]
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["other", "same", "same"]}), tmp_path / "in/x.parquet")
    run_pipeline(spec, job_dir=tmp_path / "job")
    assert read_output(tmp_path / "out").column("id").to_pylist() == ["a", "b"]


def test_resume_after_an_input_file_is_removed_matches_a_fresh_run(tmp_path):
    write_corpus(tmp_path / "in", n_files=3)
    spec = {
        "inputs": {"docs": {"path": str(tmp_path / "in/*.parquet")}},
        "nodes": [
            {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}},
            {"id": "s", "stage": "sample", "inputs": ["l"], "params": {"fraction": 0.5}},
        ],
        "outputs": {"o": {"node": "l", "path": str(tmp_path / "out")}, "o2": {"node": "s", "path": str(tmp_path / "out2")}},
    }
    run_pipeline(spec, job_dir=tmp_path / "job")
    (tmp_path / "in/part-2.parquet").unlink()
    res = run_pipeline(spec, job_dir=tmp_path / "job", resume=True)
    fresh = dict(spec, outputs={"o": {"node": "l", "path": str(tmp_path / "f1")}, "o2": {"node": "s", "path": str(tmp_path / "f2")}})
    ref = run_pipeline(fresh, job_dir=tmp_path / "fresh")
    assert res.ledger == ref.ledger and res.ledger["docs"]["in"] == 120
    assert read_output(tmp_path / "out").equals(read_output(tmp_path / "f1"))
    assert read_output(tmp_path / "out2").equals(read_output(tmp_path / "f2"))
    assert part_rows(tmp_path / "job/rejects") == sum(n["rejected"] for n in res.ledger.values())


def test_resume_after_a_param_change_leaves_no_stale_rejects(tmp_path):
    write_corpus(tmp_path / "in", n_files=2)
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}}
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    first = run_pipeline(spec, job_dir=tmp_path / "job")
    assert first.ledger["l"]["rejected"] == 2
    spec["nodes"][0]["params"] = {"min_words": 1}
    res = run_pipeline(spec, job_dir=tmp_path / "job", resume=True)
    assert res.ledger["l"]["rejected"] == 0
    assert part_rows(tmp_path / "job/rejects/l") == 0
    assert part_rows(tmp_path / "job/rejects") == sum(n["rejected"] for n in res.ledger.values())


def test_resume_notices_a_file_rewritten_with_the_same_size_and_mtime(tmp_path):
    import os

    (tmp_path / "in").mkdir()
    f = tmp_path / "in/x.parquet"
    pq.write_table(pa.table({"text": ["alpha beta gamma", "delta epsilon zeta"]}), f)
    st = os.stat(f)
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    run_pipeline(spec, job_dir=tmp_path / "job")
    pq.write_table(pa.table({"text": ["alpha beta gammb", "delta epsilon zetb"]}), f)
    assert os.stat(f).st_size == st.st_size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    run_pipeline(spec, job_dir=tmp_path / "job", resume=True)
    assert sorted(read_output(tmp_path / "out").column("text").to_pylist()) == ["alpha beta gammb", "delta epsilon zetb"]


@pytest.mark.ray
def test_ray_resume_and_document_rejects_match_local(tmp_path, ray_local):
    """Resume and document-level quarantine were only tested on the local executor."""
    from tests.corpus import branch_join_spec

    write_corpus(tmp_path / "in")
    pq.write_table(pa.table({"text": ["fine words here and there", None, " ", "x" * 2_000]}), tmp_path / "in/q.parquet")
    spec = branch_join_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"))
    spec["settings"]["max_doc_bytes"] = 1000
    full = run_pipeline(spec, executor="ray", job_dir=tmp_path / "job")
    assert full.stats["nodes"]["docs"]["rejects_by_reason"] == {"null_text": 4, "empty_text": 4, "too_long": 1}
    ref = read_output(tmp_path / "out")
    done = sorted((tmp_path / "job/_done/len").glob("*.json"))
    victim = done[0]
    import json

    Path(json.loads(victim.read_text())["output"]).unlink()
    victim.unlink()
    kept = Path(json.loads(done[1].read_text())["output"])
    before = kept.stat().st_mtime_ns
    res = run_pipeline(spec, executor="ray", job_dir=tmp_path / "job", resume=True)
    assert kept.stat().st_mtime_ns == before  # not redone
    assert res.ledger == full.ledger and read_output(tmp_path / "out").equals(ref)
    local = dict(spec, outputs={"kept": {"node": "both", "path": str(tmp_path / "out_local")}})
    assert run_pipeline(local, job_dir=tmp_path / "jl").ledger == full.ledger
    assert read_output(tmp_path / "out_local").equals(ref)


def test_a_crash_before_a_shard_is_committed_leaves_no_record_a_resume_could_trust(tmp_path, monkeypatch):
    """The completion record is written only after the shard's parts are committed: a shard
    that died at its commit is redone on resume, never served from an older run's part of
    the same name."""
    from curate.parquet_io import ParquetParts

    write_corpus(tmp_path / "in", n_files=3)
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}}
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    first = run_pipeline(spec, job_dir=tmp_path / "job")  # parts of min_words=5 everywhere
    node["params"]["min_words"] = 63                      # about half the documents go: every shard differs
    real_commit, calls = ParquetParts.commit, []

    def dying_commit(self):
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk went away during the commit")
        return real_commit(self)

    monkeypatch.setattr(ParquetParts, "commit", dying_commit)
    with pytest.raises(JobFailed, match="disk went away"):
        run_pipeline(spec, job_dir=tmp_path / "job", resume=True)
    monkeypatch.setattr(ParquetParts, "commit", real_commit)
    resumed = run_pipeline(spec, job_dir=tmp_path / "job", resume=True)
    fresh = run_pipeline(one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "fresh-out"), node),
                         job_dir=tmp_path / "fresh")
    assert fresh.ledger["l"]["kept"] < first.ledger["l"]["kept"] - 30
    assert resumed.ledger == fresh.ledger
    assert read_output(tmp_path / "out").equals(read_output(tmp_path / "fresh-out"))
