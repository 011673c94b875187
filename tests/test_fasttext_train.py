"""fastText classifier training: quality on real-looking text, reports, determinism, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from curate.preselect import FastTextTrainConfig, roc_auc, train_classifier
from curate.preselect.ftmodel import check_model_file
from curate.stage import StageError
from curate.stages.fasttext_score import FastTextScore
from curate.testing import textgen as tg


@pytest.fixture(scope="module")
def labeled() -> pa.Table:
    """Well-formed prose (1) vs boilerplate, keyword spam and word-shuffled prose (0)."""
    n = 600
    pos = tg.prose_paragraphs(n, 21)
    neg = tg.boilerplate(n // 3, 22) + tg.spam(n // 3, 23) + tg.shuffled(n - 2 * (n // 3), 24)
    kinds = (
        ["prose"] * n + ["boilerplate"] * (n // 3) + ["spam"] * (n // 3) + ["shuffled"] * (n - 2 * (n // 3))
    )
    return pa.table(
        {
            "id": [f"doc{i}" for i in range(2 * n)],
            "text": pos + neg,
            "label": [1] * n + [0] * n,
            "kind": kinds,
            "src": [f"src{i % 8}" for i in range(2 * n)],
        }
    )


# Small corpus: more epochs and a higher learning rate than the paper's 400k-document defaults.
SMALL = FastTextTrainConfig(epoch=10, lr=0.5, bucket=50_000, dim=50)


def test_scorer_separates_prose_from_junk_on_held_out_split(labeled, tmp_path):
    rep = train_classifier(labeled, tmp_path / "q.bin", config=SMALL, valid_fraction=0.25, split_seed=1)
    v = rep["valid"]
    assert v["roc_auc"] >= 0.9, v
    assert v["accuracy"] >= 0.8, v
    assert v["docs"] > 200 and set(v["class_counts"]) == {"__label__0", "__label__1"}
    assert rep["train"]["docs"] + v["docs"] == labeled.num_rows
    # the report on disk matches, and the score stage reproduces its ROC-AUC on the same split
    on_disk = json.loads((tmp_path / "q.bin.report.json").read_text())
    assert on_disk["valid"]["roc_auc"] == v["roc_auc"] and on_disk["params"]["word_ngrams"] == 2
    from curate.preselect.train import split_mask

    held = split_mask(labeled.column("id"), 0.25, 1)
    stage = FastTextScore(model_path=str(tmp_path / "q.bin")).bind("ft", 0)
    scores = np.array(stage(labeled.filter(pa.array(held))).kept.column("quality").to_pylist())
    y = np.array(labeled.column("label").to_pylist())[held]
    assert roc_auc(y, scores) == pytest.approx(v["roc_auc"], abs=1e-12)
    # every junk kind is below prose on average
    kinds = np.array(labeled.column("kind").to_pylist())[held]
    for k in ("boilerplate", "spam", "shuffled"):
        assert scores[kinds == "prose"].mean() > scores[kinds == k].mean(), k


def test_training_is_deterministic_and_paper_defaults(labeled, tmp_path):
    cfg = FastTextTrainConfig(bucket=10_000, dim=16)
    a = train_classifier(labeled, tmp_path / "a.bin", config=cfg)
    b = train_classifier(labeled, tmp_path / "b.bin", config=cfg)
    assert a["model_sha256"] == b["model_sha256"]
    info = check_model_file(tmp_path / "a.bin")
    assert (info.dim, info.bucket, info.word_ngrams, info.model) == (16, 10_000, 2, "supervised")
    d = FastTextTrainConfig()
    assert (d.epoch, d.lr, d.word_ngrams, d.dim, d.min_count, d.bucket) == (3, 0.1, 2, 100, 1, 2_000_000)


def test_group_split_holds_out_whole_sources(labeled, tmp_path):
    rep = train_classifier(
        labeled,
        tmp_path / "g.bin",
        config=FastTextTrainConfig(bucket=10_000, dim=16),
        group_column="src",
        valid_fraction=0.3,
    )
    sp = rep["split"]
    assert sp["by"] == "src" and sp["valid_groups"] and sp["train_groups"]
    assert not set(sp["valid_groups"]) & set(sp["train_groups"])
    assert set(sp["valid_groups"]) | set(sp["train_groups"]) == {f"src{i}" for i in range(8)}
    n_valid = sum(1 for s in labeled.column("src").to_pylist() if s in sp["valid_groups"])
    assert rep["valid"]["docs"] == n_valid
    # holding out every positive source leaves a single class to train on: a clear error
    with pytest.raises(StageError, match="training split has classes"):
        train_classifier(
            labeled,
            tmp_path / "x.bin",
            group_column="kind",
            valid_fraction=0.5,
            split_seed=_seed_holding_out_prose(labeled),
        )


def _seed_holding_out_prose(labeled) -> int:
    from curate.preselect.train import split_mask

    for seed in range(200):
        if split_mask(pa.array(["prose"]), 0.5, seed)[0]:
            return seed
    raise AssertionError("no seed holds out prose")


def test_bad_training_data(tmp_path, labeled):
    with pytest.raises(StageError, match="single class"):
        train_classifier(
            labeled.filter(pa.array([v == 1 for v in labeled["label"].to_pylist()])), tmp_path / "x.bin"
        )
    with pytest.raises(StageError, match="column 'lbl' not found"):
        train_classifier(labeled, tmp_path / "x.bin", label_column="lbl")
    with pytest.raises(StageError, match="positive label '__label__yes' does not occur"):
        train_classifier(labeled, tmp_path / "x.bin", positive_label="yes")
    nulls = pa.table({"text": ["a", "b"], "label": pa.array([1, None], pa.int64())})
    with pytest.raises(StageError, match="null labels"):
        train_classifier(nulls, tmp_path / "x.bin")


def test_string_labels_and_cli(tmp_path, labeled):
    from cli.main import app

    t = labeled.set_column(2, "label", pa.array(["hq" if v else "lq" for v in labeled["label"].to_pylist()]))
    pq.write_table(t, tmp_path / "labeled.parquet")
    runner = CliRunner()
    r = runner.invoke(
        app,
        [
            "fasttext", "train", str(tmp_path / "labeled.parquet"), "--out", str(tmp_path / "m.bin"),
            "--positive", "hq", "--bucket", "20000", "--epoch", "10", "--lr", "0.5", "--group-column", "src",
            "--valid-fraction", "0.5",
        ],
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "m.bin.report.json").read_text())
    assert rep["positive_label"] == "__label__hq" and sorted(rep["labels"]) == ["__label__hq", "__label__lq"]
    assert "ROC-AUC" in r.output
    out = FastTextScore(model_path=str(tmp_path / "m.bin"), label="hq").bind("ft", 0)(t.slice(0, 5)).kept
    assert out.num_rows == 5
    bad = runner.invoke(
        app, ["fasttext", "train", str(tmp_path / "labeled.parquet"), "--out", str(tmp_path / "n.bin")]
    )
    assert bad.exit_code == 2 and "positive label '__label__1' does not occur" in bad.output
    bad = runner.invoke(
        app, ["fasttext", "train", str(tmp_path / "nope.parquet"), "--out", str(tmp_path / "n.bin")]
    )
    assert bad.exit_code != 0


def test_report_path_option(tmp_path, labeled):
    rep = train_classifier(
        labeled,
        tmp_path / "m.bin",
        config=FastTextTrainConfig(bucket=5_000, dim=8),
        report_path=tmp_path / "r" / "rep.json",
    )
    assert Path(rep["report_path"]).is_file() and not (tmp_path / "m.bin.report.json").exists()
