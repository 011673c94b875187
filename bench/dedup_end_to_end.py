"""Bench: curate's whole near-dedup (minhash_dedup) end to end, with quality.

Default: a generated corpus (``curate.testing.neardup``, >= 100k docs, exact word-5-gram
Jaccard ground truth). ``--data DIR`` runs on a dev set with ground truth instead
(``DIR/shards/*.parquet`` + ``DIR/ground_truth``; scored by ``--eval`` =
``shared/tools/eval_dedup.py`` at T=0.8).

curate runs at the stage's **defaults** (``--verify``/``--split`` override them;
``--verify 0`` runs unverified). Prints wall time, peak RSS and PSS of the process tree,
**scratch bytes written** (every byte the fit's processes wrote, minus the persisted state
and index) against the input's Parquet bytes, bytes per document of the band index (with
``--write-index``) and precision / recall / F1 at T=0.8. Unless ``--no-datasketch``, it
also runs datasketch 2.x MinHashLSH + Jaccard check (shared/tools/run_datasketch.py
semantics) in a process of its own on the same files, measured the same way, and prints
the ratios. Fit tasks run on 2 threads of one process, as the local
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


def write_chars(p) -> int:
    """Bytes a process has written through write() so far (/proc/PID/io wchar)."""
    with contextlib.suppress(Exception):
        return p.io_counters().write_chars
    return 0


def run_measured(cmd: list[str]) -> tuple[int, int, int]:
    """Run ``cmd``, polling its process tree every 0.05 s from this process (so the poller
    costs the measured process nothing): peak tree RSS and PSS, and the bytes its
    descendants wrote (the last value seen of each; the process itself reports its own)."""
    import psutil

    proc = subprocess.Popen(cmd)
    ps = psutil.Process(proc.pid)
    peak = peak_pss = 0
    writes: dict[int, int] = {}
    while proc.poll() is None:
        rss, pss = tree_mem(ps)
        peak, peak_pss = max(peak, rss), max(peak_pss, pss)
        with contextlib.suppress(Exception):
            for c in ps.children(recursive=True):
                writes[c.pid] = max(writes.get(c.pid, 0), write_chars(c))
        time.sleep(0.05)
    if proc.returncode:
        raise RuntimeError(f"{cmd[2:4]} failed with exit code {proc.returncode}")
    return peak, peak_pss, sum(writes.values())


def _dir_bytes(p: Path, pattern: str) -> int:
    return sum(f.stat().st_size for f in p.rglob(pattern) if f.is_file()) if p.exists() else 0


def run_curate(files: list[str], work: Path, params: dict, workers: int, kind: str = "threads") -> tuple[set[str], dict]:
    import psutil

    from curate.stages.minhash_dedup import MinHashDedup

    st = MinHashDedup(params).bind("near", seed=1)
    runner = PoolRunner(workers) if kind == "processes" else ThreadTaskRunner(workers)
    ctx = FitContext(runner=runner, state_dir=work / "state", scratch_dir=work / "scratch", seed=1, node_id="near")
    w0 = write_chars(psutil.Process())
    t0 = time.perf_counter()
    state = st.fit({"in": ShardSet(files=tuple(files))}, ctx)
    t_fit = time.perf_counter() - t0
    removed: set[str] = set()
    for f in files:  # apply (the map phase the executor runs per shard)
        r = st.apply(pq.read_table(f, columns=["id"]), state)
        if r.rejected is not None:
            removed.update(r.rejected.column("id").to_pylist())
    wall = time.perf_counter() - t0
    written = write_chars(psutil.Process()) - w0  # (a process pool's workers: counted by the parent)
    if kind == "processes":
        runner.pool.shutdown()
    else:
        runner.close()
    kept_files = _dir_bytes(work / "state", "*") + (_dir_bytes(Path(params["write_index"]), "*")
                                                    if params.get("write_index") else 0)
    # exact peak RSS of this process (VmHWM restarts at exec; ru_maxrss would carry the
    # forking parent's RSS, which holds the generated corpus)
    hwm = next((int(ln.split()[1]) / 1024 for ln in Path("/proc/self/status").read_text().splitlines()
                if ln.startswith("VmHWM:")), 0.0)
    return removed, {"wall_s": round(wall, 2), "fit_s": round(t_fit, 2), "driver_hwm_mb": round(hwm),
                     "stats": state["stats"],
                     "scratch_bytes": written - kept_files}


def measure_datasketch(files: list[str], work: Path) -> tuple[set[str], float, int, int, int]:
    """:func:`run_datasketch` in a process of its own: removed ids, wall seconds, peak tree
    RSS and PSS, bytes written by its descendants (it has none: it writes nothing)."""
    job = work / "datasketch-job.json"
    job.write_text(json.dumps({"files": files}))
    peak, peak_pss, written = run_measured([sys.executable, __file__, "--run-datasketch", str(job)])
    res = json.loads((work / "datasketch-result.json").read_text())
    return set(res["removed"]), res["wall_s"], peak, peak_pss, written


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
    ap.add_argument("--verify", type=float, default=None, help="verify_jaccard (default: the stage's; 0: off)")
    ap.add_argument("--split", default=None, choices=["keep", "coverage"], help="verify_split (default: the stage's)")
    ap.add_argument("--write-index", action="store_true", help="also write the band index (bytes/doc)")
    ap.add_argument("--no-datasketch", action="store_true")
    ap.add_argument("--datatrove-python", default=None, help="python of a separate env with datatrove 0.10.1")
    ap.add_argument("--datatrove-script",
                    default=str(Path(__file__).resolve().parents[2] / "shared/tools/run_datatrove.py"))
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--run-curate", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--run-datasketch", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.run_datasketch:
        job = json.loads(Path(a.run_datasketch).read_text())
        rem, wall = run_datasketch(job["files"])
        (Path(a.run_datasketch).parent / "datasketch-result.json").write_text(
            json.dumps({"removed": sorted(rem), "wall_s": wall}))
        return
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

    params: dict = {}
    if a.verify is not None:
        params["verify_jaccard"] = a.verify or None
    if a.split is not None:
        params["verify_split"] = a.split
    if a.write_index:
        params["write_index"] = str(work / "index")
    from curate.stages.minhash_dedup import MinHashDedupParams

    eff = MinHashDedupParams(**params)
    input_bytes = sum(os.path.getsize(f) for f in files)
    # curate runs in a fresh process, so its memory figures exclude this driver (corpus, truth)
    job = work / "curate-job.json"
    job.write_text(json.dumps({"files": files, "work": str(work / "curate"), "params": params,
                               "workers": a.workers, "runner": a.runner}))
    peak, peak_pss, child_writes = run_measured([sys.executable, __file__, "--run-curate", str(job)])
    res = json.loads((work / "curate-result.json").read_text())
    removed, info = set(res["removed"]), res["info"]
    info.update(peak_tree_rss_mb=round(peak / 2**20), peak_tree_pss_mb=round(peak_pss / 2**20))
    info["scratch_bytes"] += child_writes
    kept_docs = n_docs - len(removed)
    scratch = info["scratch_bytes"]
    print(f"curate minhash_dedup (14x8, verify_jaccard {eff.verify_jaccard}, verify_split {eff.verify_split}, "
          f"{a.workers} {a.runner}): wall {info['wall_s']}s (fit {info['fit_s']}s), peak tree RSS "
          f"{info['peak_tree_rss_mb']} MB (PSS {info['peak_tree_pss_mb']} MB), driver process peak RSS (VmHWM) "
          f"{info['driver_hwm_mb']} MB; scratch written {scratch / 2**20:.1f} MB = {scratch / input_bytes:.2f}x the "
          f"input's {input_bytes / 2**20:.1f} MB of Parquet")
    if a.write_index:
        idx_bands = _dir_bytes(work / "index", "bands-*.parquet")
        idx_sets = _dir_bytes(work / "index", "sets-*.parquet")
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
        rem_d, t_d, peak_d, pss_d, wrote_d = measure_datasketch(files, work)
        md = score(rem_d, "datasketch")
        print(f"datasketch MinHashLSH(0.8, 128) + Jaccard check, 1 process: wall {t_d:.1f}s, peak tree RSS "
              f"{peak_d / 2**20:.0f} MB (PSS {pss_d / 2**20:.0f} MB), wrote {wrote_d / 2**20:.1f} MB; "
              f"T=0.8: precision {md['precision']:.4f} recall {md['recall']:.4f} F1 {md['f1']:.4f}")
        print(f"ratios vs datasketch: speed {t_d / info['wall_s']:.2f}x, F1 {m['f1'] - md['f1']:+.4f}, "
              f"peak PSS {info['peak_tree_pss_mb'] / (pss_d / 2**20):.2f}x "
              f"({info['peak_tree_pss_mb']} MB vs {pss_d / 2**20:.0f} MB)")
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
