"""Report numbers on a hand-built job directory (no runner): thresholds, dedup, shares."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from curate.jobdata import JobData
from curate.report import build_summary, write_report


def _node(stage, kind, inputs, n_in, kept, rej, reasons=None, fit=None):
    return {
        "stage": stage,
        "kind": kind,
        "inputs": inputs,
        "in": n_in,
        "kept": kept,
        "rejected": rej,
        "copies_added": 0,
        "rejects_by_reason": reasons or {},
        "fit_stats": fit,
        "run_stats": {},
        "wall_s": 0.1,
        "cpu_s": 0.1,
        "warnings": [],
    }


def make_job(jd: Path, dedup: str = "minhash_dedup") -> None:
    """A dedup node ``dd`` (``dedup``: its stage), dsir_resample ``ds`` and perplexity_filter
    ``pf``. minhash_dedup rows carry ``dup_cluster_size``; exact_dedup's rejects name the
    kept id in their detail."""
    reason = {"minhash_dedup": "near_duplicate", "exact_dedup": "exact_duplicate"}[dedup]
    rng = np.random.default_rng(0)
    n = 1000
    ids = [f"d{i:04d}" for i in range(n)]
    ppl = np.exp(rng.normal(3, 1.5, size=n))  # heavy tail
    logw = rng.normal(0, 1, size=n)
    size = np.where(np.arange(n) % 10 == 0, 3, 1)  # 100 clusters of 3 kept representatives
    full = pa.table(
        {"id": ids, "text": ["t"] * n, "perplexity": ppl, "dsir_logw": logw, "dup_cluster_size": size}
    )
    # 200 dups rejected by dedup (they carry the cluster size too, but are not representatives)
    dups = pa.table(
        {
            "id": [f"x{i:04d}" for i in range(200)],
            "text": ["t"] * 200,
            "dup_cluster_size": [3] * 200,
            "reason": [reason] * 200,
            "detail": [ids[(i // 2) * 10] for i in range(200)],
            "stage": ["dd"] * 200,
        }
    )
    bucket = ppl < 30
    rej = full.filter(pa.array(~bucket))
    rej = rej.append_column("reason", pa.array(["perplexity_bucket"] * rej.num_rows))
    rej = rej.append_column("detail", pa.array(["tail"] * rej.num_rows))
    for sub, t in (("rejects/dd", dups), ("rejects/pf", rej), ("nodes/pf", full.filter(pa.array(bucket)))):
        (jd / sub).mkdir(parents=True)
        pq.write_table(t, jd / sub / "part-0.parquet")
    nk = int(bucket.sum())
    stats = {
        "job": {
            "name": "hand",
            "seed": 3,
            "curate_version": "9.9",
            "executor": "local",
            "state": "succeeded",
        },
        "nodes": {
            "docs": _node("input", "input", [], n + 200, n + 200, 0),
            "dd": _node(dedup, "barrier", ["docs"], n + 200, n, 200, {reason: 200}),
            "ds": _node(
                "dsir_resample",
                "barrier",
                ["dd"],
                n,
                n,
                0,
                fit={"threshold_key": 44.7, "min_tokens": 50, "kl_reduction": 0.13},
            ),
            "pf": _node(
                "perplexity_filter",
                "barrier",
                ["ds"],
                n,
                nk,
                n - nk,
                {"perplexity_bucket": n - nk},
                {"cutoffs": {"P30": 12.5, "P60": 30.0}, "bucket_docs": {"head": 300}},
            ),
        },
        "outputs": {},
    }
    spec = {
        "name": "hand",
        "seed": 3,
        "inputs": {"docs": {"path": "x"}},
        "nodes": [
            {"id": "dd", "stage": dedup, "inputs": ["docs"], "params": {}},
            {
                "id": "ds",
                "stage": "dsir_resample",
                "inputs": ["dd"],
                "params": {"target": "docs", "min_tokens": 50, "budget": 0.5, "budget_unit": "fraction"},
            },
            {"id": "pf", "stage": "perplexity_filter", "inputs": ["ds"], "params": {}},
        ],
    }
    (jd / "stats.json").write_text(json.dumps(stats))
    (jd / "spec.json").write_text(json.dumps(spec))


def test_thresholds_scales_and_dedup_from_a_hand_built_job(tmp_path):
    make_job(tmp_path)
    s = build_summary(JobData(tmp_path))
    ppl = s["scores"]["perplexity"]
    assert ppl["log_scale"] is True and ppl["count"] == 1000
    assert sorted(t["value"] for t in ppl["thresholds"]) == [12.5, 30.0]  # nested fit_stats cutoffs
    assert sum(ppl["counts"]["rejected at pf"]) + sum(ppl["counts"]["kept"]) == 1000
    # DSIR's sampling key and its min_tokens are not score thresholds
    assert s["scores"]["dsir_logw"]["thresholds"] == [] and s["scores"]["dsir_logw"]["log_scale"] is False
    d = s["sections"]["dd"]["dedup"]
    assert d["duplicates_removed"] == 200 and d["source"] == "dup_cluster_size"
    buckets = {b["size"]: b["clusters"] for b in d["size_buckets"]}
    assert buckets["1"] == 900 and buckets["3-4"] == 100 and d["largest_cluster"] == 3
    assert s["curate_version"] == "9.9" and s["seed"] == 3
    html = write_report(tmp_path).read_text()
    assert "kl_reduction" in html and "cutoffs.P30" in html  # the fitted-statistics table


def test_dedup_fallback_counts_clusters_from_rejects(tmp_path):
    make_job(tmp_path, dedup="exact_dedup")
    for f in (tmp_path / "nodes" / "pf").glob("*.parquet"):
        pq.write_table(pq.read_table(f).drop_columns(["dup_cluster_size"]), f)
    for f in list((tmp_path / "rejects").rglob("*.parquet")):
        t = pq.read_table(f)
        if "dup_cluster_size" in t.column_names:
            pq.write_table(t.drop_columns(["dup_cluster_size"]), f)
    d = build_summary(JobData(tmp_path))["sections"]["dd"]["dedup"]
    # each dedup reject names the id kept in its place: 100 kept ids x 2 dups -> clusters of 3
    assert d["source"] == "rejects" and d["clusters_with_duplicates"] == 100 and d["largest_cluster"] == 3


def test_dedup_annotate_mode_counts_each_cluster_once(tmp_path):
    """Annotate-only dedup keeps every member with dup_kept; clusters are counted at the kept id."""
    ids = [f"a{i}" for i in range(9)]
    t = pa.table(
        {
            "id": ids,
            "text": ["t"] * 9,
            "dup_cluster_size": [3, 3, 3, 2, 2, 1, 1, 1, 1],
            "dup_kept": ["a0", "a0", "a0", "a3", "a3", "a5", "a6", "a7", "a8"],
        }
    )
    (tmp_path / "nodes" / "nd").mkdir(parents=True)
    pq.write_table(t, tmp_path / "nodes" / "nd" / "part-0.parquet")
    stats = {"job": {}, "nodes": {"nd": _node("minhash_dedup", "barrier", [], 9, 9, 0)}, "outputs": {}}
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    d = build_summary(JobData(tmp_path))["sections"]["nd"]["dedup"]
    buckets = {b["size"]: b["clusters"] for b in d["size_buckets"]}
    assert buckets["1"] == 4 and buckets["2"] == 1 and buckets["3-4"] == 1
    assert d["clusters_with_duplicates"] == 2 and d["duplicates_removed"] == 0
