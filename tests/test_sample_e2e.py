"""The sample corpus through a real pipeline, on both executors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from curate.sample_data import write_sample_corpus
from workers import read_output, run_pipeline


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("e2e") / "sample"
    return out, write_sample_corpus(out, target_mb=0.4, seed=5, labels=True)


def _spec(root: Path, out: Path) -> dict:
    return {
        "name": "sample-e2e",
        "seed": 42,
        "settings": {"batch_size": 256},
        "inputs": {
            "web": {"path": str(root / "web/*.parquet"), "text_column": "text", "domain": "web"},
            "docs": {"path": str(root / "code_docs/*.parquet"), "domain": "code_docs"},
        },
        "nodes": [
            {"id": "len", "stage": "length_filter", "inputs": ["web"], "params": {"min_words": 20}},
            {"id": "both", "stage": "union", "inputs": ["len", "docs"]},
            {"id": "dd", "stage": "exact_dedup", "inputs": ["both"]},
        ],
        "outputs": {"kept": {"node": "dd", "path": str(out)}},
    }


def _check(res, manifest: dict, out: Path) -> None:
    st = res.stats["nodes"]
    for nid, ns in st.items():
        assert ns["in"] == ns["kept"] + ns["rejected"], nid
    kinds = manifest["kinds_per_domain"]["web"]
    assert st["web"]["in"] == manifest["rows_per_domain"]["web"]
    assert st["web"]["rejects_by_reason"] == {
        "null_text": kinds["null"],
        "empty_text": kinds["empty"] + kinds["whitespace"],
    }
    assert st["docs"]["in"] == manifest["rows_per_domain"]["code_docs"]
    # every planted exact copy is removed (plus natural copies in code_docs)
    assert st["dd"]["rejects_by_reason"]["exact_duplicate"] >= kinds["exact_dup"]
    kept = read_output(out)
    assert kept.num_rows == st["dd"]["kept"]
    texts = kept.column("text").to_pylist()
    assert max(Counter(texts).values()) == 1
    assert not {"null", "empty", "whitespace"} & set(kept.column("kind").to_pylist())
    assert set(kept.column("domain").to_pylist()) == {"web", "code_docs"}


@pytest.fixture(scope="module")
def local_run(sample, tmp_path_factory):
    root, _manifest = sample
    d = tmp_path_factory.mktemp("local")
    return run_pipeline(_spec(root, d / "out"), executor="local", job_dir=d / "job"), d / "out"


def test_sample_corpus_local(sample, local_run):
    res, out = local_run
    _check(res, sample[1], out)


@pytest.mark.ray
def test_sample_corpus_ray_matches_local(tmp_path, sample, local_run, ray_local):
    root, manifest = sample
    r_local, out_local = local_run
    r_ray = run_pipeline(_spec(root, tmp_path / "out"), executor="ray", job_dir=tmp_path / "job")
    _check(r_ray, manifest, tmp_path / "out")
    assert r_local.ledger == r_ray.ledger
    assert read_output(out_local).equals(read_output(tmp_path / "out"))
