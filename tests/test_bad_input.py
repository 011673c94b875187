"""Bad input gets a clear error or a quarantine row, never a traceback or a late failure."""

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
from tests.specs import one_node_spec, two_inputs, validation_problems
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


def test_shard_error_survives_pickling():
    e = pickle.loads(pickle.dumps(ShardError("x.parquet", "truncated")))
    assert isinstance(e, ShardError) and e.path == "x.parquet" and e.problem == "truncated"
    assert str(e) == "x.parquet: truncated"


def test_threshold_type_mismatch_is_a_clear_error(tmp_path):
    write_corpus(tmp_path / "in", n_files=1)
    node = {"id": "th", "stage": "threshold_filter", "inputs": ["docs"], "params": {"column": "extra", "value": "abc"}}
    with pytest.raises(JobFailed) as ei:
        run_pipeline(one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node), job_dir=tmp_path / "job")
    msg = str(ei.value)
    assert "threshold_filter 'th'" in msg and "column 'extra' of type int64" in msg
    assert "Traceback" not in msg and "File \"" not in msg


def test_cli_bad_shard_is_a_message_not_a_traceback(tmp_path):
    write_corpus(tmp_path / "in", n_files=1)
    (tmp_path / "in/zz.parquet").write_text("not parquet")
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
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
    spec = one_node_spec(str(d / "a.parquet"), str(tmp_path / "out"), node)
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
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
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
        run_pipeline(one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node),
                     executor="ray", job_dir=tmp_path / "job")
    msg = str(ei.value)
    assert msg.startswith("threshold_filter 'th': cannot compare column 'extra'") and "RayTaskError" not in msg


def test_null_user_ids_are_quarantined_not_deduplicated_together(tmp_path):
    """Before: null ids passed ingest and exact_dedup treated every null-id row as one doc."""
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": ["a", None, None, "d"], "text": ["x y", "same text", "other text", "same text"]}),
                   tmp_path / "in/x.parquet")
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), {"id": "dd", "stage": "exact_dedup", "inputs": ["docs"]})
    res = run_pipeline(spec, job_dir=tmp_path / "job")
    assert res.stats["nodes"]["docs"]["rejects_by_reason"] == {"null_id": 2}
    assert res.ledger["dd"] == {"in": 2, "kept": 2, "rejected": 0, "copies_added": 0}
    rej = pq.read_table(next((tmp_path / "job/rejects/docs").glob("*.parquet")))
    assert sorted(rej.column("text").to_pylist()) == ["other text", "same text"]
    assert set(rej.column("detail").to_pylist()) == {"column 'id' is null"}


@pytest.mark.parametrize("bad", ["../escape", "a/b", ".hidden", ""])
def test_ids_that_are_not_safe_directory_names_are_rejected(bad):
    spec = {
        "inputs": {"docs": {"path": "x.parquet"}},
        "nodes": [{"id": bad, "stage": "sample", "inputs": ["docs"], "params": {"fraction": 0.5}}],
    }
    assert any(f"node '{bad}', id: use letters" in p or "spec, id: use letters" in p for p in validation_problems(spec))
    spec = {"inputs": {bad or "_": {"path": "x.parquet"}}, "nodes": []}
    if bad:
        assert any("id: use letters" in p for p in validation_problems(spec))


def test_duplicate_yaml_keys_are_an_error_with_a_line():
    from curate.spec import SpecError, load_spec_text

    with pytest.raises(SpecError, match="line 4, column 1: found duplicate key 'nodes'"):
        load_spec_text("name: a\nnodes: []\ninputs: {}\nnodes: [x]\n")
    assert load_spec_text("a: &x {b: 1}\nd: {<<: *x, b: 2}\n") == {"a": {"b": 1}, "d": {"b": 2}}  # merges still work


def test_spec_path_that_is_a_directory_is_a_spec_error(tmp_path):
    from curate.spec import SpecError, load_spec

    with pytest.raises(SpecError, match="not a file"):
        load_spec(tmp_path)


def test_ids_shared_across_inputs_are_reported(tmp_path):
    """Before: only duplicates within one input were detected."""
    spec = two_inputs(tmp_path, pa.table({"id": [0, 1, 2], "text": ["a b", "c d", "e f"]}),
                       pa.table({"id": [2, 3, 0], "text": ["g h", "i j", "k l"]}))
    spec["inputs"]["a"].pop("domain")
    res = run_pipeline(spec, job_dir=tmp_path / "job")
    assert any("inputs ['a', 'b'] share 2 id value(s), e.g. ['0', '2']" in w for w in res.warnings)
    assert res.stats["nodes"]["a"]["duplicate_ids"]["count"] == 0
    # b's repeats of a's ids are renamed; every id is text, so the union still joins
    ids = sorted(read_output(tmp_path / "out").column("id").to_pylist())
    assert ids == ["0", "0#dup1", "1", "2", "2#dup1", "3"]
    spec["settings"] = {"on_duplicate_ids": "fail"}
    with pytest.raises(JobFailed, match="share 2 id value"):
        run_pipeline(spec, job_dir=tmp_path / "job")


def test_duplicate_ids_fail_before_any_work(tmp_path):
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": ["a", "b", "a"], "text": ["one two", "three four", "five six"]}), tmp_path / "in/x.parquet")
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    spec["settings"] = {"on_duplicate_ids": "fail"}
    with pytest.raises(JobFailed, match="input 'docs' has 1 duplicate id"):
        run_pipeline(spec, job_dir=tmp_path / "job")
    assert not (tmp_path / "job/_done").exists() and not list((tmp_path / "out").glob("part-*"))
