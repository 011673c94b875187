"""Benchmark: quality-scorer ROC-AUC on sources never seen in training.

    .venv/bin/python bench/quality_scorer.py [--data ../shared/data/quality-dev/quality_train.parquet]
                                             [--folds 5] [--epoch 3 --lr 0.1 --bucket 2000000]

Trains `curate fasttext train`-style classifiers (curate.preselect.train_classifier) on the
labeled paragraphs and scores them with the `fasttext_score` stage. The split holds out
whole sources: the sorted source names are dealt round-robin into --folds folds, each
fold's sources are held out once, and the held-out predictions of all folds are pooled
into one ROC-AUC (plus per-fold ROC-AUC and the mean score per category). Without --data
(or when the file is missing) it falls back to curate.testing.textgen (prose vs
boilerplate/spam/shuffled, one pseudo-source per generator seed block).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from curate.preselect import FastTextTrainConfig, roc_auc, train_classifier
from curate.stages.fasttext_score import FastTextScore

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2] / "shared" / "data" / "quality-dev" / "quality_train.parquet"
)


def _fallback() -> pa.Table:
    from curate.testing import textgen as tg

    rows = []
    for block in range(6):
        for t in tg.prose_paragraphs(200, 100 + block):
            rows.append((t, 1, "prose", f"prose{block}"))
        for gen, cat in ((tg.boilerplate, "boilerplate"), (tg.spam, "spam"), (tg.shuffled, "shuffled")):
            for t in gen(67, 200 + block):
                rows.append((t, 0, cat, f"junk{block}"))
    text, label, cat, src = zip(*rows)
    return pa.table({"text": list(text), "label": list(label), "category": list(cat), "source": list(src)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=str, default=str(DEFAULT_DATA))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epoch", type=int, default=3)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--word-ngrams", type=int, default=2)
    ap.add_argument("--dim", type=int, default=100)
    ap.add_argument("--bucket", type=int, default=2_000_000)
    args = ap.parse_args()

    if args.data and Path(args.data).is_file():
        table = pq.read_table(args.data)
        origin = args.data
    else:
        table = _fallback()
        origin = "curate.testing.textgen (fallback: --data not found)"
    cfg = FastTextTrainConfig(
        epoch=args.epoch, lr=args.lr, word_ngrams=args.word_ngrams, dim=args.dim, bucket=args.bucket
    )
    sources = sorted(set(table.column("source").to_pylist()))
    fold_of = {s: i % args.folds for i, s in enumerate(sources)}
    src = np.array(table.column("source").to_pylist())
    y = np.array(table.column("label").to_pylist())
    cats = np.array(table.column("category").to_pylist())
    scores = np.full(table.num_rows, np.nan)
    t0 = time.time()
    print(
        f"data: {origin}: {table.num_rows} docs, {len(sources)} sources, {args.folds} source folds; {cfg.model_dump()}"
    )
    with tempfile.TemporaryDirectory() as td:
        for k in range(args.folds):
            held = np.array([fold_of[s] == k for s in src])
            model = Path(td) / f"fold{k}.bin"
            train_classifier(table.filter(pa.array(~held)), model, config=cfg, valid_fraction=0.0)
            stage = FastTextScore(model_path=str(model)).bind("bench", 0)
            scores[held] = stage(table.filter(pa.array(held))).kept.column("quality").to_numpy()
            auc = roc_auc(y[held], scores[held])
            names = sorted(s for s in sources if fold_of[s] == k)
            print(
                f"  fold {k}: held-out sources {names}: {held.sum()} docs, ROC-AUC {'n/a' if auc is None else f'{auc:.4f}'}"
            )
    pooled = roc_auc(y, scores)
    print("mean score by category (held out):")
    for c in sorted(set(cats)):
        m = cats == c
        print(f"  {c:<18} label {int(y[m][0])}  n={m.sum():5d}  mean {scores[m].mean():.3f}")
    print(
        f"pooled held-out-source ROC-AUC: {pooled:.4f}  (accuracy@0.5 {((scores >= 0.5) == (y == 1)).mean():.4f}, {time.time() - t0:.1f} s)"
    )


if __name__ == "__main__":
    main()
