"""``curate plan --estimate``: run a spec on samples of its inputs and predict a full run.

The sample is ``k`` rows spread evenly over each input file (at most ``max_files`` files per
input, evenly spaced in sorted order): deterministic, and the same files the real run
reads. The whole spec, barriers included, runs three times in a private temporary
directory (removed afterwards) on the local executor (shards on one CPU, fit tasks on
``fit_threads`` threads, default this machine's CPUs, as a fit here partitions for them):
a warm-up on ``k/16`` rows (its excess over the fitted line is the cold start: JIT
compilation, imports), then ``k/4`` and ``k`` rows, the two points times are fitted through;
bytes written use all three (:mod:`curate.estimate_model`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from curate.estimate_model import (
    Cluster,
    Estimate,
    EstimateError,
    Measurements,
    NodePoint,
    SamplePoint,
    predict,
)
from curate.registry import get_stage_class
from curate.spec import PipelineSpec, validate_spec
from workers.estimate_probe import MeasuredJob
from workers.ingest import _open, list_input_shards

__all__ = ["estimate", "measure", "EstimateError"]

DEFAULT_SAMPLE_ROWS = 16_000
DEFAULT_MAX_FILES = 32


def estimate(
    spec: Any,
    cluster: Cluster,
    *,
    corpus_bytes: int | None = None,
    corpus_docs: int | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    max_files: int = DEFAULT_MAX_FILES,
    fit_threads: int | None = None,
) -> Estimate:
    """Measure ``spec`` on samples and predict a run on ``cluster`` (see the module doc).

    The corpus defaults to the inputs' real files; ``corpus_bytes`` (input file bytes)
    and/or ``corpus_docs`` size a hypothetical one, the missing figure derived from the
    inputs' bytes per document."""
    return predict(measure(spec, corpus_bytes=corpus_bytes, corpus_docs=corpus_docs,
                           sample_rows=sample_rows, max_files=max_files, fit_threads=fit_threads), cluster)


def measure(
    spec: Any,
    *,
    corpus_bytes: int | None = None,
    corpus_docs: int | None = None,
    sample_rows: int = DEFAULT_SAMPLE_ROWS,
    max_files: int = DEFAULT_MAX_FILES,
    fit_threads: int | None = None,
) -> Measurements:
    ps = validate_spec(spec)
    if sample_rows < 64:
        raise EstimateError(f"sample_rows must be at least 64 (got {sample_rows})")
    if max_files < 1:
        raise EstimateError(f"max_files must be at least 1 (got {max_files})")
    for what, v in (("corpus_bytes", corpus_bytes), ("corpus_docs", corpus_docs)):
        if v is not None and v < 1:
            raise EstimateError(f"{what} must be >= 1 (got {v})")
    threads = max(1, fit_threads or os.cpu_count() or 1)
    real = _real_inputs(ps, max_files)
    n_files = sum(len(r["chosen"]) for r in real.values())
    k = max(16, sample_rows // max(1, n_files))
    docs, nbytes = sum(r["docs"] for r in real.values()), sum(r["bytes"] for r in real.values())
    shards = sum(r["shards"] for r in real.values())
    if corpus_docs or corpus_bytes:  # a hypothetical corpus: shards as large as the settings allow
        corpus_docs = corpus_docs or int(corpus_bytes * docs / max(1, nbytes))
        corpus_bytes = corpus_bytes or int(corpus_docs * nbytes / docs)
        shards = max(shards, -(-corpus_docs // ps.settings.rows_per_shard))
        docs, nbytes = corpus_docs, corpus_bytes
    points = []
    tmp = Path(tempfile.mkdtemp(prefix="curate-estimate-"))
    try:
        for i, rows in enumerate((max(2, k // 16), max(4, k // 4), k)):
            run_dir = tmp / f"run{i}"
            sample_spec = _sample_spec(ps, real, rows, run_dir)
            point = _run(sample_spec, run_dir, threads)
            shutil.rmtree(run_dir, ignore_errors=True)
            points.append(point)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    warm, a, b = points
    if not warm.input_docs < a.input_docs < b.input_docs:
        raise EstimateError(f"the inputs have too few rows to sample ({b.input_docs} documents)")
    slope = (b.job_wall_s - a.job_wall_s) / (b.input_docs - a.input_docs)
    cold = warm.job_wall_s - (a.job_wall_s + slope * (warm.input_docs - a.input_docs))
    return Measurements(
        points=points, cold_start_s=max(0.0, cold), real_docs=docs, real_bytes=nbytes, real_shards=shards,
        shuffle_partitions=ps.settings.shuffle_partitions, fit_threads=threads, outputs={k: o.node for k, o in ps.outputs.items()})


def _real_inputs(ps: PipelineSpec, max_files: int) -> dict[str, dict]:
    """Per read input: its files' documents, bytes and shards, and the files to sample."""
    out = {}
    for name, inp in ps.inputs.items():
        shards, bad = list_input_shards(name, inp, ps.settings.rows_per_shard)
        if bad and ps.settings.on_bad_shard == "fail":
            raise EstimateError(f"input '{name}': {bad[0]['path']}: {bad[0]['problem']}")
        files: dict[str, str] = {}
        for s in shards:
            files.setdefault(s.path, s.relpath)
        if not files:
            raise EstimateError(f"input '{name}': no readable Parquet files match {inp.path!r}")
        docs = sum(s.num_rows for s in shards)
        if docs == 0:
            raise EstimateError(f"input '{name}': its files hold no rows")
        paths = sorted(files)
        step = len(paths) / min(max_files, len(paths))
        chosen = [paths[int(i * step)] for i in range(min(max_files, len(paths)))]
        out[name] = {"docs": docs, "bytes": sum(_size(p) for p in paths), "shards": len(shards),
                     "chosen": [(p, files[p]) for p in chosen]}
    return out


def _size(path: str) -> int:
    if "://" in path:
        import fsspec

        return int(fsspec.filesystem(path.split("://", 1)[0]).size(path))
    return os.path.getsize(path)


def _sample_spec(ps: PipelineSpec, real: dict[str, dict], rows: int, run_dir: Path) -> dict:
    """The spec with each input replaced by ``rows`` rows of each of its chosen files and
    every output and the job directory moved under ``run_dir``."""
    spec = ps.model_dump(mode="json")
    for name, r in real.items():
        root = run_dir / "sample" / name
        for path, rel in r["chosen"]:
            table = _strided_rows(path, rows)
            if table is None:
                continue
            dst = root / rel.lstrip("/").replace("://", "/")
            dst.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, dst, compression="zstd")
        spec["inputs"][name]["path"] = str(root)
    for name, o in spec["outputs"].items():
        o["path"] = str(run_dir / "out" / name)
    spec["job_dir"] = str(run_dir / "job")
    return spec


def _strided_rows(path: str, rows: int) -> pa.Table | None:
    """``rows`` rows spread evenly over the file (row ``i * n / rows``): a sample in which
    repeated and near-duplicate documents pair up as they would in a random sample."""
    pf = pq.ParquetFile(_open(path))
    n = pf.metadata.num_rows
    if n == 0:
        return None
    table = pf.read()
    if n <= rows:
        return table
    return table.take(pa.array([i * n // rows for i in range(rows)]))


def _run(spec: dict, run_dir: Path, threads: int) -> SamplePoint:
    job = MeasuredJob(spec, job_dir=run_dir / "job", fit_threads=threads)
    res = job.run()
    ns = res.stats["nodes"]
    points = []
    for step in job.plan.steps:
        m = job.measures[step.id]
        map_s = max(0.0, m.step_s - m.fit_s)
        share = {n: ns[n].get("wall_s", 0.0) for n in step.nodes}
        total = sum(share.values())
        for nid in step.nodes:
            s = ns[nid]
            is_barrier = nid == step.barrier
            points.append(NodePoint(
                node=nid, stage=s["stage"], kind=get_stage_class(s["stage"]).kind, step=step.id,
                docs_in=s.get("in", 0), docs_out=s.get("kept", 0) + s.get("copies_added", 0),
                bytes_in=s.get("bytes_in", 0),
                map_s=map_s * (share[nid] / total if total > 0 else 1 / len(step.nodes)),
                fit_s=m.fit_s if is_barrier else 0.0, fit_written_bytes=m.fit_written if is_barrier else 0,
                fit_peak_bytes=m.fit_peak if is_barrier else 0))
    by_node = {p.node: p for p in points}
    for name, o in job.spec.outputs.items():
        if o.node in by_node:
            by_node[o.node].output_bytes += sum(f.stat().st_size for f in Path(o.path).glob("part-*.parquet"))
    input_docs = sum(ns[i].get("in", 0) for i in job.spec.inputs if i in ns)
    files = [f for i in job.spec.inputs for f in Path(job.spec.inputs[i].path).rglob("*.parquet")]
    shards = max((ns[s.output].get("shards", 0) for s in job.plan.steps), default=0)
    return SamplePoint(input_docs=input_docs, input_file_bytes=sum(f.stat().st_size for f in files),
                       shards=shards, job_wall_s=job.wall_s, report_s=job.report_s, nodes=points)
