"""Bench: curate's whole near-dedup (minhash_dedup) end to end, with quality.

Default: a generated corpus (``curate.testing.neardup``, >= 100k docs, exact word-5-gram
Jaccard ground truth). ``--data DIR`` runs on a dev set with ground truth instead
(``DIR/shards/*.parquet`` + ``DIR/ground_truth``; scored by ``--eval`` =
``shared/tools/eval_dedup.py`` at T=0.8).

Prints wall time, peak RSS (this process + children, and the tree), bytes per document of
the written band index (bands alone and with verification sets), and precision /
recall / F1 at T=0.8. With ``--datasketch`` (default on) it also runs datasketch 2.x
MinHashLSH + Jaccard check (shared/tools/run_datasketch.py semantics, in-process here) on
the same files and prints the ratios. Fit tasks run on 2 threads of one process, as the local
executor runs them (``--runner processes``: a 2-process pool, as Ray tasks would).

usage: python bench/dedup_end_to_end.py [--docs 100000] [--data DIR] [--eval PATH]
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# isort: off
import curate  # noqa: F401 - first: sets curate's allocator defaults before pyarrow loads
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
# isort: on

from curate.fit import FitContext, ShardSet, TaskRunner
from workers.task_runners import ThreadTaskRunner


class PoolRunner(TaskRunner):
    """Fit tasks on a process pool (what the Ray executor does with 2 CPUs)."""

    def __init__(self, n: int):
        self.n = n
        self.pool = cf.ProcessPoolExecutor(n)

    def map(self, fn, items):
        return list(self.pool.map(fn, items))

    @property
    def parallelism(self) -> int:
        return self.n


def tree_mem(p) -> tuple[int, int]:
    """(RSS, PSS) summed over a process tree. PSS splits shared pages (numba/LLVM, pyarrow
    libraries mapped by every worker) between processes instead of counting them again."""
    rss = pss = 0
    for q in [p, *p.children(recursive=True)]:
        with contextlib.suppress(Exception):  # processes come and go
            m = q.memory_full_info()
            rss += m.rss
            pss += getattr(m, "pss", m.rss)
    return rss, pss


class TreeRss:
    """Polls the RSS and PSS of this process tree every 0.1 s (peak of the sums)."""

    def __init__(self):
        import psutil

        self.p, self.peak, self.peak_pss, self.stop = psutil.Process(), 0, 0, False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stop:
            rss, pss = tree_mem(self.p)
            self.peak, self.peak_pss = max(self.peak, rss), max(self.peak_pss, pss)
            time.sleep(0.05)


def _dir_bytes(p: Path, pattern: str) -> int:
    return sum(f.stat().st_size for f in p.rglob(pattern))


def run_curate(files: list[str], work: Path, params: dict, workers: int, kind: str = "threads") -> tuple[set[str], dict]:
    from curate.stages.minhash_dedup import MinHashDedup

    st = MinHashDedup(params).bind("near", seed=1)
    runner = PoolRunner(workers) if kind == "processes" else ThreadTaskRunner(workers)
    ctx = FitContext(runner=runner, state_dir=work / "state", scratch_dir=work / "scratch", seed=1, node_id="near")
    rss = TreeRss()
    t0 = time.perf_counter()
    state = st.fit({"in": ShardSet(files=tuple(files))}, ctx)
    t_fit = time.perf_counter() - t0
    removed: set[str] = set()
    for f in files:  # apply (the map phase the executor runs per shard)
        r = st.apply(pq.read_table(f, columns=["id"]), state)
        if r.rejected is not None:
            removed.update(r.rejected.column("id").to_pylist())
    wall = time.perf_counter() - t0
    rss.stop = True
    if kind == "processes":
        runner.pool.shutdown()
    else:
        runner.close()
    # exact peak RSS of this process (VmHWM restarts at exec; ru_maxrss would carry the
    # forking parent's RSS, which holds the generated corpus)
    hwm = next((int(ln.split()[1]) / 1024 for ln in Path("/proc/self/status").read_text().splitlines()
                if ln.startswith("VmHWM:")), 0.0)
    return removed, {"wall_s": round(wall, 2), "fit_s": round(t_fit, 2), "peak_tree_rss_mb": round(rss.peak / 2**20),
                     "peak_tree_pss_mb": round(rss.peak_pss / 2**20), "driver_hwm_mb": round(hwm), "stats": state["stats"]}


def run_datasketch(files: list[str], threshold: float = 0.8, num_perm: int = 128) -> tuple[set[str], float]:
    """datasketch MinHashLSH, streaming keep-first, plus an estimated-Jaccard check (peer baseline)."""
    from datasketch import MinHash, MinHashLSH

    from curate.text.minhash import shingle_strings

    t0 = time.perf_counter()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    sigs: dict[str, MinHash] = {}
    removed: set[str] = set()
    for f in files:
        t = pq.read_table(f, columns=["id", "text"])
        for i, text in zip(t.column("id").to_pylist(), t.column("text").to_pylist()):
            m = MinHash(num_perm=num_perm, seed=1)
            m.update_batch([s.encode("utf-8") for s in shingle_strings(text or "", 5)])
            if any(sigs[c].jaccard(m) >= threshold for c in lsh.query(m)):
                removed.add(i)
                continue
            lsh.insert(i, m)
            sigs[i] = m
    return removed, time.perf_counter() - t0


def run_datatrove(python: str, script: str, data_dir: str, work: Path, workers: int) -> tuple[set[str], float, int, int]:
    """datatrove's 4 MinHash stages (14x8 defaults) via shared/tools/run_datatrove.py in its
    own environment; wall = sum of the stages, peak = max tree RSS over the stages."""
    import psutil

    wall, peak, peak_pss = 0.0, 0, 0
    for stage in ("1", "2", "3", "4"):
        t0 = time.perf_counter()
        proc = subprocess.Popen([python, script, "--stage", stage, "--data", data_dir, "--workdir", str(work),
                                 "--workers", str(workers)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        ps = psutil.Process(proc.pid)
        while proc.poll() is None:
            rss, pss = tree_mem(ps)
            peak, peak_pss = max(peak, rss), max(peak_pss, pss)
            time.sleep(0.05)
        wall += time.perf_counter() - t0
        if proc.returncode:
            raise RuntimeError(f"datatrove stage {stage} failed: {proc.stderr.read().decode()[-2000:]}")
    subprocess.run([python, script, "--stage", "ids", "--data", data_dir, "--workdir", str(work)], check=True,
                   capture_output=True)
    removed = {ln.strip() for ln in (work / "removed.ids").read_text().splitlines() if ln.strip()}
    return removed, wall, peak, peak_pss


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--data", default=None, help="dev set dir with shards/ and ground_truth/")
    ap.add_argument("--eval", default=str(Path(__file__).resolve().parents[2] / "shared/tools/eval_dedup.py"))
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runner", default="threads", choices=["threads", "processes"],
                    help="fit tasks on threads of one process (local executor) or a process pool (like Ray tasks)")
    ap.add_argument("--verify", type=float, default=0.8)
    ap.add_argument("--split", default="coverage", choices=["keep", "coverage"])
    ap.add_argument("--no-datasketch", action="store_true")
    ap.add_argument("--datatrove-python", default=None, help="python of a separate env with datatrove 0.10.1")
    ap.add_argument("--datatrove-script",
                    default=str(Path(__file__).resolve().parents[2] / "shared/tools/run_datatrove.py"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--run-curate", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run_curate:
        job = json.loads(Path(a.run_curate).read_text())
        rem, inf = run_curate(job["files"], Path(job["work"]), job["params"], job["workers"], job["runner"])
        (Path(a.run_curate).parent / "curate-result.json").write_text(json.dumps({"removed": sorted(rem),
                                                                                  "info": inf}))
        return
    work = Path(a.workdir or tempfile.mkdtemp(prefix="dedup-bench-"))
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)
    corpus = None
    if a.data:
        files = sorted(glob.glob(os.path.join(a.data, "shards", "*.parquet")))
        n_docs = sum(pq.ParquetFile(f).metadata.num_rows for f in files)
    else:
        from curate.testing.neardup import jaccard_bins, make_corpus

        t0 = time.perf_counter()
        corpus = make_corpus(a.docs, seed=a.seed)
        print(f"generated {a.docs} docs + exact ground truth in {time.perf_counter() - t0:.1f}s; "
              f"pairs by J: {jaccard_bins(corpus)}")
        tbl = corpus.table()
        files = []
        for k, idx in enumerate(np.array_split(np.arange(tbl.num_rows), 8)):
            f = work / "in" / f"part-{k:05d}.parquet"
            f.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(tbl.take(pa.array(idx, pa.int64())), f)
            files.append(str(f))
        n_docs = tbl.num_rows
        del tbl
        corpus.texts = []  # scoring needs ids and pairs only; free the text before measuring memory
        import gc

        gc.collect()

    params = {"verify_jaccard": a.verify, "verify_split": a.split, "write_index": str(work / "index")}
    # curate runs in a fresh process, so its memory figures exclude this driver (corpus, truth)
    job = work / "curate-job.json"
    job.write_text(json.dumps({"files": files, "work": str(work / "curate"), "params": params,
                               "workers": a.workers, "runner": a.runner}))
    subprocess.run([sys.executable, __file__, "--run-curate", str(job)], check=True)
    res = json.loads((work / "curate-result.json").read_text())
    removed, info = set(res["removed"]), res["info"]
    idx_bands = _dir_bytes(work / "index", "bands-*.parquet")
    idx_sets = _dir_bytes(work / "index", "sets-*.parquet")
    kept_docs = n_docs - len(removed)
    print(f"curate minhash_dedup (14x8, verify {a.verify}, split {a.split}, {a.workers} {a.runner}): "
          f"wall {info['wall_s']}s (fit {info['fit_s']}s), peak tree RSS {info['peak_tree_rss_mb']} MB "
          f"(PSS {info['peak_tree_pss_mb']} MB), "
          f"driver process peak RSS (VmHWM) {info['driver_hwm_mb']} MB")
    print(f"  index: {idx_bands / max(kept_docs, 1):.0f} bytes/doc (band keys), "
          f"{(idx_bands + idx_sets) / max(kept_docs, 1):.0f} bytes/doc with verification sets")
    print(f"  fit stats: {json.dumps(info['stats'])}")

    def score(rem: set[str], label: str) -> dict:
        if corpus is not None:
            from curate.testing.neardup import score_removals

            return score_removals(corpus, rem, 0.8)
        out = work / f"{label}.removed"
        out.write_text("".join(f"{i}\n" for i in sorted(rem)))
        r = subprocess.run([sys.executable, a.eval, "--gt", os.path.join(a.data, "ground_truth"),
                            "--removed-ids", str(out), "--t", "0.8", "--label", label],
                           capture_output=True, text=True, check=True)
        return json.loads(r.stdout)

    m = score(removed, "curate")
    print(f"  T=0.8: precision {m['precision']:.4f} recall {m['recall']:.4f} F1 {m['f1']:.4f} "
          f"(removed {m['removed']}, removable {m['removable']})")
    if not a.no_datasketch:
        rem_d, t_d = run_datasketch(files)
        md = score(rem_d, "datasketch")
        print(f"datasketch MinHashLSH(0.8, 128) + Jaccard check, 1 process: wall {t_d:.1f}s; "
              f"T=0.8: precision {md['precision']:.4f} recall {md['recall']:.4f} F1 {md['f1']:.4f}")
        print(f"ratios: speed {t_d / info['wall_s']:.2f}x datasketch, F1 {m['f1'] - md['f1']:+.4f}")
    if a.datatrove_python:
        data_dir = os.path.join(a.data, "shards") if a.data else str(work / "in")
        rem_t, t_t, peak_t, peak_t_pss = run_datatrove(a.datatrove_python, a.datatrove_script, data_dir, work / "datatrove",
                                           a.workers)
        mt = score(rem_t, "datatrove")
        print(f"datatrove 0.10.1 4-stage MinHash (14x8), {a.workers} workers: wall {t_t:.1f}s, peak tree RSS "
              f"{peak_t / 2**20:.0f} MB; T=0.8: precision {mt['precision']:.4f} recall {mt['recall']:.4f} "
              f"F1 {mt['f1']:.4f}")
        print(f"ratios vs datatrove: speed {t_t / info['wall_s']:.2f}x, F1 {m['f1'] - mt['f1']:+.4f}, "
              f"peak memory {info['peak_tree_rss_mb'] / (peak_t / 2**20):.2f}x by tree RSS, "
              f"{info['peak_tree_pss_mb'] / (peak_t_pss / 2**20):.2f}x by tree PSS "
              f"({info['peak_tree_pss_mb']} MB vs {peak_t_pss / 2**20:.0f} MB)")
    else:
        print("datatrove: not run (pass --datatrove-python from an env with datatrove, xxhash<4, spacy, tokenizers)")


if __name__ == "__main__":
    main()
