"""Do the barriers scale linearly? Every barrier at 1x, 4x and 16x of a generated corpus.

Each run is its own process (``python -m workers.estimate_probe``: the local executor, fit
tasks on this machine's CPUs) and prints the job's wall time, the barrier fit's own time,
peak PSS of the process and the bytes written by the fit (scratch + state). Targets, per
barrier: time(16x)/time(1x) <= 17.6 (linear + 10%) and PSS(16x)/PSS(1x) <= 1.5.

    .venv/bin/python bench/scaling.py [--base-docs 2000] [--only exact_dedup,mix]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import xxhash

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SCALES = (1, 4, 16)


def write_corpus(root: Path, base_docs: int) -> None:
    """16 files of ``base_docs`` each (1x = file 0, 4x = files 0-3, 16x = all), with a
    ``quality`` and a ``perplexity`` column (stable hashes of the text) and two domains."""
    from curate.testing.sizing import write_sized_corpus

    raw = root / "raw"
    write_sized_corpus(raw, 16, base_docs)
    for i, f in enumerate(sorted(raw.glob("*.parquet"))):
        t = pq.read_table(f)
        h = [xxhash.xxh3_64_intdigest((x or "").encode()) / 2**64 for x in t.column("text").to_pylist()]
        t = t.append_column("quality", pa.array(h)).append_column("perplexity", pa.array([10 + 990 * x for x in h]))
        t = t.append_column("domain", pa.array(["web" if x < 0.6 else "code" for x in h]))
        for s in SCALES:
            if i < s:
                d = root / f"x{s}"
                d.mkdir(parents=True, exist_ok=True)
                pq.write_table(t, d / f.name, compression="zstd")
        if i == 0:
            pq.write_table(t.slice(0, max(1, t.num_rows // 4)), root / "target.parquet")


def barrier_nodes(root: Path, docs: int, tokens: int) -> dict[str, dict]:
    return {
        "exact_dedup": {"stage": "exact_dedup"},
        "minhash-unverified": {"stage": "minhash_dedup", "params": {"verify_jaccard": None}},
        "minhash (defaults)": {"stage": "minhash_dedup"},
        "select_top": {"stage": "select_top", "params": {"column": "quality", "fraction_docs": 0.3}},
        "dsir_resample": {"stage": "dsir_resample", "params": {"target": str(root / "target.parquet"),
                                                                "budget": docs // 2, "min_tokens": 10}},
        "perplexity_filter": {"stage": "perplexity_filter"},
        "mix": {"stage": "mix", "params": {"budget_tokens": tokens // 2, "weights": {"web": 0.5, "code": 0.5}}},
    }


def run(spec: dict, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    (work / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "workers.estimate_probe", str(work / "spec.json"), str(work / "job")],
                         capture_output=True, text=True, env=env, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"run failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base-docs", type=int, default=2000)
    ap.add_argument("--only", default="")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="curate-bench-scaling-") as tmp:
        root = Path(tmp)
        write_corpus(root, args.base_docs)
        rows = []
        docs1 = pq.read_metadata(root / "x1" / "part-00000.parquet").num_rows
        tokens1 = int(pc.sum(pc.list_value_length(pc.utf8_split_whitespace(
            pq.read_table(root / "x1", columns=["text"]).column("text")))).as_py())
        for name in barrier_nodes(root, 1, 1):
            if args.only and name not in args.only.split(","):
                continue
            res = {}
            for s in SCALES:
                node = barrier_nodes(root, docs1 * s, tokens1 * s)[name]
                spec = {"name": "scaling", "seed": 1, "settings": {"rows_per_shard": 2000},
                        "inputs": {"docs": {"path": str(root / f"x{s}")}},
                        "nodes": [{"id": "b", "inputs": ["docs"], **node}],
                        "outputs": {"out": {"node": "b", "path": str(root / "out" / f"{name}-{s}")}}}
                res[s] = run(spec, root / "work" / f"{name}-{s}")
                r = res[s]
                print(f"{name:<22}{s:>3}x  docs {docs1 * s:>7}  wall {r['wall_s']:7.2f} s  fit {r['fit_s']:7.2f} s  "
                      f"PSS {r['peak_pss'] / 1e6:7.1f} MB  written {r['fit_written'] / 1e6:8.2f} MB", flush=True)
            rows.append((name, res))
    print()
    print(f"{'barrier':<22}{'wall 1x':>9}{'wall 16x':>10}{'t16/t1':>8}{'fit16/fit1':>11}{'PSS 1x':>9}{'PSS 16x':>9}"
          f"{'P16/P1':>8}{'scratch 16x':>13}  verdict")
    for name, res in rows:
        a, b = res[1], res[16]
        tr, fr, pr = b["wall_s"] / a["wall_s"], b["fit_s"] / max(a["fit_s"], 1e-9), b["peak_pss"] / a["peak_pss"]
        ok = "ok" if tr <= 17.6 and pr <= 1.5 else "MISS"
        print(f"{name:<22}{a['wall_s']:>8.2f}s{b['wall_s']:>9.2f}s{tr:>8.2f}{fr:>11.2f}{a['peak_pss'] / 1e6:>8.0f}M"
              f"{b['peak_pss'] / 1e6:>8.0f}M{pr:>8.2f}{b['fit_written'] / 1e6:>11.1f}MB  {ok}")


if __name__ == "__main__":
    main()
