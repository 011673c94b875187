"""Regression tests for defects found in the core review (one test per fix)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from cli.main import app
from tests.corpus import write_corpus
from workers import JobFailed, read_output, run_pipeline
from workers.ingest import ShardError


def _corrupt_parquet(path: Path) -> None:
    """A file whose footer reads fine but whose data pages are garbage."""
    texts = [f"document number {i} " * 40 for i in range(2000)]
    pq.write_table(pa.table({"text": texts}), path, row_group_size=500, compression="zstd")
    b = bytearray(path.read_bytes())
    for i in range(len(b) // 3, len(b) // 3 + 2000):
        b[i] = (b[i] * 7 + 13) & 0xFF
    path.write_bytes(bytes(b))
    assert pq.ParquetFile(path).metadata.num_rows == 2000  # the listing step accepts it


def _one_node_spec(inp: str, out: str, node: dict) -> dict:
    return {"inputs": {"docs": {"path": inp}}, "nodes": [node], "outputs": {"o": {"node": node["id"], "path": out}}}


def test_exact_dedup_refit_in_same_job_dir_does_not_reuse_stale_drops(tmp_path):
    """A long-lived process (API worker, reused Ray worker) reruns a job after the data
    changed: the refit rewrites the same state file names; apply must not use the old ones."""
    (tmp_path / "in").mkdir()
    spec = _one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), {"id": "dd", "stage": "exact_dedup", "inputs": ["docs"]})
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["same", "same", "other"]}), tmp_path / "in/x.parquet")
    run_pipeline(spec, job_dir=tmp_path / "job")
    assert read_output(tmp_path / "out").column("id").to_pylist() == ["a", "c"]
    pq.write_table(pa.table({"id": ["a", "b", "c"], "text": ["other", "same", "same"]}), tmp_path / "in/x.parquet")
    run_pipeline(spec, job_dir=tmp_path / "job")
    assert read_output(tmp_path / "out").column("id").to_pylist() == ["a", "b"]


def test_shard_error_survives_pickling():
    e = pickle.loads(pickle.dumps(ShardError("x.parquet", "truncated")))
    assert isinstance(e, ShardError) and e.path == "x.parquet" and e.problem == "truncated"
    assert str(e) == "x.parquet: truncated"


def test_threshold_type_mismatch_is_a_clear_error(tmp_path):
    write_corpus(tmp_path / "in", n_files=1)
    node = {"id": "th", "stage": "threshold_filter", "inputs": ["docs"], "params": {"column": "extra", "value": "abc"}}
    with pytest.raises(JobFailed) as ei:
        run_pipeline(_one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node), job_dir=tmp_path / "job")
    msg = str(ei.value)
    assert "threshold_filter 'th'" in msg and "column 'extra' of type int64" in msg
    assert "Traceback" not in msg and "File \"" not in msg


def test_cli_bad_shard_is_a_message_not_a_traceback(tmp_path):
    write_corpus(tmp_path / "in", n_files=1)
    (tmp_path / "in/zz.parquet").write_text("not parquet")
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}
    spec = _one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    spec["job_dir"] = str(tmp_path / "job")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    r = CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml"), "-q"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit)
    assert "job failed:" in r.output and "zz.parquet" in r.output


def test_cli_error_with_brackets_is_printed_verbatim(tmp_path):
    """Rich markup must not swallow or choke on '[...]' in paths and messages."""
    d = tmp_path / "[" / "odd]"  # the path contains "[/odd]", a rich closing tag
    d.mkdir(parents=True)
    (d / "a.parquet").write_text("not parquet")
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}
    spec = _one_node_spec(str(d / "a.parquet"), str(tmp_path / "out"), node)
    spec["job_dir"] = str(tmp_path / "job")
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    r = CliRunner().invoke(app, ["run", str(tmp_path / "s.yaml"), "-q"])
    assert r.exit_code == 1 and isinstance(r.exception, SystemExit), r.exception
    assert "[/odd]" in r.output.replace("\n", "")


def test_unreachable_ray_is_a_job_failure(monkeypatch):
    import workers.ray_exec as rx

    def boom(address=None, num_cpus=None):
        raise ConnectionError("could not reach GCS")

    monkeypatch.setattr(rx, "ensure_ray", boom)
    with pytest.raises(JobFailed, match="cannot start or connect to Ray at '10.0.0.1:6379'.*could not reach GCS"):
        rx.RayExecutor("10.0.0.1:6379")


@pytest.mark.ray
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_corrupt_data_pages_name_the_file_on_both_executors(tmp_path, executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_local")
    write_corpus(tmp_path / "in", n_files=2)
    _corrupt_parquet(tmp_path / "in/zz.parquet")
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}
    spec = _one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    with pytest.raises(ShardError) as ei:
        run_pipeline(spec, executor=executor, job_dir=tmp_path / "job")
    assert ei.value.path.endswith("zz.parquet") and "corrupt data" in ei.value.problem
    assert "Traceback" not in str(ei.value)
    spec["settings"] = {"on_bad_shard": "skip"}
    res = run_pipeline(spec, executor=executor, job_dir=tmp_path / "job2")
    assert [Path(s["path"]).name for s in res.stats["skipped_shards"]] == ["zz.parquet"]
    assert res.ledger["docs"]["in"] == 120


@pytest.mark.ray
def test_stage_error_on_ray_is_clear(tmp_path, ray_local):
    write_corpus(tmp_path / "in", n_files=1)
    node = {"id": "th", "stage": "threshold_filter", "inputs": ["docs"], "params": {"column": "extra", "value": "abc"}}
    with pytest.raises(JobFailed) as ei:
        run_pipeline(_one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node),
                     executor="ray", job_dir=tmp_path / "job")
    msg = str(ei.value)
    assert msg.startswith("threshold_filter 'th': cannot compare column 'extra'") and "RayTaskError" not in msg


def _validation_problems(spec: dict) -> list[str]:
    from curate.spec import SpecError, validate_spec

    with pytest.raises(SpecError) as ei:
        validate_spec(spec)
    return [str(p) for p in ei.value.problems]


def test_output_over_input_directory_is_rejected_and_input_survives(tmp_path):
    files = write_corpus(tmp_path / "in", n_files=2)  # named part-N.parquet, like outputs
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}
    spec = _one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "in"), node)
    probs = _validation_problems(spec)
    assert any("node 'o', path: output directory" in p and "overlaps input 'docs'" in p for p in probs)
    with pytest.raises(Exception):
        run_pipeline(spec, job_dir=tmp_path / "job")
    assert all(f.exists() for f in files)
    # An output inside a directory input would be ingested again by the next run.
    spec = _one_node_spec(str(tmp_path / "in"), str(tmp_path / "in/out"), node)
    assert any("overlaps input 'docs'" in p for p in _validation_problems(spec))


def test_two_outputs_in_one_directory_are_rejected(tmp_path):
    spec = {
        "inputs": {"docs": {"path": "x.parquet"}},
        "nodes": [
            {"id": "a", "stage": "sample", "inputs": ["docs"], "params": {"fraction": 0.5}},
            {"id": "b", "stage": "sample", "inputs": ["docs"], "params": {"fraction": 0.2}},
        ],
        "outputs": {"oa": {"node": "a", "path": str(tmp_path / "o")}, "ob": {"node": "b", "path": str(tmp_path / "o")}},
    }
    assert any("node 'ob', path: same path as output 'oa'" in p for p in _validation_problems(spec))


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".hidden", ""])
def test_ids_that_are_not_safe_directory_names_are_rejected(bad):
    spec = {
        "inputs": {"docs": {"path": "x.parquet"}},
        "nodes": [{"id": bad, "stage": "sample", "inputs": ["docs"], "params": {"fraction": 0.5}}],
    }
    assert any(f"node '{bad}', id: use letters" in p or "spec, id: use letters" in p for p in _validation_problems(spec))
    spec = {"inputs": {bad or "_": {"path": "x.parquet"}}, "nodes": []}
    if bad:
        assert any("id: use letters" in p for p in _validation_problems(spec))


def _rows(d: Path) -> int:
    return sum(pq.ParquetFile(f).metadata.num_rows for f in d.rglob("part-*.parquet"))


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
    assert _rows(tmp_path / "job/rejects") == sum(n["rejected"] for n in res.ledger.values())


def test_resume_after_a_param_change_leaves_no_stale_rejects(tmp_path):
    write_corpus(tmp_path / "in", n_files=2)
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}}
    spec = _one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    first = run_pipeline(spec, job_dir=tmp_path / "job")
    assert first.ledger["l"]["rejected"] == 2
    spec["nodes"][0]["params"] = {"min_words": 1}
    res = run_pipeline(spec, job_dir=tmp_path / "job", resume=True)
    assert res.ledger["l"]["rejected"] == 0
    assert _rows(tmp_path / "job/rejects/l") == 0
    assert _rows(tmp_path / "job/rejects") == sum(n["rejected"] for n in res.ledger.values())


def test_null_user_ids_are_quarantined_not_deduplicated_together(tmp_path):
    """Before: null ids passed ingest and exact_dedup treated every null-id row as one doc."""
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": ["a", None, None, "d"], "text": ["x y", "same text", "other text", "same text"]}),
                   tmp_path / "in/x.parquet")
    spec = _one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), {"id": "dd", "stage": "exact_dedup", "inputs": ["docs"]})
    res = run_pipeline(spec, job_dir=tmp_path / "job")
    assert res.stats["nodes"]["docs"]["rejects_by_reason"] == {"null_id": 2}
    assert res.ledger["dd"] == {"in": 2, "kept": 2, "rejected": 0, "copies_added": 0}
    rej = pq.read_table(next((tmp_path / "job/rejects/docs").glob("*.parquet")))
    assert sorted(rej.column("text").to_pylist()) == ["other text", "same text"]
    assert set(rej.column("detail").to_pylist()) == {"column 'id' is null"}


def test_an_input_can_be_an_output_on_its_own(tmp_path):
    """Before: an output naming an input with no consumer silently wrote nothing."""
    write_corpus(tmp_path / "in", n_files=2)
    spec = {"inputs": {"docs": {"path": str(tmp_path / "in/*.parquet")}}, "nodes": [],
            "outputs": {"raw": {"node": "docs", "path": str(tmp_path / "out")}}}
    res = run_pipeline(spec, job_dir=tmp_path / "job")
    assert res.ledger["docs"] == {"in": 120, "kept": 116, "rejected": 4, "copies_added": 0}
    out = read_output(tmp_path / "out")
    assert out.num_rows == 116 and len(set(out.column("id").to_pylist())) == 116


def test_ledger_checks_the_files_on_disk(tmp_path):
    from workers import LedgerError

    write_corpus(tmp_path / "in", n_files=2)
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}}
    spec = _one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    run_pipeline(spec, job_dir=tmp_path / "job")
    # A rejects file that lost rows (a missing file is redone by resume instead).
    f = next((tmp_path / "job/rejects/l").glob("part-*.parquet"))
    t = pq.read_table(f)
    pq.write_table(t.slice(0, t.num_rows - 1), f)
    with pytest.raises(LedgerError, match="node 'l': 1 rows in the rejects sink != rejected 2"):
        run_pipeline(spec, job_dir=tmp_path / "job", resume=True)


def _two_inputs(tmp_path: Path, a: pa.Table, b: pa.Table) -> dict:
    for d, t in (("a", a), ("b", b)):
        (tmp_path / d).mkdir()
        pq.write_table(t, tmp_path / d / "x.parquet")
    return {
        "inputs": {"a": {"path": str(tmp_path / "a/*.parquet"), "domain": "web"}, "b": {"path": str(tmp_path / "b/*.parquet")}},
        "nodes": [{"id": "u", "stage": "union", "inputs": ["a", "b"]}],
        "outputs": {"o": {"node": "u", "path": str(tmp_path / "out")}},
    }


def test_union_parts_share_one_schema(tmp_path):
    """Before: each branch's parts kept their own columns, so pyarrow.dataset / Ray readers
    of the output silently dropped `domain` and `extra` (taken from whichever file came first)."""
    import pyarrow.dataset as pads

    spec = _two_inputs(tmp_path, pa.table({"text": ["one two", "three four"], "extra": [1, 2]}),
                       pa.table({"text": ["five six", "seven eight"]}))
    run_pipeline(spec, job_dir=tmp_path / "job")
    schemas = {pq.read_schema(f).remove_metadata() for f in (tmp_path / "out").glob("part-*.parquet")}
    assert len(schemas) == 1
    rows = pads.dataset(str(tmp_path / "out"), format="parquet").to_table().to_pylist()
    by_text = {r["text"]: r for r in rows}
    assert by_text["one two"]["domain"] == "web" and by_text["one two"]["extra"] == 1
    assert by_text["five six"]["domain"] is None and by_text["five six"]["extra"] is None


def test_union_of_incompatible_columns_is_a_clear_error(tmp_path):
    spec = _two_inputs(tmp_path, pa.table({"text": ["one two"], "extra": [1]}), pa.table({"text": ["five six"], "extra": ["x"]}))
    with pytest.raises(JobFailed, match=r"node 'u': inputs \['a', 'b'\] cannot be joined: .*extra"):
        run_pipeline(spec, job_dir=tmp_path / "job")


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


def test_ids_shared_across_inputs_are_reported(tmp_path):
    """Before: only duplicates within one input were detected."""
    spec = _two_inputs(tmp_path, pa.table({"id": [0, 1, 2], "text": ["a b", "c d", "e f"]}),
                       pa.table({"id": [2, 3, 0], "text": ["g h", "i j", "k l"]}))
    spec["inputs"]["a"].pop("domain")
    res = run_pipeline(spec, job_dir=tmp_path / "job")
    assert any("inputs ['a', 'b'] share 2 id value(s), e.g. ['0', '2']" in w for w in res.warnings)
    assert res.stats["nodes"]["a"]["duplicate_ids"]["count"] == 0
    spec["settings"] = {"on_duplicate_ids": "fail"}
    with pytest.raises(JobFailed, match="share 2 id value"):
        run_pipeline(spec, job_dir=tmp_path / "job")


def test_duplicate_yaml_keys_are_an_error_with_a_line():
    from curate.spec import SpecError, load_spec_text

    with pytest.raises(SpecError, match="line 4, column 1: found duplicate key 'nodes'"):
        load_spec_text("name: a\nnodes: []\ninputs: {}\nnodes: [x]\n")
    assert load_spec_text("a: &x {b: 1}\nd: {<<: *x, b: 2}\n") == {"a": {"b": 1}, "d": {"b": 2}}  # merges still work


def test_spec_path_that_is_a_directory_is_a_spec_error(tmp_path):
    from curate.spec import SpecError, load_spec

    with pytest.raises(SpecError, match="not a file"):
        load_spec(tmp_path)


def test_join_of_different_text_columns_is_rejected():
    spec = {
        "inputs": {"a": {"path": "a.parquet"}, "b": {"path": "b.parquet", "text_column": "body"}},
        "nodes": [{"id": "u", "stage": "union", "inputs": ["a", "b"]}],
    }
    assert any("node 'u', inputs: joins inputs with different text columns (body, text)" in p
               for p in _validation_problems(spec))


def test_resume_notices_a_file_rewritten_with_the_same_size_and_mtime(tmp_path):
    import os

    (tmp_path / "in").mkdir()
    f = tmp_path / "in/x.parquet"
    pq.write_table(pa.table({"text": ["alpha beta gamma", "delta epsilon zeta"]}), f)
    st = os.stat(f)
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}
    spec = _one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    run_pipeline(spec, job_dir=tmp_path / "job")
    pq.write_table(pa.table({"text": ["alpha beta gammb", "delta epsilon zetb"]}), f)
    assert os.stat(f).st_size == st.st_size
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    run_pipeline(spec, job_dir=tmp_path / "job", resume=True)
    assert sorted(read_output(tmp_path / "out").column("text").to_pylist()) == ["alpha beta gammb", "delta epsilon zetb"]


def test_stats_record_the_spec_hash(tmp_path):
    write_corpus(tmp_path / "in", n_files=1)
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}}
    spec = _one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    h1 = run_pipeline(spec, job_dir=tmp_path / "j1").stats["job"]["spec_hash"]
    assert run_pipeline(spec, job_dir=tmp_path / "j1").stats["job"]["spec_hash"] == h1
    spec["nodes"][0]["params"]["min_words"] = 6
    assert run_pipeline(spec, job_dir=tmp_path / "j1").stats["job"]["spec_hash"] != h1


@pytest.mark.ray
def test_ray_executor_leaves_the_drivers_data_context_alone(tmp_path, ray_local):
    import ray.data

    ctx = ray.data.DataContext.get_current()
    ctx.execution_options.preserve_order = True
    write_corpus(tmp_path / "in", n_files=1)
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}}
    run_pipeline(_one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node), executor="ray", job_dir=tmp_path / "j")
    try:
        assert ray.data.DataContext.get_current().execution_options.preserve_order is True
    finally:
        ctx.execution_options.preserve_order = False


def test_duplicate_ids_fail_before_any_work(tmp_path):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": ["a", "b", "a"], "text": ["one two", "three four", "five six"]}), tmp_path / "in/x.parquet")
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}
    spec = _one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    spec["settings"] = {"on_duplicate_ids": "fail"}
    with pytest.raises(JobFailed, match="input 'docs' has 1 duplicate id"):
        run_pipeline(spec, job_dir=tmp_path / "job")
    assert not (tmp_path / "job/_done").exists() and not list((tmp_path / "out").glob("part-*"))
