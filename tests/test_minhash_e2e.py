"""minhash_dedup through real pipelines: local and Ray executors agree, refresh via index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.testing.neardup import make_corpus, score_removals
from tests.minhash_guarantees import check_run
from workers import read_output, run_pipeline


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(800, seed=31)


def _write(root: Path, t: pa.Table, nfiles: int) -> str:
    root.mkdir(parents=True, exist_ok=True)
    for k, idx in enumerate(np.array_split(np.arange(t.num_rows), nfiles)):
        pq.write_table(t.take(pa.array(idx, pa.int64())), root / f"part-{k}.parquet", row_group_size=64)
    return str(root / "*.parquet")


def _spec(glob: str, out: Path, params: dict, batch: int = 128) -> dict:
    return {
        "name": "near-dedup",
        "seed": 5,
        "settings": {"batch_size": batch},
        "inputs": {"docs": {"path": glob, "text_column": "text"}},
        "nodes": [{"id": "near", "stage": "minhash_dedup", "inputs": ["docs"], "params": params}],
        "outputs": {"kept": {"node": "near", "path": str(out)}},
    }


def _check(res, corpus, out: Path) -> pa.Table:
    st = res.stats["nodes"]["near"]
    assert st["in"] == len(corpus.ids) == st["kept"] + st["rejected"]
    assert set(st["rejects_by_reason"]) == {"near_duplicate"}
    kept = read_output(out)
    removed = set(corpus.ids) - set(kept.column("id").to_pylist())
    m = score_removals(corpus, removed, 0.8)
    assert m["precision"] >= 0.99 and m["recall"] >= 0.9
    assert {"dup_cluster", "dup_cluster_size", "dup_kept"} <= set(kept.column_names)
    return kept


def test_local_pipeline(tmp_path, corpus):
    glob = _write(tmp_path / "in", corpus.table(), 4)
    res = run_pipeline(_spec(glob, tmp_path / "out", {"verify_jaccard": 0.8}), executor="local",
                       job_dir=tmp_path / "job")
    _check(res, corpus, tmp_path / "out")


@pytest.mark.ray
@pytest.mark.slow
def test_ray_matches_local(tmp_path, corpus, ray_local):
    params = {"verify_jaccard": 0.8, "keep": "longest"}
    g1 = _write(tmp_path / "in1", corpus.table(), 2)
    g2 = _write(tmp_path / "in2", corpus.table(), 5)  # different shard grouping
    r1 = run_pipeline(_spec(g1, tmp_path / "o1", params, 64), executor="local", job_dir=tmp_path / "j1")
    r2 = run_pipeline(_spec(g2, tmp_path / "o2", params, 200), executor="ray", job_dir=tmp_path / "j2")
    k1, k2 = _check(r1, corpus, tmp_path / "o1"), _check(r2, corpus, tmp_path / "o2")
    cols = ["id", "text", "dup_cluster", "dup_cluster_size"]
    assert k1.select(cols).equals(k2.select(cols))


def test_refresh_against_index(tmp_path, corpus):
    t = corpus.table()
    idx = tmp_path / "index"
    g1 = _write(tmp_path / "snap1", t.slice(0, 500), 2)
    g2 = _write(tmp_path / "snap2", t.slice(250, 550), 3)
    p1 = {"verify_jaccard": 0.8, "write_index": str(idx)}
    run_pipeline(_spec(g1, tmp_path / "o1", p1), executor="local", job_dir=tmp_path / "j1")
    p2 = {"verify_jaccard": 0.8, "against_index": str(idx), "write_index": str(idx)}
    r2 = run_pipeline(_spec(g2, tmp_path / "o2", p2), executor="local", job_dir=tmp_path / "j2")
    assert r2.stats["nodes"]["near"]["fit_stats"]["removed_as_dup_of_index"] >= 250
    # every removed doc truly matches its kept doc, and every truly matching candidate pair (within a
    # snapshot, or between snapshot 2 and the index) lost one end; LSH recall itself is probabilistic
    k1, k2 = read_output(tmp_path / "o1"), read_output(tmp_path / "o2")
    assert check_run(t.slice(0, 500), k1, read_output(tmp_path / "j1" / "rejects" / "near")) >= 100
    indexed = dict(zip(k1.column("id").to_pylist(), k1.column("text").to_pylist()))
    assert check_run(t.slice(250, 550), k2, read_output(tmp_path / "j2" / "rejects" / "near"), idx, (1,),
                     indexed) >= 250
