"""perplexity_score -> perplexity_filter through real pipelines (local and Ray)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.lm import train_lm
from curate.testing import textgen
from workers import JobFailed, read_output, run_pipeline


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, int]:
    root = tmp_path_factory.mktemp("pp_corpus")
    prose = textgen.domain_texts("prose", 360, 21)
    train, held = prose[:240], [t for t in prose[240:] if t not in set(prose[:240])]
    model = root / "prose.arpa"
    train_lm(train, 3, model, backend="numpy")
    texts = held + textgen.boilerplate(60, 2) + textgen.shuffled(60, 3) + ["\x07\x08\x07"]
    kinds = ["prose"] * len(held) + ["boilerplate"] * 60 + ["shuffled"] * 60 + ["control"]
    (root / "in").mkdir()
    for j in range(3):
        pq.write_table(
            pa.table({"text": texts[j::3], "kind": kinds[j::3]}),
            root / "in" / f"part-{j}.parquet",
            row_group_size=16,
        )
    return root, model, len(texts)


def _spec(root: Path, model: Path, out: Path) -> dict:
    return {
        "name": "pp-e2e",
        "seed": 1,
        "settings": {"batch_size": 32},
        "inputs": {"docs": {"path": str(root / "in" / "*.parquet")}},
        "nodes": [
            {"id": "score", "stage": "perplexity_score", "inputs": ["docs"], "params": {"model": str(model)}},
            {
                "id": "select",
                "stage": "perplexity_filter",
                "inputs": ["score"],
                "params": {"keep_buckets": ["head"]},
            },
        ],
        "outputs": {"kept": {"node": "select", "path": str(out)}},
    }


def _check(res, out: Path, n: int) -> pa.Table:
    st = res.stats["nodes"]
    assert st["score"]["in"] == n
    assert st["score"]["rejects_by_reason"] == {"empty_text": 1}
    assert st["score"]["run_stats"]["model_order"] == 3
    fs = st["select"]["fit_stats"]
    assert fs["docs"] == n - 1 and set(fs["cutoffs"]) == {"P30", "P60"}
    assert fs["cutoffs"]["P30"] <= fs["cutoffs"]["P60"]
    assert st["select"]["in"] == st["select"]["kept"] + st["select"]["rejected"] == n - 1
    kept = read_output(out)
    assert set(kept.column("ccnet_bucket").to_pylist()) == {"head"}
    assert max(kept.column("perplexity").to_pylist()) < fs["cutoffs"]["P30"]
    share = Counter(kept.column("kind").to_pylist())["prose"] / kept.num_rows
    assert share > 0.8  # head is enriched in prose (base rate ~0.5)
    return kept


def test_perplexity_pipeline_local(tmp_path, setup):
    root, model, n = setup
    _check(
        run_pipeline(_spec(root, model, tmp_path / "o"), executor="local", job_dir=tmp_path / "j"),
        tmp_path / "o",
        n,
    )


@pytest.mark.ray
def test_perplexity_pipeline_ray_matches_local(tmp_path, setup, ray_local):
    root, model, n = setup
    a = _check(
        run_pipeline(_spec(root, model, tmp_path / "ol"), executor="local", job_dir=tmp_path / "jl"),
        tmp_path / "ol",
        n,
    )
    b = _check(
        run_pipeline(_spec(root, model, tmp_path / "or"), executor="ray", job_dir=tmp_path / "jr"),
        tmp_path / "or",
        n,
    )
    assert a.equals(b)


def test_missing_model_fails_clearly(tmp_path, setup):
    root, _, _ = setup
    with pytest.raises(JobFailed, match="language model not found"):
        run_pipeline(
            _spec(root, tmp_path / "nope.arpa", tmp_path / "o"), executor="local", job_dir=tmp_path / "j"
        )


def test_shipped_pipeline_yamls_run_on_the_sample_corpus(tmp_path, monkeypatch):
    """pipelines/dsir_target.yaml and pipelines/perplexity.yaml, as shipped, on a small sample corpus."""
    from curate.lm import iter_corpus
    from curate.sample_data import write_sample_corpus

    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(tmp_path)
    write_sample_corpus(tmp_path / "data" / "sample", target_mb=0.4, seed=3)
    train_lm(
        iter_corpus("data/sample/prose/*.parquet"), 3, tmp_path / "data/sample/lm/prose.arpa", backend="numpy"
    )
    res = run_pipeline(repo / "pipelines" / "dsir_target.yaml", executor="local", job_dir=tmp_path / "j1")
    st = res.stats["nodes"]["dsir"]
    assert st["in"] == st["kept"] + st["rejected"] and st["kept"] > 0
    assert "kl_reduction" in st["fit_stats"]
    res = run_pipeline(repo / "pipelines" / "perplexity.yaml", executor="local", job_dir=tmp_path / "j2")
    st = res.stats["nodes"]["ppl_select"]
    assert st["kept"] > 0 and set(st["fit_stats"]["cutoffs"]) == {"P30", "P60"}
    assert read_output(tmp_path / "out" / "perplexity_kept").column("ccnet_bucket").unique().to_pylist() in (
        ["head", "middle"],
        ["middle", "head"],
    )
