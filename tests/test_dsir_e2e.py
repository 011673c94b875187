"""dsir_resample through real pipelines (local and Ray) on a mixed-domain corpus.

Quality: with a held-out target from one domain, the selection is dominated by that
domain (far above the random-selection share) and the KL reduction is positive.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.testing import textgen
from workers import JobFailed, read_output, run_pipeline

DOMAINS = ("code_docs", "legal", "prose", "readme")
PER_DOMAIN = 150


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("dsir_corpus")
    pool_texts: set[str] = set()
    for d in DOMAINS:
        texts = textgen.domain_texts(d, PER_DOMAIN, 3)
        pool_texts.update(texts)
        (root / d).mkdir()
        for j in range(3):  # several files per domain
            part = texts[j::3]
            pq.write_table(pa.table({"text": part}), root / d / f"part-{j}.parquet", row_group_size=20)
    target = [t for t in textgen.domain_texts("prose", 400, 99) if t not in pool_texts]
    assert len(target) > 100
    (root / "target").mkdir()
    pq.write_table(pa.table({"text": target}), root / "target" / "prose.parquet")
    return root


def _spec(root: Path, out: Path, target: str, budget: float = PER_DOMAIN, unit: str = "docs") -> dict:
    inputs = {d: {"path": str(root / d / "*.parquet"), "domain": d} for d in DOMAINS}
    inputs["tgt"] = {"path": str(root / "target" / "*.parquet"), "domain": "target"}
    return {
        "name": "dsir-e2e",
        "seed": 7,
        "settings": {"batch_size": 64},
        "inputs": inputs,
        "nodes": [
            {"id": "pool", "stage": "union", "inputs": list(DOMAINS)},
            {
                "id": "dsir",
                "stage": "dsir_resample",
                "inputs": ["pool"],
                "params": {"target": target, "budget": budget, "budget_unit": unit, "min_tokens": 20},
            },
        ],
        "outputs": {"kept": {"node": "dsir", "path": str(out)}},
    }


def _check(res, out: Path) -> pa.Table:
    st = res.stats["nodes"]["dsir"]
    assert st["in"] == len(DOMAINS) * PER_DOMAIN == st["kept"] + st["rejected"]
    assert st["kept"] == PER_DOMAIN
    assert set(st["rejects_by_reason"]) <= {"dsir_not_selected", "too_few_tokens"}
    fs = st["fit_stats"]
    assert fs["selected_docs"] == PER_DOMAIN and fs["pool_docs"] == len(DOMAINS) * PER_DOMAIN
    assert fs["kl_reduction"] > 0
    kept = read_output(out)
    assert kept.num_rows == PER_DOMAIN
    share = Counter(kept.column("domain").to_pylist())["prose"] / kept.num_rows
    # random selection would give 1/4 prose; DSIR toward a prose target gives far more
    assert share >= 0.75, Counter(kept.column("domain").to_pylist())
    assert "dsir_logw" in kept.column_names
    return kept


def test_dsir_local_target_node(tmp_path, corpus):
    res = run_pipeline(_spec(corpus, tmp_path / "out", "tgt"), executor="local", job_dir=tmp_path / "job")
    kept = _check(res, tmp_path / "out")
    # rejected rows carry the reason and the weight
    rej = pa.concat_tables(
        [pq.read_table(p) for p in sorted((tmp_path / "job/rejects/dsir").glob("*.parquet"))]
    )
    row = rej.filter(pa.compute.equal(rej.column("reason"), "dsir_not_selected")).slice(0, 1).to_pylist()[0]
    assert row["detail"].startswith("dsir_logw=") and float(row["detail"].split("=")[1]) == pytest.approx(
        row["dsir_logw"], abs=1e-6
    )
    # a Parquet-path target gives the very same selection
    res2 = run_pipeline(
        _spec(corpus, tmp_path / "out2", str(corpus / "target" / "*.parquet")),
        executor="local",
        job_dir=tmp_path / "job2",
    )
    kept2 = _check(res2, tmp_path / "out2")
    assert kept.column("id").to_pylist() == kept2.column("id").to_pylist()


@pytest.mark.ray
def test_dsir_ray_matches_local(tmp_path, corpus, ray_local):
    r_local = run_pipeline(_spec(corpus, tmp_path / "ol", "tgt"), executor="local", job_dir=tmp_path / "jl")
    r_ray = run_pipeline(_spec(corpus, tmp_path / "or", "tgt"), executor="ray", job_dir=tmp_path / "jr")
    a, b = _check(r_local, tmp_path / "ol"), _check(r_ray, tmp_path / "or")
    assert a.column("id").to_pylist() == b.column("id").to_pylist()
    assert a.column("dsir_logw").to_pylist() == b.column("dsir_logw").to_pylist()
    assert r_local.ledger == r_ray.ledger


def test_dsir_bad_target_fails_clearly(tmp_path, corpus):
    spec = _spec(corpus, tmp_path / "o", str(tmp_path / "missing" / "*.parquet"))
    with pytest.raises(JobFailed, match="matches no Parquet files"):
        run_pipeline(spec, executor="local", job_dir=tmp_path / "j")
