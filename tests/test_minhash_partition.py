"""minhash_dedup partition_by: documents are compared only within one partition (FineWeb2 per language)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.stages.minhash_dedup.partition import fold_partition
from workers import read_output, run_pipeline

BASE = ("The committee met on Tuesday to review the budget for the new library wing and agreed to "
        "publish the minutes before the end of the month so that residents could comment on the plan")


def _run(tmp_path, name: str, params: dict, executor: str = "local") -> pa.Table:
    texts = [BASE, BASE + " today", BASE, BASE + " again", "An unrelated note about gardening in spring."]
    langs = ["en", "en", "de", "de", "en"]
    d = tmp_path / name
    (d / "in").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a", "b", "c", "d", "e"], "text": texts, "language": langs}),
                   d / "in" / "part-0.parquet")
    spec = {
        "name": name,
        "inputs": {"web": {"path": str(d / "in" / "*.parquet")}},
        "nodes": [{"id": "dd", "stage": "minhash_dedup", "inputs": ["web"], "params": params}],
        "outputs": {"o": {"node": "dd", "path": str(d / "out")}},
    }
    run_pipeline(spec, executor=executor, job_dir=d / "job")
    return read_output(d / "out").sort_by("id")


@pytest.mark.parametrize("executor", ["local", pytest.param("ray", marks=pytest.mark.ray)])
def test_partition_by_keeps_duplicates_of_other_partitions(tmp_path, executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_local")
    everywhere = _run(tmp_path, "global", {"verify_jaccard": 0.8}, executor)
    assert everywhere.column("id").to_pylist() == ["a", "e"]  # one cluster across both languages
    per_lang = _run(tmp_path, "per_lang", {"verify_jaccard": 0.8, "partition_by": "language"}, executor)
    assert per_lang.column("id").to_pylist() == ["a", "c", "e"]  # one survivor per language


def test_fold_keeps_equality_inside_a_partition_only():
    keys = np.array([[1, 2], [1, 2], [1, 2]], dtype=np.int64)
    out = fold_partition(keys, pa.array(["en", "en", "de"]))
    assert (out[0] == out[1]).all() and not (out[0] == out[2]).any()
    nulls = fold_partition(keys[:2], pa.array([None, None], pa.string()))
    assert (nulls[0] == nulls[1]).all() and not (nulls[0] == out[0]).any()
