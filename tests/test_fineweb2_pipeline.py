"""pipelines/fineweb2.yaml end to end on the multilingual sample that `curate sample-data
--multilingual` writes: language ID, heuristics per language, dedup per language, rehydrated mix."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.dataset as ds
import pytest
import yaml

from curate.sample_multilingual import LANGUAGES, write_multilingual_corpus
from workers import read_output, run_pipeline

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("fw2")
    manifest = write_multilingual_corpus(root / "data", target_mb=0.3, seed=3)
    spec = yaml.safe_load((REPO / "pipelines" / "fineweb2.yaml").read_text())
    spec["inputs"]["web"]["path"] = str(root / "data" / "*" / "*.parquet")
    spec["outputs"]["corpus"]["path"] = str(root / "out")
    spec.pop("job_dir", None)
    res = run_pipeline(spec, executor="local", job_dir=root / "job")
    return root, manifest, res


def _rejects(root: Path, node: str) -> list[dict]:
    d = root / "job" / "rejects" / node
    return ds.dataset(str(d)).to_table().to_pylist() if d.is_dir() else []


def test_every_language_is_identified_and_kept(job):
    root, manifest, res = job
    out = read_output(root / "out")
    langs = Counter(out.column("language").to_pylist())
    assert set(langs) == set(LANGUAGES)
    for src, lang in zip(out.column("source").to_pylist(), out.column("language").to_pylist()):
        assert src.split(":")[1] == lang  # lid.176 finds the language each document was written in
    assert res.stats["nodes"]["lid_conf"]["kept"] == manifest["total_rows"]


def test_junk_is_rejected_by_the_rule_that_targets_it(job):
    root, _, _ = job
    kinds = Counter((r["source"].split(":")[2], r["reason"].split(":")[0]) for r in _rejects(root, "heuristics"))
    made = Counter(k for k, _ in kinds.elements())
    assert made["repetitive"] and made["list"] and made["short"]
    assert all(kind in ("repetitive", "list", "short", "near_dup_edit") for kind, _ in kinds)
    rule_sets = {r["language"]: r["heuristic_rule_set"] for r in _rejects(root, "heuristics")}
    assert rule_sets["de"] == "de" and rule_sets["ja"] == "ja" and rule_sets["fr"] == "default"


def test_dedup_is_per_language_and_the_mix_rehydrates(job):
    root, _, res = job
    dups = _rejects(root, "dedup")
    assert dups and all(r["source"].split(":")[2] in ("clean", "exact_dup", "near_dup_edit") for r in dups)
    kept = {r["id"]: r["language"] for r in read_output(root / "out").to_pylist()}
    for r in dups:  # the kept document of its cluster is in the same language
        if r["dup_kept"] in kept:
            assert kept[r["dup_kept"]] == r["language"]
    mix = res.stats["nodes"]["mix"]
    assert mix["copies_added"] > 0  # survivors of duplicate clusters are upsampled


def test_multilingual_sample_is_deterministic(tmp_path):
    a = write_multilingual_corpus(tmp_path / "a", target_mb=0.05, seed=1)
    b = write_multilingual_corpus(tmp_path / "b", target_mb=0.05, seed=1)
    assert len(a["languages"]) >= 5 and a["files"] == b["files"]
    for f in a["files"]:
        assert (tmp_path / "a" / f["path"]).read_bytes() == (tmp_path / "b" / f["path"]).read_bytes()
