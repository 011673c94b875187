"""Benchmark: the `fasttext_score` stage vs raw `model.predict` on the same lines, one run.

    .venv/bin/python bench/fasttext_scoring.py [--docs 20000] [--model M.bin] [--data X.parquet]

Without --model a small scorer is trained first (prose vs junk from curate.testing.textgen,
bucket 200k, dim 100). Documents come from --data (a Parquet file with a `text` column,
e.g. ../shared/data/quality-dev/quality_train.parquet) or from textgen, repeated up to
--docs. The raw reference gets lines already newline-replaced (its preprocessing is not
timed); the stage gets the Arrow batch and does everything itself (newline replacement,
prediction, label lookup, column append). Best of --repeat runs each, interleaved.
Prints docs/s for both and the ratio stage/raw (target >= 0.85) and checks equality.
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

from curate.preselect import FastTextTrainConfig, train_classifier
from curate.stages.fasttext_score import FastTextScore
from curate.testing import textgen as tg


def _texts(args: argparse.Namespace) -> list[str]:
    if args.data:
        base = [t for t in pq.read_table(args.data, columns=["text"]).column("text").to_pylist() if t]
    else:
        base = tg.prose_paragraphs(1000, 1) + tg.boilerplate(300, 2) + tg.spam(300, 3) + tg.shuffled(400, 4)
    reps = -(-args.docs // len(base))
    return (base * reps)[: args.docs]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--model", type=str, default=None)
    ap.add_argument("--data", type=str, default=None)
    ap.add_argument(
        "--batch", type=int, default=4096, help="rows per stage batch (as an executor would pass)"
    )
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    model_path = args.model
    if model_path is None:
        pos = tg.prose_paragraphs(800, 11)
        neg = tg.boilerplate(270, 12) + tg.spam(265, 13) + tg.shuffled(265, 14)
        table = pa.table({"text": pos + neg, "label": [1] * len(pos) + [0] * len(neg)})
        model_path = str(Path(tmp.name) / "bench.bin")
        train_classifier(table, model_path, config=FastTextTrainConfig(bucket=200_000), valid_fraction=0.0)
    texts = _texts(args)
    n = len(texts)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    batch = pa.table({"id": [str(i) for i in range(n)], "text": texts})
    batches = [batch.slice(i, args.batch) for i in range(0, n, args.batch)]
    lines = [t.replace("\n", " ") for t in texts]

    stage = FastTextScore(model_path=model_path).bind("bench", 0)
    stage.ensure_setup()
    model = stage._model

    raw_best = stage_best = float("inf")
    raw_out = stage_out = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        labels, probs = model.predict(lines, k=-1)
        raw_best = min(raw_best, time.perf_counter() - t0)
        raw_out = (labels, probs)
        t0 = time.perf_counter()
        outs = [stage(b).kept.column("quality") for b in batches]
        stage_best = min(stage_best, time.perf_counter() - t0)
        stage_out = outs

    got = np.concatenate([np.asarray(c.to_numpy()) for c in stage_out])
    want = np.array([p[list(lab).index("__label__1")] for lab, p in zip(*raw_out)], dtype=np.float64)
    assert np.array_equal(got, want), "stage scores differ from raw model.predict"
    ratio = raw_best / stage_best
    print(f"docs: {n} ({mb:.1f} MB text, {mb * 1e6 / n:.0f} B/doc), model: {model_path}")
    print(f"raw model.predict(lines, k=-1): {raw_best:.3f} s  {n / raw_best:,.0f} docs/s")
    print(f"fasttext_score stage:           {stage_best:.3f} s  {n / stage_best:,.0f} docs/s")
    print(f"ratio stage/raw throughput: {ratio:.3f}x (target >= 0.85x); scores identical: True")


if __name__ == "__main__":
    main()
