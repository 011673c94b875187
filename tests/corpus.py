"""Small real-looking corpora for core tests (built from curate.testing.textgen)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from curate.testing import textgen


def write_corpus(root: Path, n_files: int = 3, rows: int = 60, seed: int = 0, row_group_size: int = 25) -> list[Path]:
    """Prose with exact copies, short docs and a few null/empty texts across files."""
    root.mkdir(parents=True, exist_ok=True)
    prose = textgen.prose_paragraphs(n_files * rows, seed)
    files = []
    for f in range(n_files):
        texts: list[str | None] = list(prose[f * rows : (f + 1) * rows])
        texts[3] = texts[1]  # an exact duplicate in the same file
        texts[5] = "too short"
        texts[7] = None
        texts[9] = "   \n  "
        if f > 0:
            texts[11] = prose[0].upper()  # a normalized duplicate across files
        t = pa.table({"text": texts, "source": [f"file{f}"] * rows, "extra": list(range(rows))})
        p = root / f"part-{f}.parquet"
        pq.write_table(t, p, row_group_size=row_group_size)
        files.append(p)
    return files


def branch_join_spec(inp: str, out: str, seed: int = 3) -> dict:
    """A spec that branches (len feeds two samples) and joins (union)."""
    return {
        "name": "branchy",
        "seed": seed,
        "settings": {"rows_per_shard": 50, "batch_size": 16},
        "inputs": {"docs": {"path": inp, "domain": "prose"}},
        "nodes": [
            {"id": "len", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5}},
            {"id": "dd", "stage": "exact_dedup", "inputs": ["len"]},
            {"id": "a", "stage": "sample", "inputs": ["dd"], "params": {"fraction": 0.5}},
            {"id": "b", "stage": "length_filter", "inputs": ["dd"], "params": {"min_words": 60}},
            {"id": "both", "stage": "union", "inputs": ["a", "b"]},
        ],
        "outputs": {"kept": {"node": "both", "path": out}},
    }
