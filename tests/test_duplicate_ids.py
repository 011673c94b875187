"""Repeated user ids under `on_duplicate_ids: warn` never kill a barrier hours in: every
repeat is renamed `<id>#dup<k>` at ingest (the first occurrence keeps its id), so
exact_dedup, minhash_dedup, select_top and mix all see unique ids; under `fail` the job
stops before any step, naming them."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from curate.testing import textgen
from workers import JobFailed, read_output, run_pipeline


def _write(tmp_path):
    """Two files, 40 documents; ids b0000..b0029 plus repeats: b0003 three times in all,
    b0011 twice (once per file), and int-like text ids, as a real crawl export has them."""
    docs = textgen.prose_paragraphs(40, seed=11)
    ids = [f"b{i:04d}" for i in range(40)]
    ids[20], ids[21], ids[33] = "b0003", "b0003", "b0011"
    docs[25] = docs[2]  # an exact duplicate too
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": ids[:20], "text": docs[:20], "score": [float(i) for i in range(20)]}),
                   tmp_path / "in/a.parquet")
    pq.write_table(pa.table({"id": ids[20:], "text": docs[20:], "score": [float(i) for i in range(20, 40)]}),
                   tmp_path / "in/b.parquet")
    return ids


def _spec(tmp_path, policy="warn"):
    return {
        "name": "dupids",
        "settings": {"on_duplicate_ids": policy, "rows_per_shard": 10, "batch_size": 8},
        "inputs": {"docs": {"path": str(tmp_path / "in/*.parquet"), "domain": "web"}},
        "nodes": [
            {"id": "ex", "stage": "exact_dedup", "inputs": ["docs"]},
            {"id": "mh", "stage": "minhash_dedup", "inputs": ["ex"], "params": {"verify_jaccard": 0.8}},
            {"id": "top", "stage": "select_top", "inputs": ["mh"], "params": {"column": "score", "fraction_docs": 0.8}},
            {"id": "mix", "stage": "mix", "inputs": ["top"], "params": {"budget_tokens": 5000, "seed": 1}},
        ],
        "outputs": {"o": {"node": "mix", "path": str(tmp_path / "out")}},
    }


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_repeated_ids_are_renamed_and_every_barrier_runs(tmp_path, executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_local")
    _write(tmp_path)
    res = run_pipeline(_spec(tmp_path), executor=executor, job_dir=tmp_path / "job")
    dup = res.stats["nodes"]["docs"]["duplicate_ids"]
    assert dup == {"count": 3, "examples": ["b0003", "b0011"]}
    assert any("3 repeated id occurrence(s) renamed" in w for w in res.warnings)
    assert res.ledger["docs"]["in"] == res.ledger["docs"]["kept"] == 40
    # every id the barriers saw is unique; the repeats carry their occurrence number
    seen = pc.unique(pa.concat_arrays([
        read_output(tmp_path / "out").column("source_id").combine_chunks(),
        *(pq.read_table(f).column("id").combine_chunks() for f in (tmp_path / "job/rejects").rglob("part-*.parquet")),
    ])).to_pylist()
    assert len(seen) == 40
    assert {"b0003", "b0003#dup1", "b0003#dup2", "b0011", "b0011#dup1"} <= set(seen)
    ex = pq.read_table(next((tmp_path / "job/rejects/ex").glob("part-*.parquet")))
    assert ex.column("id").to_pylist() == ["b0025"] and ex.column("detail").to_pylist() == ["b0002"]


def test_renaming_is_the_same_on_both_executors(tmp_path, ray_local):
    _write(tmp_path)
    spec = _spec(tmp_path)
    run_pipeline(spec, executor="local", job_dir=tmp_path / "jl")
    local = read_output(tmp_path / "out")
    run_pipeline(spec, executor="ray", job_dir=tmp_path / "jr")
    assert read_output(tmp_path / "out").equals(local)


def test_under_fail_the_job_stops_before_any_step_naming_the_ids(tmp_path):
    _write(tmp_path)
    with pytest.raises(JobFailed, match=r"input 'docs' has 3 duplicate id value\(s\), e.g. \['b0003', 'b0011'\]"):
        run_pipeline(_spec(tmp_path, "fail"), job_dir=tmp_path / "job")
    assert not (tmp_path / "job/_done").exists()
