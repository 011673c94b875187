"""A corpus of equal files and the quickstart pipeline on it, for the estimator's accuracy
test and benches (``tests/test_estimate_accuracy.py``, ``bench/estimate_accuracy.py``,
``bench/scaling.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.sample_data import write_sample_corpus

TEXT_BYTES_PER_DOC = 1650  # about what the sample corpus averages


def write_sized_corpus(root: str | Path, files: int, rows: int, seed: int = 0) -> list[Path]:
    """``files`` Parquet files of ``rows`` documents each under ``root``: the sample corpus
    (every domain, its exact and near duplicates) dealt round-robin, so each file looks alike."""
    root = Path(root)
    raw = root.parent / f".{root.name}-raw"
    need = files * rows
    write_sample_corpus(raw, target_mb=need * TEXT_BYTES_PER_DOC * 1.15 / 1e6, seed=seed)
    tables = [pq.read_table(p, columns=["text"]) for p in sorted(raw.rglob("part-*.parquet"))]
    shutil.rmtree(raw, ignore_errors=True)
    texts = pa.concat_tables(tables).column("text").to_pylist()
    if len(texts) < need:  # pad by repeating (the repeats are exact duplicates, as in a crawl)
        texts = (texts * (need // max(1, len(texts)) + 1))[:need]
    root.mkdir(parents=True, exist_ok=True)
    out = []
    for f in range(files):
        p = root / f"part-{f:05d}.parquet"
        pq.write_table(pa.table({"text": texts[f:need:files]}), p, compression="zstd")
        out.append(p)
    return out


def train_model(corpus: str | Path, out: str | Path, order: int = 3) -> Path:
    """A small KenLM model (numpy backend) on the corpus, for ``perplexity_score``."""
    from curate.lm import iter_corpus, train_lm

    train_lm(iter_corpus(str(Path(corpus) / "part-00000.parquet")), order, str(out), backend="numpy")
    return Path(out)


def quickstart_spec(corpus: str | Path, model: str | Path, work: str | Path, *, rows_per_shard: int = 2000) -> dict[str, Any]:
    """``pipelines/quickstart.yaml`` on ``corpus`` with everything written under ``work``."""
    work = Path(work)
    return {
        "name": "quickstart",
        "seed": 42,
        "job_dir": str(work / "job"),
        "settings": {"batch_size": 2048, "rows_per_shard": rows_per_shard},
        "inputs": {"sample": {"path": f"{corpus}/*.parquet", "text_column": "text"}},
        "nodes": [
            {"id": "clean", "stage": "length_filter", "inputs": ["sample"], "params": {"min_words": 20, "max_chars": 200000}},
            {"id": "exact", "stage": "exact_dedup", "inputs": ["clean"]},
            {"id": "near", "stage": "minhash_dedup", "inputs": ["exact"],
             "params": {"bands": 14, "rows": 8, "num_perm": 112, "ngram": 5, "verify_jaccard": 0.8, "keep": "lowest_id"}},
            {"id": "ppl", "stage": "perplexity_score", "inputs": ["near"], "params": {"model": str(model), "expected_order": 3}},
            {"id": "select", "stage": "perplexity_filter", "inputs": ["ppl"],
             "params": {"method": "percentile", "percentiles": [30, 60], "keep_buckets": ["head", "middle"]}},
        ],
        "outputs": {"curated": {"node": "select", "path": str(work / "output")}},
    }
