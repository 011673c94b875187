"""Benchmark: the `language_id` stage vs raw lid.176 `model.predict` on the same lines, one run.

    .venv/bin/python bench/language_id.py [--docs 20000] [--batch 4096] [--repeat 3]

Documents: the multilingual sample corpus (six languages, generated, no download) and, when
present, ``../shared/data/dedup-dev`` text, repeated up to --docs. The raw reference gets the
lines already newline-replaced (that preprocessing is not timed) and one predict call over all
of them; the stage gets Arrow batches and does everything itself (newline replacement,
prediction, label normalization, two column appends). Best of --repeat runs, interleaved.
Prints docs/s for both, the ratio stage/raw (target >= 0.9x) and checks the labels and
scores are identical.
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

from curate.sample_multilingual import write_multilingual_corpus
from curate.stages.language_id import LanguageId, normalize_label

DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dedup-dev" / "shards"


def _texts(n: int) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        write_multilingual_corpus(tmp, target_mb=2.0, seed=0)
        files = sorted(str(f) for f in Path(tmp).glob("*/part-*.parquet"))
        base = [t for t in pq.ParquetDataset(files).read(columns=["text"]).column("text").to_pylist() if t]
    if DEV.is_dir():
        f = min(DEV.glob("part-*.parquet"))
        base += [t for t in pq.read_table(f, columns=["text"]).column("text").to_pylist()[:2000] if t]
    reps = -(-n // len(base))
    return (base * reps)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=4096, help="rows per stage batch (as an executor passes)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    texts = _texts(args.docs)
    n = len(texts)
    mb = sum(len(t.encode()) for t in texts) / 1e6
    table = pa.table({"id": [str(i) for i in range(n)], "text": texts})
    batches = [table.slice(i, args.batch) for i in range(0, n, args.batch)]
    lines = [t.replace("\n", " ") for t in texts]
    stage = LanguageId().bind("bench", 0)
    stage.ensure_setup()
    model = stage._model
    raw_best = stage_best = float("inf")
    raw_out = stage_out = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        raw_out = model.predict(lines, k=1)
        raw_best = min(raw_best, time.perf_counter() - t0)
        t0 = time.perf_counter()
        stage_out = [stage(b).kept for b in batches]
        stage_best = min(stage_best, time.perf_counter() - t0)
    got = pa.concat_tables(stage_out)
    labels, probs = raw_out
    same_lang = got.column("language").to_pylist() == [normalize_label(x[0]) for x in labels]
    same_score = np.array_equal(got.column("language_score").to_numpy(), np.array([p[0] for p in probs], np.float64))
    assert same_lang and same_score, "language_id differs from raw model.predict"
    print(f"docs: {n} ({mb:.1f} MB text, {mb * 1e6 / n:.0f} B/doc), model: bundled lid.176.ftz")
    print(f"raw model.predict(lines, k=1): {raw_best:.3f} s  {n / raw_best:,.0f} docs/s")
    print(f"language_id stage:             {stage_best:.3f} s  {n / stage_best:,.0f} docs/s")
    print(f"ratio stage/raw throughput: {raw_best / stage_best:.3f}x (target >= 0.9x); output identical: True")


if __name__ == "__main__":
    main()
