"""The core executors: same outputs on both, ledger, resume, stable ids, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.spec import SpecError
from tests.corpus import branch_join_spec, write_corpus
from workers import JobFailed, read_output, run_pipeline
from workers.ingest import ShardError


def _run(tmp_path: Path, spec: dict, executor: str = "local", name: str = "job", **kw):
    return run_pipeline(spec, executor=executor, job_dir=tmp_path / name, **kw)


def _check_ledger(stats: dict) -> None:
    for nid, ns in stats["nodes"].items():
        assert ns["in"] == ns["kept"] + ns["rejected"], nid


def test_local_branch_join_ledger_and_rejects(tmp_path):
    write_corpus(tmp_path / "in")
    spec = branch_join_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"))
    res = _run(tmp_path, spec)
    st = res.stats["nodes"]
    _check_ledger(res.stats)
    assert st["docs"]["in"] == 180
    assert st["docs"]["rejects_by_reason"] == {"null_text": 3, "empty_text": 3}
    assert st["len"]["rejects_by_reason"] == {"too_few_words": 3}
    # in-file duplicate x3 files, plus the upper-cased copy of doc 0 in files 1 and 2
    assert st["dd"]["rejects_by_reason"] == {"exact_duplicate": 5}
    assert st["both"]["in"] == st["a"]["kept"] + st["b"]["kept"]
    out = read_output(tmp_path / "out")
    assert out.num_rows == st["both"]["kept"]
    assert set(out.column("domain").to_pylist()) == {"prose"}
    assert out.column("extra").type == pa.int64()  # other columns pass through
    rej = pq.read_table(next((tmp_path / "job/rejects/dd").glob("*.parquet")))
    assert set(rej.column("stage").to_pylist()) == {"dd"} and "detail" in rej.column_names
    total_rejects = sum(pq.ParquetFile(f).metadata.num_rows for f in (tmp_path / "job/rejects").rglob("*.parquet"))
    assert total_rejects == sum(ns["rejected"] for ns in st.values())
    assert json.loads((tmp_path / "job/ledger.json").read_text())["dd"]["rejected"] == 5


def test_rerun_is_byte_identical_and_ids_ignore_shard_grouping(tmp_path):
    write_corpus(tmp_path / "in")
    spec = branch_join_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out1"))
    _run(tmp_path, spec, name="j1")
    first = {p.name: p.read_bytes() for p in (tmp_path / "out1").glob("part-*.parquet")}
    _run(tmp_path, spec, name="j1")
    again = {p.name: p.read_bytes() for p in (tmp_path / "out1").glob("part-*.parquet")}
    assert first == again
    spec2 = dict(spec, settings={"rows_per_shard": 1000, "batch_size": 7}, outputs={"kept": {"node": "both", "path": str(tmp_path / "out2")}})
    _run(tmp_path, spec2, name="j2")
    a, b = read_output(tmp_path / "out1"), read_output(tmp_path / "out2")
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    assert a.column("text").to_pylist() == b.column("text").to_pylist()


@pytest.mark.ray
def test_ray_and_local_give_same_rows(tmp_path, ray_local):
    write_corpus(tmp_path / "in")
    local = branch_join_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out_local"))
    remote = branch_join_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out_ray"))
    r1 = _run(tmp_path, local, name="jl")
    r2 = _run(tmp_path, remote, executor="ray", name="jr")
    assert r1.ledger == r2.ledger
    a, b = read_output(tmp_path / "out_local"), read_output(tmp_path / "out_ray")
    assert a.equals(b)
    la = {p.name: p.read_bytes() for p in (tmp_path / "out_local").glob("part-*")}
    lb = {p.name: p.read_bytes() for p in (tmp_path / "out_ray").glob("part-*")}
    assert la == lb


def test_resume_skips_completed_shards_and_matches(tmp_path):
    write_corpus(tmp_path / "in")
    spec = branch_join_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"))
    full = _run(tmp_path, spec)
    ref = read_output(tmp_path / "out")
    job = tmp_path / "job"
    # Simulate a crash in step "a": one shard never committed, fit of dd survived.
    done = sorted((job / "_done/a").glob("*.json"))
    victim = json.loads(done[0].read_text())
    Path(victim["output"]).unlink()
    done[0].unlink()
    keep_rec = done[1]
    before = Path(json.loads(keep_rec.read_text())["output"]).stat().st_mtime_ns
    res = _run(tmp_path, spec, resume=True)
    assert Path(json.loads(keep_rec.read_text())["output"]).stat().st_mtime_ns == before
    assert read_output(tmp_path / "out").equals(ref)
    assert res.ledger == full.ledger


def test_bad_shards_fail_naming_the_file_or_skip(tmp_path):
    write_corpus(tmp_path / "in", n_files=2)
    (tmp_path / "in/zz-not.parquet").write_text("this is not parquet")
    good = (tmp_path / "in/part-0.parquet").read_bytes()
    (tmp_path / "in/zz-trunc.parquet").write_bytes(good[: len(good) // 2])
    pq.write_table(pa.table({"body": ["x"]}), tmp_path / "in/zz-nocol.parquet")
    pq.write_table(pa.table({"text": [1, 2]}), tmp_path / "in/zz-int.parquet")
    spec = branch_join_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"))
    with pytest.raises(ShardError) as ei:
        _run(tmp_path, spec)
    msg = str(ei.value)
    assert "zz-not.parquet" in msg and "zz-trunc.parquet" in msg
    assert "missing text column 'text'" in msg and "has type int64" in msg
    spec["settings"]["on_bad_shard"] = "skip"
    res = _run(tmp_path, spec)
    skipped = {Path(s["path"]).name for s in res.stats["skipped_shards"]}
    assert skipped == {"zz-not.parquet", "zz-trunc.parquet", "zz-nocol.parquet", "zz-int.parquet"}
    assert res.stats["nodes"]["docs"]["in"] == 120
    assert any("skipped bad shard" in w for w in res.warnings)


def test_document_level_problems_become_rejects(tmp_path):
    big = "word " * (11 * 1024 * 1024 // 5)  # ~11 MB, over the 10 MB default
    huge = "x" * (50 * 1024 * 1024)  # 50 MB single token
    texts = ["a fine document with several words in it", None, "", "  \t\n", big, huge]
    pq.write_table(pa.table({"text": texts}), tmp_path / "d.parquet")
    pq.write_table(pa.table({"text": pa.array([b"ok bytes doc here", b"\xff\xfe bad"], pa.binary())}), tmp_path / "e.parquet")
    spec = {
        "inputs": {"docs": {"path": str(tmp_path / "*.parquet")}},
        "nodes": [{"id": "len", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}],
        "outputs": {"o": {"node": "len", "path": str(tmp_path / "out")}},
    }
    res = _run(tmp_path, spec)
    r = res.stats["nodes"]["docs"]["rejects_by_reason"]
    assert r == {"null_text": 1, "empty_text": 2, "too_long": 2, "invalid_utf8": 1}
    out = read_output(tmp_path / "out")
    assert sorted(out.column("text").to_pylist()) == ["a fine document with several words in it", "ok bytes doc here"]


def test_duplicate_input_ids_are_reported(tmp_path):
    pq.write_table(pa.table({"id": ["a", "b", "a", "c"], "text": ["one two", "three four", "five six", "seven"]}), tmp_path / "x.parquet")
    spec = {
        "inputs": {"docs": {"path": str(tmp_path / "x.parquet")}},
        "nodes": [{"id": "s", "stage": "sample", "inputs": ["docs"], "params": {"fraction": 1.0}}],
        "outputs": {"o": {"node": "s", "path": str(tmp_path / "out")}},
    }
    res = _run(tmp_path, spec)
    assert res.stats["nodes"]["docs"]["duplicate_ids"] == {"count": 1, "examples": ["a"]}
    assert any("duplicate id" in w for w in res.warnings)
    spec["settings"] = {"on_duplicate_ids": "fail"}
    with pytest.raises(JobFailed, match="duplicate id"):
        _run(tmp_path, spec)


def test_invalid_spec_raises_before_running(tmp_path):
    with pytest.raises(SpecError):
        _run(tmp_path, {"inputs": {"a": {"path": "x"}}, "nodes": [{"id": "n", "stage": "nope", "inputs": ["a"]}]})
    assert not (tmp_path / "job").exists()


def test_ids_differ_across_inputs_with_the_same_layout(tmp_path):
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
        pq.write_table(pa.table({"text": ["same words here", "other words there"]}), tmp_path / d / "part-0.parquet")
    spec = {
        "inputs": {"a": {"path": str(tmp_path / "a/*.parquet")}, "b": {"path": str(tmp_path / "b/*.parquet")}},
        "nodes": [{"id": "u", "stage": "union", "inputs": ["a", "b"]}],
        "outputs": {"o": {"node": "u", "path": str(tmp_path / "out")}},
    }
    res = _run(tmp_path, spec)
    ids = read_output(tmp_path / "out").column("id").to_pylist()
    assert len(ids) == 4 and len(set(ids)) == 4
    assert res.ledger["u"]["in"] == 4


def test_remote_output_is_uploaded_via_fsspec(tmp_path):
    import fsspec

    write_corpus(tmp_path / "in", n_files=1)
    spec = branch_join_spec(str(tmp_path / "in/*.parquet"), "memory://curate-test/out")
    res = _run(tmp_path, spec)
    fs = fsspec.filesystem("memory")
    parts = [p for p in fs.ls("/curate-test/out", detail=False) if "part-" in p]
    assert res.outputs["kept"] == "memory://curate-test/out"
    with fs.open(parts[0], "rb") as f:
        assert pq.read_table(f).num_rows > 0
    assert sum(pq.read_table(fs.open(p, "rb")).num_rows for p in parts) == res.ledger["both"]["kept"]


def test_resume_redoes_a_shard_whose_rejects_file_was_lost(tmp_path):
    write_corpus(tmp_path / "in")
    spec = branch_join_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"))
    full = _run(tmp_path, spec)
    lost = sorted((tmp_path / "job/rejects/docs").glob("part-*.parquet"))[0]
    lost.unlink()
    res = _run(tmp_path, spec, resume=True)
    assert lost.exists()
    assert res.ledger == full.ledger
