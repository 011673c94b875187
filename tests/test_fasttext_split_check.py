"""Training reports: a held-out split with fewer than 20 documents of a class falls back to a
stratified split, or says why it cannot."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from typer.testing import CliRunner

from curate.preselect import FastTextTrainConfig, train_classifier
from curate.preselect.split import split_mask
from curate.testing import textgen as tg

CFG = FastTextTrainConfig(bucket=10_000, dim=16, epoch=5, lr=0.5)


def _table(n_pos: int, n_neg: int, sources_pos: list[str], sources_neg: list[str]) -> pa.Table:
    texts = tg.prose_paragraphs(n_pos, 31) + tg.boilerplate(n_neg, 32)
    return pa.table({
        "id": [f"d{i:05d}" for i in range(n_pos + n_neg)],
        "text": texts,
        "label": [1] * n_pos + [0] * n_neg,
        "source": [sources_pos[i % len(sources_pos)] for i in range(n_pos)]
        + [sources_neg[i % len(sources_neg)] for i in range(n_neg)],
    })


def test_few_held_out_negatives_fall_back_to_a_stratified_split(tmp_path):
    t = _table(400, 60, ["web"], ["spam"])
    held = split_mask(t.column("id"), 0.1, 0)
    y = np.array(t.column("label").to_pylist())
    neg_before, pos_before = int((y[held] == 0).sum()), int((y[held] == 1).sum())
    assert neg_before < 20 <= pos_before  # the hash split is short of negatives
    rep = train_classifier(t, tmp_path / "m.bin", config=CFG, valid_fraction=0.1)
    check = rep["split"]["held_out_check"]
    assert check["held_out"] == {"positive (__label__1)": pos_before, "negative": neg_before}
    assert check["fallback"] == "stratified"
    # the hash split's documents stay held out; negatives are added up to exactly 20
    assert rep["valid"]["class_counts"] == {"__label__0": 20, "__label__1": pos_before}
    assert rep["train"]["class_counts"] == {"__label__0": 40, "__label__1": 400 - pos_before}
    assert rep["warnings"] == [
        (f"the held-out split has only {neg_before} negative document(s) (fewer than 20); fell back to a "
        f"stratified split (further held-out documents of the short class, in seeded order): now "
        f"{pos_before} positive, 20 negative")
    ]
    # the same seed gives the same split and model
    again = train_classifier(t, tmp_path / "m2.bin", config=CFG, valid_fraction=0.1)
    assert again["model_sha256"] == rep["model_sha256"]


def test_too_few_negatives_to_stratify_says_why(tmp_path):
    t = _table(400, 30, ["web"], ["spam"])
    rep = train_classifier(t, tmp_path / "m.bin", config=CFG, valid_fraction=0.1)
    assert rep["split"]["held_out_check"]["fallback"] is None
    n = rep["valid"]["class_counts"].get("__label__0", 0)
    assert n < 20
    assert rep["warnings"][0] == (
        f"the held-out split has only {n} negative document(s) (fewer than 20); cannot stratify: the data has "
        "only 30 negative documents, and holding out 20 would take more than half of them from training; add "
        "data or treat its ROC-AUC and accuracy as unreliable")


def _seed_without_negative_groups(groups_neg: list[str], groups_pos: list[str], frac: float) -> int:
    for seed in range(500):
        m_neg = split_mask(pa.array(groups_neg), frac, seed)
        m_pos = split_mask(pa.array(groups_pos), frac, seed)
        if not m_neg.any() and m_pos.any() and not m_pos.all():
            return seed
    raise AssertionError("no such seed")


def test_group_split_adds_whole_groups_of_the_short_class(tmp_path):
    pos_src = [f"site{i}" for i in range(10)]
    neg_src = [f"spam{i}" for i in range(5)]  # 100 negatives, 20 per source
    t = _table(500, 100, pos_src, neg_src)
    seed = _seed_without_negative_groups(neg_src, pos_src, 0.3)
    rep = train_classifier(t, tmp_path / "g.bin", config=CFG, valid_fraction=0.3, group_column="source",
                           split_seed=seed)
    sp = rep["split"]
    assert sp["held_out_check"]["held_out"]["negative"] == 0 and sp["held_out_check"]["fallback"] == "stratified"
    held_neg = [g for g in sp["valid_groups"] if g.startswith("spam")]
    assert len(held_neg) == 1 and rep["valid"]["class_counts"]["__label__0"] == 20
    assert not set(sp["valid_groups"]) & set(sp["train_groups"])  # still whole groups
    # the added group is the first negative group in the seeded order
    assert held_neg[0] == min(neg_src, key=lambda g: _unit(g, seed))
    assert "fell back to a stratified split (further held-out groups" in rep["warnings"][0]


def _unit(g: str, seed: int) -> float:
    from curate.preselect.split import split_unit

    return float(split_unit(pa.array([g]), seed)[0])


def test_group_split_that_cannot_be_stratified_says_why_and_cli_warns(tmp_path):
    import pyarrow.parquet as pq

    from cli.main import app

    pos_src = [f"site{i}" for i in range(10)]
    t = _table(500, 100, pos_src, ["spam"])  # every negative in one source
    seed = _seed_without_negative_groups(["spam"], pos_src, 0.3)
    pq.write_table(t, tmp_path / "labeled.parquet")
    r = CliRunner().invoke(app, [
        "fasttext", "train", str(tmp_path / "labeled.parquet"), "-o", str(tmp_path / "g.bin"),
        "--group-column", "source", "--valid-fraction", "0.3", "--seed", str(seed), "--bucket", "10000",
        "--dim", "16"])
    assert r.exit_code == 0, r.output
    text = " ".join(r.output.split())
    assert ("warning: the held-out split has only 0 negative document(s) (fewer than 20); cannot stratify by "
            "whole groups: no choice of further groups holds out 20 of each class while leaving half of each "
            "for training") in text
