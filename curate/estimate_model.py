"""The sizing model behind ``curate plan --estimate``: sample measurements + a cluster shape
-> predicted wall time, CPU-hours, scratch, shuffle, memory and output size.

Pure arithmetic on pydantic models (no I/O). ``workers/estimate.py`` runs the spec on two
sample sizes of the inputs and fills :class:`Measurements`; :func:`predict` turns them into
an :class:`Estimate`, the one structure the CLI (``--json``) and ``POST /v1/estimate`` return.

Every measured quantity ``q`` (a step's time, a fit's scratch bytes, its peak memory, an
output's bytes) is fitted as ``q(n) = fixed + per_doc * n`` through the two sample points,
``n`` the input documents. The fixed part (per-shard task overhead, per-fit setup) is thus
calibrated apart from the per-document cost, and the prediction extrapolates each part by
what it scales with: shards for the map overhead, documents for the rest.
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, Field, model_validator


class EstimateError(ValueError):
    """The estimate cannot be made (no input rows, an impossible cluster...)."""


class Cluster(BaseModel):
    """The cluster to size for. ``executor='local'`` is one process (``curate run --executor
    local``): shards one after another, fit tasks on ``cpus_per_node`` threads."""

    nodes: int = Field(1, description="Worker nodes")
    cpus_per_node: int = Field(2, description="CPUs per node")
    memory_per_node: int = Field(8 * 2**30, description="Memory per node, bytes")
    executor: Literal["ray", "local"] = Field("ray", description="ray (a cluster) or local (one process)")

    @model_validator(mode="after")
    def _possible(self) -> "Cluster":
        problems = [f"{k} must be >= 1 (got {v})" for k, v in
                    (("nodes", self.nodes), ("cpus_per_node", self.cpus_per_node), ("memory_per_node", self.memory_per_node))
                    if v < 1]
        if self.executor == "local" and self.nodes != 1:
            problems.append(f"the local executor runs on one node (got nodes={self.nodes})")
        if problems:
            raise EstimateError("impossible cluster: " + "; ".join(problems))
        return self

    @property
    def cpus(self) -> int:
        return self.nodes * self.cpus_per_node


def make_cluster(**kw: object) -> Cluster:
    """A :class:`Cluster`, or :class:`EstimateError` with one clear sentence."""
    from pydantic import ValidationError

    try:
        return Cluster(**kw)  # type: ignore[arg-type]
    except ValidationError as e:
        msgs = [str(x.get("ctx", {}).get("error") or f"{'.'.join(map(str, x['loc']))}: {x['msg']}") for x in e.errors()]
        raise EstimateError("; ".join(msgs)) from None


class NodePoint(BaseModel):
    """One node (and its step) measured on one sample (shards on one CPU, fit tasks on
    ``Measurements.fit_threads`` threads)."""

    node: str
    stage: str
    kind: str
    step: str
    docs_in: int = 0
    docs_out: int = 0  # kept + copies
    bytes_in: int = 0  # text bytes
    map_s: float = 0.0  # the node's share of its step's shard time (one CPU)
    fit_s: float = 0.0
    fit_written_bytes: int = 0  # bytes written during the fit (scratch and state)
    fit_peak_bytes: int = 0  # peak memory above the fit's start (fit_threads tasks at once)
    output_bytes: int = 0  # Parquet bytes of the node's parts, when it is materialized


class SamplePoint(BaseModel):
    """One run of the whole spec on a sample."""

    input_docs: int
    input_file_bytes: int
    shards: int
    job_wall_s: float
    report_s: float = Field(0.0, description="Writing the report (a fixed cost: it reads the job's statistics)")
    nodes: list[NodePoint]


class Measurements(BaseModel):
    """What ``workers/estimate.py`` measured, and the real input it predicts for."""

    points: list[SamplePoint] = Field(description="Three samples, each about 4x the last (the first warms up)")
    cold_start_s: float = Field(0.0, description="A first run's extra time (JIT compilation, imports)")
    real_docs: int = Field(description="Documents of the corpus to predict for")
    real_bytes: int = Field(description="Input file bytes of that corpus")
    real_shards: int = Field(description="Shards (tasks per step) of that corpus")
    shuffle_partitions: int
    fit_threads: int = Field(1, description="Threads the sample fits ran on (their times are that many CPUs')")
    outputs: dict[str, str] = Field(default_factory=dict, description="output name -> node")


class Linear(BaseModel):
    fixed: float
    per_doc: float

    def at(self, n: float) -> float:
        return self.fixed + self.per_doc * n


def fit_line(n0: float, y0: float, n1: float, y1: float, *, nonneg: bool = True) -> Linear:
    """The line through two points; with ``nonneg`` both parts are clamped at >= 0 (noise can
    make a slope or intercept slightly negative), keeping the value at ``n1``."""
    slope = (y1 - y0) / (n1 - n0) if n1 != n0 else 0.0
    fixed = y1 - slope * n1
    if nonneg:
        if slope < 0:
            slope, fixed = 0.0, max(y0, y1)
        elif fixed < 0:
            slope, fixed = y1 / n1 if n1 else 0.0, 0.0
    return Linear(fixed=fixed, per_doc=slope)


class BarrierEstimate(BaseModel):
    node: str
    stage: str
    fit_wall_s: float
    peak_memory_per_task: int
    shuffle_bytes: int
    scratch_bytes: int
    parallel_tasks: int
    fits_in_memory: bool


class NodeEstimate(BaseModel):
    node: str
    stage: str
    kind: str
    step: str
    docs_in: int
    docs_out: int
    output_fraction: float
    bytes_per_doc: float
    docs_per_s_per_cpu: float | None
    wall_s: float = Field(description="The node's map (or apply) time plus its fit, on the cluster")


class Estimate(BaseModel):
    """The estimator's prediction (CLI ``--json`` and ``POST /v1/estimate``)."""

    cluster: Cluster
    corpus_docs: int
    corpus_bytes: int
    shards: int
    sample_docs: list[int]
    wall_s: float
    cpu_hours: float
    scratch_bytes: int
    output_bytes: dict[str, int]
    nodes: list[NodeEstimate]
    barriers: list[BarrierEstimate]
    warnings: list[str] = Field(default_factory=list)


def predict(m: Measurements, cluster: Cluster) -> Estimate:
    """Predict a run of ``m``'s spec on ``m.real_docs`` documents on ``cluster``."""
    if len(m.points) != 3:
        raise EstimateError("the estimate needs three sample runs")
    w, a, b = m.points
    if b.input_docs <= a.input_docs or a.input_docs <= 0:
        raise EstimateError(f"the samples are too small to extrapolate from ({a.input_docs} and {b.input_docs} documents)")
    n, n0, n1 = m.real_docs, a.input_docs, b.input_docs
    scale = n / n1
    shards = max(1, m.real_shards)
    local = cluster.executor == "local"
    map_slots = 1 if local else max(1, min(cluster.cpus, shards))
    fit_slots = max(1, min(cluster.cpus_per_node if local else cluster.cpus, m.shuffle_partitions))
    warnings: list[str] = []
    nodes, barriers = [], []
    total_wall = total_cpu = scratch_total = 0.0
    steps_wall: dict[str, float] = {}
    for pw, pa_, pb in zip(w.nodes, a.nodes, b.nodes):
        # map time: the fixed part is per shard (task overhead), the rest per document
        mline = fit_line(n0, pa_.map_s, n1, pb.map_s)
        map_cpu = mline.fixed / max(1, b.shards) * shards + mline.per_doc * n
        wall = map_cpu / map_slots
        cpu = map_cpu
        if pb.kind == "barrier":
            fline = fit_line(n0, pa_.fit_s, n1, pb.fit_s)
            fit_work = fline.per_doc * n * m.fit_threads  # CPU-seconds
            fit_wall = fline.fixed + fit_work / fit_slots
            cpu += fline.fixed + fit_work
            # every barrier's scratch is linear in its documents (MinHash verification ships the
            # text of candidate documents, at most all of them): the line through the two
            # larger samples, whose slope already holds the sample's growing duplicate share
            scratch = fit_line(n0, pa_.fit_written_bytes, n1, pb.fit_written_bytes).at(n)
            # the samples' fits ran fit_threads tasks at once: a task's share of the peak
            mem = fit_line(n0, pa_.fit_peak_bytes, n1, pb.fit_peak_bytes).at(n) / m.fit_threads
            per_node_tasks = fit_slots if local else min(cluster.cpus_per_node, -(-fit_slots // cluster.nodes))
            fits = mem * per_node_tasks <= cluster.memory_per_node
            if not fits:
                need = math.ceil(m.shuffle_partitions * mem * per_node_tasks / cluster.memory_per_node)
                warnings.append(
                    f"{pb.node} ({pb.stage}): {per_node_tasks} fit tasks x {fmt_bytes(mem)} per task do not fit in "
                    f"{fmt_bytes(cluster.memory_per_node)} per node; raise settings.shuffle_partitions "
                    f"(now {m.shuffle_partitions}) to about {need} or add memory")
            shuffle = scratch * (1 - 1 / cluster.nodes) if cluster.nodes > 1 else 0.0
            barriers.append(BarrierEstimate(
                node=pb.node, stage=pb.stage, fit_wall_s=round(fit_wall, 3), peak_memory_per_task=int(mem),
                shuffle_bytes=int(shuffle), scratch_bytes=int(scratch), parallel_tasks=fit_slots, fits_in_memory=fits))
            wall += fit_wall
            scratch_total += scratch
        total_wall += wall
        total_cpu += cpu
        steps_wall[pb.step] = steps_wall.get(pb.step, 0.0) + wall
        frac = pb.docs_out / pb.docs_in if pb.docs_in else 1.0
        work = pb.map_s + pb.fit_s
        nodes.append(NodeEstimate(
            node=pb.node, stage=pb.stage, kind=pb.kind, step=pb.step, docs_in=int(pb.docs_in * scale),
            docs_out=int(pb.docs_out * scale), output_fraction=round(frac, 4),
            bytes_per_doc=round(pb.bytes_in / pb.docs_in, 1) if pb.docs_in else 0.0,
            docs_per_s_per_cpu=round(pb.docs_in / work, 1) if work > 0 and pb.docs_in else None,
            wall_s=round(wall, 3)))
    # the driver's own work: listing, the duplicate-id check, publishing; the report (fixed)
    rest_of = [p.job_wall_s - p.report_s - sum(x.map_s + x.fit_s for x in p.nodes) for p in (a, b)]
    rest = fit_line(n0, rest_of[0], n1, rest_of[1])
    report = min(a.report_s, b.report_s)
    driver = report + rest.fixed + m.cold_start_s + rest.per_doc * n * m.fit_threads / fit_slots
    total_wall += driver
    total_cpu += report + rest.fixed + rest.per_doc * n * m.fit_threads
    outputs = {}
    by_node = {x.node: (x, y) for x, y in zip(a.nodes, b.nodes)}
    for name, nid in m.outputs.items():
        if nid in by_node:
            x, y = by_node[nid]
            outputs[name] = int(fit_line(n0, x.output_bytes, n1, y.output_bytes).at(n))
    return Estimate(
        cluster=cluster, corpus_docs=n, corpus_bytes=m.real_bytes, shards=shards,
        sample_docs=[w.input_docs, a.input_docs, b.input_docs], wall_s=round(total_wall, 3),
        cpu_hours=round(total_cpu / 3600, 6), scratch_bytes=int(scratch_total), output_bytes=outputs,
        nodes=nodes, barriers=barriers, warnings=warnings)


_UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15,
          "KI": 2**10, "MI": 2**20, "GI": 2**30, "TI": 2**40, "PI": 2**50}


def parse_size(text: str | int | float) -> int:
    """``'10TB'``, ``'64GiB'``, ``'3e9'``, ``1024`` -> a count (bytes or documents)."""
    if isinstance(text, (int, float)):
        return int(text)
    s = str(text).strip().upper().replace(" ", "")
    s = s[:-1] if s.endswith("B") else s
    num = s.rstrip("KMGTPI")
    unit = s[len(num):]
    if unit not in _UNITS:
        raise EstimateError(f"not a size: {text!r} (e.g. 10TB, 64GiB, 3e9)")
    try:
        return int(float(num) * _UNITS[unit])
    except ValueError:
        raise EstimateError(f"not a size: {text!r} (e.g. 10TB, 64GiB, 3e9)") from None


def fmt_bytes(n: float) -> str:
    for unit, f in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= f:
            return f"{n / f:.1f} {unit}"
    return f"{int(n)} B"


def fmt_seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.1f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.1f} s"
