"""How well ``curate plan --estimate`` predicts a real run on this machine.

Writes a corpus of ``--files`` equal files, estimates the quickstart pipeline on a sample
of 1/``--ratio`` of it (for the local executor, this machine's CPUs), then runs it for real
in a fresh process (as ``curate run --executor local`` would) and prints the signed error
of the predicted wall time, scratch bytes (bytes written by the barrier fits) and output
bytes. Target: |error| <= 35% for wall time and scratch.

    .venv/bin/python bench/estimate_accuracy.py [--files 8] [--rows 2000] [--ratio 8]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run_real(spec_file: Path, job_dir: Path, threads: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "workers.estimate_probe", str(spec_file), str(job_dir), str(threads)],
                         check=True, capture_output=True, text=True, env=env, cwd=ROOT)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=8)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--ratio", type=int, default=8)
    args = ap.parse_args()
    from curate.estimate_model import Cluster
    from curate.testing.sizing import quickstart_spec, train_model, write_sized_corpus
    from workers.estimate import estimate

    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="curate-bench-est-") as tmp:
        t = Path(tmp)
        write_sized_corpus(t / "corpus", args.files, args.rows)
        model = train_model(t / "corpus", t / "lm.arpa")
        spec = quickstart_spec(t / "corpus", model, t / "work")
        spec_file = t / "spec.json"
        spec_file.write_text(json.dumps(spec))
        t0 = time.perf_counter()
        est = estimate(spec, Cluster(nodes=1, cpus_per_node=cpus, executor="local"),
                       sample_rows=args.files * args.rows // args.ratio)
        est_s = time.perf_counter() - t0
        real = run_real(spec_file, t / "work" / "job", cpus)
    real_out = sum(real["outputs"].values())
    pred_out = sum(est.output_bytes.values())
    print(f"corpus {args.files * args.rows} docs, sample 1/{args.ratio} ({est.sample_docs[-1]} docs), "
          f"local executor, {cpus} CPUs; the estimate itself took {est_s:.1f} s")
    print(f"{'quantity':<16}{'predicted':>14}{'real':>14}{'error':>9}")
    for name, p, r in (("wall s", est.wall_s, real["wall_s"]), ("scratch bytes", est.scratch_bytes, real["fit_written"]),
                       ("output bytes", pred_out, real_out)):
        print(f"{name:<16}{p:>14.1f}{r:>14.1f}{(p - r) / r:>+9.1%}")
    print("per fit (predicted / real s):", ", ".join(
        f"{b.node} {b.fit_wall_s:.2f}/{real['steps'][_step_of(est, b.node)]['fit_s']:.2f}" for b in est.barriers))


def _step_of(est, node: str) -> str:
    return next(n.step for n in est.nodes if n.node == node)


if __name__ == "__main__":
    main()
