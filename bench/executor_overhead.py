"""Executor overhead: a map-only pipeline through the local and the Ray executor.

Prints docs/s for each and their ratio (target: Ray >= 0.8x local with 2 CPUs), and the
local executor's peak RSS at 1x and 4x corpus size (target: <= 1.2x growth).

    .venv/bin/python bench/executor_overhead.py [--docs 60000] [--cpus 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_corpus(out: Path, docs: int, files: int, seed: int = 0) -> None:
    from curate.testing import textgen

    out.mkdir(parents=True, exist_ok=True)
    base = textgen.prose_paragraphs(min(docs, 5000), seed)
    per = docs // files
    for f in range(files):
        texts = [base[(f * per + i) % len(base)] + f" [{f}:{i}]" for i in range(per)]
        pq.write_table(pa.table({"text": texts}), out / f"part-{f:04d}.parquet", row_group_size=5000)


def spec(inp: str, out: str) -> dict:
    return {
        "name": "overhead",
        "settings": {"rows_per_shard": 5000, "batch_size": 4096},
        "inputs": {"docs": {"path": inp}},
        "nodes": [
            {"id": "len", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 5, "max_chars": 100000}},
            {"id": "s", "stage": "sample", "inputs": ["len"], "params": {"fraction": 0.9}},
        ],
        "outputs": {"o": {"node": "s", "path": out}},
    }


def run_child(executor: str, inp: str, work: str, cpus: int) -> dict:
    code = f"""
import json, time, resource, sys
sys.path.insert(0, {str(ROOT)!r})
if {executor!r} == "ray":
    import ray; ray.init(address="local", num_cpus={cpus}, include_dashboard=False, log_to_driver=False)
from workers import run_pipeline
spec = {json.dumps(spec(inp, work + '/out'))}
walls = []
for rep in range(2):  # first run: cold (Ray workers import curate); second: warm
    t = time.perf_counter()
    r = run_pipeline(spec, executor={executor!r}, job_dir={work!r} + '/job')
    walls.append(time.perf_counter() - t)
print(json.dumps({{"cold": walls[0], "wall": walls[1], "docs": r.ledger["docs"]["in"], "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=60000)
    ap.add_argument("--cpus", type=int, default=2)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        make_corpus(t / "c1", a.docs, 8)
        make_corpus(t / "c4", a.docs * 4, 32)
        loc = run_child("local", str(t / "c1/*.parquet"), str(t / "wl"), a.cpus)
        ray = run_child("ray", str(t / "c1/*.parquet"), str(t / "wr"), a.cpus)
        loc4 = run_child("local", str(t / "c4/*.parquet"), str(t / "wl4"), a.cpus)
    l_dps, r_dps = loc["docs"] / loc["wall"], ray["docs"] / ray["wall"]
    print(f"local executor : {l_dps:10.0f} docs/s  ({loc['docs']} docs, {loc['wall']:.1f} s)")
    print(f"ray executor   : {r_dps:10.0f} docs/s  ({ray['docs']} docs, {ray['wall']:.1f} s, {a.cpus} CPUs, Ray start excluded)")
    print(f"ratio ray/local: {r_dps / l_dps:.2f}x warm   (target >= 0.8x); cold first run {loc['cold'] / ray['cold']:.2f}x")
    print(f"local peak RSS : {loc['maxrss_mb']:.0f} MB at 1x, {loc4['maxrss_mb']:.0f} MB at 4x -> growth {loc4['maxrss_mb'] / loc['maxrss_mb']:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
