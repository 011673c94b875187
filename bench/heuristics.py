"""quality_signals + heuristic_filter vs datatrove 0.10.1's heuristic filters, side by side.

    python bench/heuristics.py [--limit 2000] [--datatrove-python /work/bench-venv-datatrove/bin/python]

datatrove runs in its own environment (it needs spacy, tokenizers, xxhash<4; never a curate
dependency): this script re-runs itself there with ``--datatrove-worker`` on the same documents.
Both sides are pinned to one CPU. datatrove runs GopherQualityFilter, GopherRepetitionFilter,
C4QualityFilter and FineWebQualityFilter with their defaults, each on fresh copies of the
documents; curate runs ``quality_signals`` once and ``heuristic_filter`` once per preset
(``gopher_quality``, ``gopher_repetition``, ``c4``, ``fineweb``: datatrove's defaults).

Prints per filter the decision agreement (keep / reject), the disagreements (document, each
side's reason, curate's signal against the threshold) and docs/s of both with the ratio.
Documents: ``../shared/data/dedup-dev`` text when present (real technical text), else the
generated sample corpus. Targets: agreement >= 99% per filter, curate >= 50x datatrove.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import tempfile
import time
from pathlib import Path

FILTERS = ("gopher_quality", "gopher_repetition", "c4", "fineweb")
DEV = Path(__file__).resolve().parents[2] / "shared" / "data" / "dedup-dev" / "shards"


def _pin_one_cpu() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})


def datatrove_worker(inp: str, out: str) -> None:
    """Runs inside the datatrove environment: decisions and seconds per filter."""
    import pyarrow.parquet as pq
    from datatrove.data import Document
    from datatrove.pipeline.filters import (
        C4QualityFilter,
        FineWebQualityFilter,
        GopherQualityFilter,
        GopherRepetitionFilter,
    )

    _pin_one_cpu()
    rows = pq.read_table(inp).to_pylist()
    filters = dict(zip(FILTERS, (GopherQualityFilter(), GopherRepetitionFilter(), C4QualityFilter(),
                                 FineWebQualityFilter())))
    warm = Document(text=rows[0]["text"], id="warm")
    for f in filters.values():  # load spaCy etc. outside the timing
        f.filter(Document(text=warm.text, id="warm"))
    res = {}
    for name, f in filters.items():
        decisions = []
        t0, c0 = time.perf_counter(), time.process_time()
        for r in rows:
            try:
                d = f.filter(Document(text=r["text"], id=r["id"]))
            except Exception as e:  # noqa: BLE001 - a crash is a decision worth reporting
                d = (False, f"error:{type(e).__name__}")
            decisions.append("keep" if d is True else (d[1] if isinstance(d, tuple) else "reject"))
        res[name] = {"decisions": decisions, "seconds": time.perf_counter() - t0, "cpu": time.process_time() - c0}
    Path(out).write_text(json.dumps(res))


def load_docs(limit: int):
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if DEV.is_dir():
        parts, n = [], 0
        for f in sorted(DEV.glob("part-*.parquet")):
            t = pq.read_table(f, columns=["id", "text"])
            parts.append(t)
            n += t.num_rows
            if n >= limit:
                break
        t = pa.concat_tables(parts).slice(0, limit)
        return t, f"dedup-dev ({DEV})"
    from curate.sample_data import write_sample_corpus

    tmp = Path(tempfile.mkdtemp(prefix="bench-heur-"))
    write_sample_corpus(tmp, target_mb=max(1.0, limit * 2500 / 1e6), seed=0)
    t = pq.ParquetDataset(sorted(str(f) for f in tmp.glob("*/part-*.parquet"))).read(columns=["text"])
    t = t.filter(pc.greater(pc.utf8_length(pc.fill_null(t.column("text"), "")), 0)).slice(0, limit)
    return t.append_column("id", pa.array([f"g{i}" for i in range(t.num_rows)])), "generated sample corpus"


def run_curate(t, repeat: int):
    """Decisions per filter, and the best (wall, cpu) seconds of ``repeat`` runs of the
    signals and of the four filters."""
    import pyarrow as pa

    from curate.stages.heuristic_filter import HeuristicFilter
    from curate.stages.quality_signals import QualitySignals

    t = t.append_column("language", pa.array(["en"] * t.num_rows))
    qs = QualitySignals()
    filters = {name: HeuristicFilter(presets=[name]) for name in FILTERS}
    warm = qs(t.slice(0, 8)).kept  # numba compile (cached) outside the timing
    for f in filters.values():
        f(warm)
    best = {"signals": (float("inf"), float("inf")), "filters": (float("inf"), float("inf"))}
    out = {}
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        scored = qs(t).kept
        best["signals"] = min(best["signals"], (time.perf_counter() - t0, time.process_time() - c0))
        t0, c0 = time.perf_counter(), time.process_time()
        results = {name: f(scored) for name, f in filters.items()}
        best["filters"] = min(best["filters"], (time.perf_counter() - t0, time.process_time() - c0))
    for name, res in results.items():
        dec = {i: ("keep", "") for i in res.kept.column("id").to_pylist()}
        if res.rejected is not None:
            for i, r, d in zip(*(res.rejected.column(c).to_pylist() for c in ("id", "reason", "detail"))):
                dec[i] = (r, d)
        out[name] = dec
    return out, best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--limit", type=int, default=2000, help="documents (default 2000)")
    ap.add_argument("--datatrove-python", default="/work/bench-venv-datatrove/bin/python",
                    help="python of an environment with datatrove==0.10.1, spacy, tokenizers, xxhash<4")
    ap.add_argument("--show", type=int, default=10, help="disagreements listed per filter")
    ap.add_argument("--repeat", type=int, default=3, help="curate runs (best is reported)")
    ap.add_argument("--datatrove-worker", nargs=2, metavar=("IN", "OUT"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.datatrove_worker:
        datatrove_worker(*a.datatrove_worker)
        return
    _pin_one_cpu()
    import pyarrow.parquet as pq

    t, source = load_docs(a.limit)
    n = t.num_rows
    texts = dict(zip(t.column("id").to_pylist(), t.column("text").to_pylist()))
    with tempfile.TemporaryDirectory(prefix="bench-heur-") as tmp:
        inp, outp = Path(tmp) / "docs.parquet", Path(tmp) / "dt.json"
        pq.write_table(t.select(["id", "text"]), inp)
        print(f"{n} documents from {source}; datatrove in {a.datatrove_python} (1 CPU) ...", flush=True)
        subprocess.run([a.datatrove_python, __file__, "--datatrove-worker", str(inp), str(outp)], check=True)
        dt = json.loads(outp.read_text())
    ours, best = run_curate(t, a.repeat)
    ids = t.column("id").to_pylist()
    print(f"\n{'filter':<18} {'agree':>8} {'dt rejects':>10} {'curate rejects':>14} {'datatrove docs/s':>16}")
    for name in FILTERS:
        theirs = dt[name]["decisions"]
        agree = sum((ours[name][i][0] == "keep") == (d == "keep") for i, d in zip(ids, theirs))
        print(f"{name:<18} {agree / n:>8.2%} {sum(d != 'keep' for d in theirs):>10} "
              f"{sum(ours[name][i][0] != 'keep' for i in ids):>14} {n / dt[name]['seconds']:>16.1f}")
    for name in FILTERS:
        bad = [(i, d) for i, d in zip(ids, dt[name]["decisions"]) if (ours[name][i][0] == "keep") != (d == "keep")]
        if bad:
            print(f"\n{name}: {len(bad)} disagreements (datatrove reason | curate detail | text start)")
            for i, d in bad[: a.show]:
                snippet = (texts[i] or "")[:70].replace("\n", "\\n")
                print(f"  {i}: {d} | {ours[name][i][1] or 'kept'} | {snippet!r}")
    dt_wall = sum(dt[name]["seconds"] for name in FILTERS)
    dt_cpu = sum(dt[name]["cpu"] for name in FILTERS)
    (sw, sc), (fw, fc) = best["signals"], best["filters"]
    print(f"\ndatatrove, four filters in a row: {dt_wall:.2f} s wall ({dt_cpu:.2f} s CPU) = {n / dt_wall:.1f} docs/s")
    print(f"curate (best of {a.repeat}): quality_signals {sw:.3f} s + heuristic_filter x4 {fw:.3f} s wall "
          f"({sc + fc:.3f} s CPU) = {n / (sw + fw):.0f} docs/s")
    print(f"ratio (curate / datatrove docs/s): {dt_wall / (sw + fw):.1f}x wall, {dt_cpu / (sc + fc):.1f}x CPU time "
          f"(target >= 50x; the machine is shared, CPU time is the steadier figure)")


if __name__ == "__main__":
    main()
