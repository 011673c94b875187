"""A job that measures itself: per step its shard time, per barrier fit its wall time, the
bytes written while it ran and its peak resident memory.

Used by the estimator (``workers/estimate.py``) on its samples, and by the benches and the
accuracy test on real runs, so prediction and reality are measured the same way. It runs
the local executor in this process: bytes written are this process's ``wchar``
(``/proc/self/io``), memory its resident set (``/proc/self/statm``), sampled every few ms.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from workers.job import Job, JobResult
from workers.local import LocalExecutor
from workers.task_runners import release_memory

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def written_bytes() -> int:
    """Bytes this process has passed to write() so far (0 where /proc is missing)."""
    try:
        with open("/proc/self/io") as fh:
            for line in fh:
                if line.startswith("wchar:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def resident_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except OSError:
        return 0


def _arrow_bytes() -> int:
    import pyarrow as pa

    return pa.total_allocated_bytes()


class PeakSampler:
    """Peak memory growth above the start, sampled on a thread while in the ``with``: the
    larger of the resident set's growth and Arrow's allocated bytes' growth (a small fit's
    tables fit in pages the allocator already holds, so its resident set need not grow)."""

    def __init__(self, interval: float = 0.004):
        self.interval, self.peak_rss, self.peak_arrow = interval, 0, 0
        self._stop = threading.Event()

    def __enter__(self) -> "PeakSampler":
        self.base_rss = self.peak_rss = resident_bytes()
        self.base_arrow = self.peak_arrow = _arrow_bytes()
        self._t = threading.Thread(target=self._run, name="curate-peak", daemon=True)
        self._t.start()
        return self

    def _sample(self) -> None:
        self.peak_rss = max(self.peak_rss, resident_bytes())
        self.peak_arrow = max(self.peak_arrow, _arrow_bytes())

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._t.join()
        self._sample()

    @property
    def growth(self) -> int:
        return max(0, self.peak_rss - self.base_rss, self.peak_arrow - self.base_arrow)


@dataclass
class StepMeasure:
    step_s: float = 0.0  # the whole step: fit + shards
    fit_s: float = 0.0
    fit_written: int = 0
    fit_peak: int = 0


class MeasuredJob(Job):
    """:class:`workers.job.Job` on the local executor, recording :class:`StepMeasure` per step
    (``self.measures``, by step id), the job's wall time (``self.wall_s``) and the report's
(``self.report_s``)."""

    def __init__(self, spec: Any, job_dir: str | Path, fit_threads: int = 1, **kw: Any):
        super().__init__(spec, LocalExecutor(fit_threads=fit_threads), job_dir=job_dir, **kw)
        self.measures: dict[str, StepMeasure] = {}
        self.wall_s = self.report_s = 0.0

    def run(self) -> JobResult:
        t0 = time.perf_counter()
        try:
            return super().run()
        finally:
            self.wall_s = time.perf_counter() - t0

    def _write_report(self) -> None:
        t0 = time.perf_counter()
        try:
            super()._write_report()
        finally:
            self.report_s = time.perf_counter() - t0

    def _run_step(self, step, shards_by_input):  # type: ignore[override]
        m = self.measures.setdefault(step.id, StepMeasure())
        t0 = time.perf_counter()
        try:
            return super()._run_step(step, shards_by_input)
        finally:
            m.step_s = time.perf_counter() - t0

    def _fit(self, step, fp):  # type: ignore[override]
        m = self.measures.setdefault(step.id, StepMeasure())
        release_memory()
        w0, t0 = written_bytes(), time.perf_counter()
        peak = PeakSampler()
        try:
            with peak:
                return super()._fit(step, fp)
        finally:
            m.fit_s = time.perf_counter() - t0
            m.fit_written = written_bytes() - w0
            m.fit_peak = peak.growth


def pss_bytes() -> int:
    """This process's proportional set size (``/proc/self/smaps_rollup``; RSS where missing)."""
    try:
        with open("/proc/self/smaps_rollup") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resident_bytes()


def main(argv: list[str] | None = None) -> None:
    """``python -m workers.estimate_probe SPEC JOB_DIR [FIT_THREADS]``: run a spec measured,
    print JSON: job wall time, per-step measures, bytes written in fits, peak PSS."""
    import json
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    spec, job_dir = args[0], args[1]
    threads = int(args[2]) if len(args) > 2 else (os.cpu_count() or 1)
    peak = [pss_bytes()]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], pss_bytes())

    t = threading.Thread(target=sample, daemon=True)
    t.start()
    job = MeasuredJob(spec, job_dir=job_dir, fit_threads=threads)
    res = job.run()
    stop.set()
    t.join()
    print(json.dumps({
        "wall_s": job.wall_s, "peak_pss": max(peak[0], pss_bytes()),
        "fit_written": sum(m.fit_written for m in job.measures.values()),
        "fit_s": sum(m.fit_s for m in job.measures.values()),
        "steps": {k: vars(m) for k, m in job.measures.items()},
        "outputs": {k: sum(p.stat().st_size for p in Path(v).glob("part-*.parquet")) for k, v in res.outputs.items()
                    if "://" not in v},
        "ledger": res.ledger,
    }))


if __name__ == "__main__":
    main()
