"""`mix` end to end through both executors, and pipelines/mix.yaml on a small corpus."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml

from workers import read_output, run_pipeline

REPO = Path(__file__).resolve().parents[1]
SIZES = {"web": 900, "code_docs": 240, "legal": 60}  # very different domain sizes


def write_corpus(root: Path) -> None:
    """data/sample-like layout: <root>/<domain>/<domain>-N.parquet with a domain column."""
    rng = np.random.default_rng(3)
    for d, n in SIZES.items():
        for part in range(2):
            m = n // 2
            lens = rng.integers(20, 160, size=m)
            texts = [" ".join(f"{d}{int(x)}" for x in rng.integers(0, 5000, size=int(k))) for k in lens]
            p = root / d / f"{d}-{part}.parquet"
            p.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.table({"text": texts, "domain": [d] * m}), p, row_group_size=100)


def mix_spec(root: Path, out: Path, budget: int = 100_000) -> dict:
    spec = yaml.safe_load((REPO / "pipelines" / "mix.yaml").read_text())
    spec["inputs"]["docs"]["path"] = str(root / "[cwl]*" / "*.parquet")
    spec["outputs"]["mixed"]["path"] = str(out)
    spec["nodes"][-1]["params"]["budget_tokens"] = budget
    spec["settings"]["batch_size"] = 128
    return spec


def _tokens(t: pa.Table) -> dict[str, int]:
    out: dict[str, int] = {}
    for d, txt in zip(t.column("mix_bucket").to_pylist(), t.column("text").to_pylist()):
        out[d] = out.get(d, 0) + len(txt.split())
    return out


def test_mix_yaml_local_shares_caps_ledger(tmp_path):
    write_corpus(tmp_path / "data")
    res = run_pipeline(mix_spec(tmp_path / "data", tmp_path / "out"), job_dir=tmp_path / "job")
    out = read_output(res.outputs["mixed"])
    man = json.loads((Path(res.job_dir) / "state" / "mix" / "manifest.json").read_text())
    assert res.stats["nodes"]["mix"]["fit_stats"]["mix"] == man
    real = _tokens(out)
    caps = {"web": 4, "code_docs": 4, "legal": 1}
    for d, e in man["domains"].items():
        assert real[d] == e["realized_tokens"]
        assert real[d] <= caps[d] * e["available_tokens"]  # no domain over its cap
        assert abs(real[d] / sum(real.values()) - e["target_share"]) < 0.005
    assert man["domains"]["legal"]["cap_bound"] and man["domains"]["legal"]["epochs_used"] == pytest.approx(
        1.0
    )
    # water-filling by hand: legal fixed at its 1-epoch cap, the rest split 0.5 : 0.3
    rest = 100_000 - man["domains"]["legal"]["available_tokens"]
    assert man["domains"]["web"]["target_tokens"] == pytest.approx(rest * 0.5 / 0.8)
    assert man["domains"]["code_docs"]["target_tokens"] == pytest.approx(rest * 0.3 / 0.8)
    # ledger: kept = originals, copies_added = repeats; the runner checked in == kept + rejected
    ns = res.stats["nodes"]["mix"]
    copies = int(pc.sum(pc.greater(out.column("mix_copy"), 0)).as_py())
    assert copies > 0 and ns["copies_added"] == copies
    assert ns["kept"] == out.num_rows - copies and ns["in"] == ns["kept"] + ns["rejected"]
    assert (Path(res.job_dir) / "report.html").exists()  # the runner wrote the report


@pytest.mark.ray
def test_mix_identical_on_local_and_ray(tmp_path, ray_local):
    write_corpus(tmp_path / "data")
    spec = mix_spec(tmp_path / "data", tmp_path / "out_local")
    r1 = run_pipeline(copy.deepcopy(spec), executor="local", job_dir=tmp_path / "jl")
    spec["outputs"]["mixed"]["path"] = str(tmp_path / "out_ray")
    r2 = run_pipeline(spec, executor="ray", job_dir=tmp_path / "jr")
    f1 = sorted(Path(r1.outputs["mixed"]).glob("part-*.parquet"))
    f2 = sorted(Path(r2.outputs["mixed"]).glob("part-*.parquet"))
    assert [f.name for f in f1] == [f.name for f in f2] and f1
    for a, b in zip(f1, f2):
        assert a.read_bytes() == b.read_bytes(), f"{a.name} differs between executors"
    m1 = json.loads((Path(r1.job_dir) / "state" / "mix" / "manifest.json").read_text())
    m2 = json.loads((Path(r2.job_dir) / "state" / "mix" / "manifest.json").read_text())
    assert m1 == m2
    # rerun on local: identical again
    r3 = run_pipeline(mix_spec(tmp_path / "data", tmp_path / "out_again"), job_dir=tmp_path / "j3")
    for a, b in zip(f1, sorted(Path(r3.outputs["mixed"]).glob("part-*.parquet"))):
        assert a.read_bytes() == b.read_bytes()


def test_mix_joins_domain_branches_with_temperature(tmp_path):
    """Several DAG inputs, one per domain (the `domain:` label), each with its own filter."""
    write_corpus(tmp_path / "data")
    spec = {
        "name": "branches",
        "seed": 5,
        "settings": {"batch_size": 100},
        "inputs": {d: {"path": str(tmp_path / "data" / d / "*.parquet"), "domain": d} for d in SIZES},
        "nodes": [
            {"id": "lw", "stage": "length_filter", "inputs": ["web"], "params": {"min_words": 40}},
            {"id": "lc", "stage": "length_filter", "inputs": ["code_docs"], "params": {"min_words": 30}},
            {
                "id": "mx",
                "stage": "mix",
                "inputs": ["lw", "lc", "legal"],
                "params": {"budget_tokens": 50_000, "temperature": 0.5},
            },
        ],
        "outputs": {"kept": {"node": "mx", "path": str(tmp_path / "out")}},
    }
    res = run_pipeline(spec, job_dir=tmp_path / "job")
    man = res.stats["nodes"]["mx"]["fit_stats"]["mix"]["domains"]
    n = {d: man[d]["available_tokens"] for d in SIZES}
    q = {d: (n[d] / sum(n.values())) ** 0.5 for d in n}  # q_i ∝ p_i^α by hand
    real = _tokens(read_output(res.outputs["kept"]))
    for d in SIZES:
        assert man[d]["target_weight"] == pytest.approx(q[d] / sum(q.values()))
        assert abs(real[d] / sum(real.values()) - man[d]["target_share"]) < 0.005
        assert real[d] == man[d]["realized_tokens"]
    ns = res.stats["nodes"]["mx"]
    assert ns["in"] == sum(res.stats["nodes"][i]["kept"] for i in ("lw", "lc", "legal"))
    # lineage across the branches: a web document's path is web -> lw -> mx only
    from curate.lineage import explain

    out = read_output(res.outputs["kept"])
    web_doc = out.filter(pc.equal(out.column("mix_bucket"), "web")).column("source_id")[0].as_py()
    e = explain(str(res.job_dir), web_doc)
    assert [p["node"] for p in e["path"]] == ["web", "lw", "mx"] and e["mix"]["bucket"] == "web"
