"""Outputs, joins and the job's own files: where parts go, what a join may combine, what the ledger checks."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.corpus import write_corpus
from tests.specs import one_node_spec, two_inputs, validation_problems
from workers import JobFailed, read_output, run_pipeline


def test_output_over_input_directory_is_rejected_and_input_survives(tmp_path):
    files = write_corpus(tmp_path / "in", n_files=2)  # named part-N.parquet, like outputs
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 1}}
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "in"), node)
    probs = validation_problems(spec)
    assert any("node 'o', path: output directory" in p and "overlaps input 'docs'" in p for p in probs)
    with pytest.raises(Exception):
        run_pipeline(spec, job_dir=tmp_path / "job")
    assert all(f.exists() for f in files)
    # An output inside a directory input would be ingested again by the next run.
    spec = one_node_spec(str(tmp_path / "in"), str(tmp_path / "in/out"), node)
    assert any("overlaps input 'docs'" in p for p in validation_problems(spec))


def test_two_outputs_in_one_directory_are_rejected(tmp_path):
    spec = {
        "inputs": {"docs": {"path": "x.parquet"}},
        "nodes": [
            {"id": "a", "stage": "sample", "inputs": ["docs"], "params": {"fraction": 0.5}},
            {"id": "b", "stage": "sample", "inputs": ["docs"], "params": {"fraction": 0.2}},
        ],
        "outputs": {"oa": {"node": "a", "path": str(tmp_path / "o")}, "ob": {"node": "b", "path": str(tmp_path / "o")}},
    }
    assert any("node 'ob', path: same path as output 'oa'" in p for p in validation_problems(spec))


def test_an_input_can_be_an_output_on_its_own(tmp_path):
    """Before: an output naming an input with no consumer silently wrote nothing."""
    write_corpus(tmp_path / "in", n_files=2)
    spec = {"inputs": {"docs": {"path": str(tmp_path / "in/*.parquet")}}, "nodes": [],
            "outputs": {"raw": {"node": "docs", "path": str(tmp_path / "out")}}}
    res = run_pipeline(spec, job_dir=tmp_path / "job")
    assert res.ledger["docs"] == {"in": 120, "kept": 116, "rejected": 4, "copies_added": 0}
    out = read_output(tmp_path / "out")
    assert out.num_rows == 116 and len(set(out.column("id").to_pylist())) == 116


def test_union_parts_share_one_schema(tmp_path):
    """Before: each branch's parts kept their own columns, so pyarrow.dataset / Ray readers
    of the output silently dropped `domain` and `extra` (taken from whichever file came first)."""
    import pyarrow.dataset as pads

    spec = two_inputs(tmp_path, pa.table({"text": ["one two", "three four"], "extra": [1, 2]}),
                       pa.table({"text": ["five six", "seven eight"]}))
    run_pipeline(spec, job_dir=tmp_path / "job")
    schemas = {pq.read_schema(f).remove_metadata() for f in (tmp_path / "out").glob("part-*.parquet")}
    assert len(schemas) == 1
    rows = pads.dataset(str(tmp_path / "out"), format="parquet").to_table().to_pylist()
    by_text = {r["text"]: r for r in rows}
    assert by_text["one two"]["domain"] == "web" and by_text["one two"]["extra"] == 1
    assert by_text["five six"]["domain"] is None and by_text["five six"]["extra"] is None


def test_union_of_incompatible_columns_is_a_clear_error(tmp_path):
    spec = two_inputs(tmp_path, pa.table({"text": ["one two"], "extra": [1]}), pa.table({"text": ["five six"], "extra": ["x"]}))
    with pytest.raises(JobFailed, match=r"node 'u': inputs \['a', 'b'\] cannot be joined: .*extra"):
        run_pipeline(spec, job_dir=tmp_path / "job")


def test_join_of_different_text_columns_is_rejected():
    spec = {
        "inputs": {"a": {"path": "a.parquet"}, "b": {"path": "b.parquet", "text_column": "body"}},
        "nodes": [{"id": "u", "stage": "union", "inputs": ["a", "b"]}],
    }
    assert any("node 'u', inputs: joins inputs with different text columns (body, text)" in p
               for p in validation_problems(spec))


def test_ledger_checks_the_files_on_disk(tmp_path):
    from workers import LedgerError

    write_corpus(tmp_path / "in", n_files=2)
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}}
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
    run_pipeline(spec, job_dir=tmp_path / "job")
    # A rejects file that lost rows (a missing file is redone by resume instead).
    f = next((tmp_path / "job/rejects/l").glob("part-*.parquet"))
    t = pq.read_table(f)
    pq.write_table(t.slice(0, t.num_rows - 1), f)
    with pytest.raises(LedgerError, match="node 'l': 1 rows in the rejects sink != rejected 2"):
        run_pipeline(spec, job_dir=tmp_path / "job", resume=True)


def test_stats_record_the_spec_hash(tmp_path):
    write_corpus(tmp_path / "in", n_files=1)
    node = {"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}}
    spec = one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node)
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
    run_pipeline(one_node_spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out"), node), executor="ray", job_dir=tmp_path / "j")
    try:
        assert ray.data.DataContext.get_current().execution_options.preserve_order is True
    finally:
        ctx.execution_options.preserve_order = False
