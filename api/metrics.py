"""Prometheus metrics (prometheus-client), one registry per service instance.

* ``curate_jobs{state=...}`` — jobs by state (read from the store at scrape time);
* ``curate_docs_processed_total`` — input documents of finished jobs (ledger ``in`` of
  nodes that read a spec input directly);
* ``curate_docs_kept_total`` / ``curate_docs_rejected_total`` — per stage;
* ``curate_stage_duration_seconds{stage=...}`` — wall time of each node (stats.json);
* ``curate_job_duration_seconds{state=...}`` — driver wall time of finished jobs.

Labels are bounded: ``stage`` is a registered stage name, ``input`` for every spec input
(never the input's name) or ``other``; ``state`` is a job state. A job counts its documents
once: when a failed job is retried (resuming, its ledger counts the whole job again), only
what the earlier attempts did not count is added. The memory of what was counted lives in
this process, like the counters (which restart from zero with the service).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

INPUT_LABEL = "input"
"""The ``stage`` label of every spec input (input names are unbounded)."""
OTHER_LABEL = "other"
"""The ``stage`` label of a ledger entry that names no registered stage."""
MAX_REMEMBERED_JOBS = 100_000
"""Jobs whose counted documents are remembered (so a retry adds only what is new)."""
BUCKETS = (0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 7200, float("inf"))


class _JobStates:
    def __init__(self, store: Any):
        self.store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        g = GaugeMetricFamily("curate_jobs", "Jobs by state", labels=["state"])
        try:
            counts = self.store.count_by_state()
        except Exception:  # noqa: BLE001 # pragma: no cover - DB down: report nothing rather than fail the scrape
            counts = {}
        for s, n in sorted(counts.items()):
            g.add_metric([s], n)
        yield g


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return 0.0


class Metrics:
    """The service's metrics and how finished jobs feed them."""

    def __init__(self, store: Any):
        self.registry = CollectorRegistry()
        self.registry.register(_JobStates(store))
        self.docs = Counter(
            "curate_docs_processed", "Input documents processed by finished jobs", registry=self.registry
        )
        self.kept = Counter("curate_docs_kept", "Documents kept, by stage", ["stage"], registry=self.registry)
        self.rejected = Counter(
            "curate_docs_rejected", "Documents rejected, by stage", ["stage"], registry=self.registry
        )
        self.stage_s = Histogram(
            "curate_stage_duration_seconds",
            "Wall time per pipeline node, by stage",
            ["stage"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self.job_s = Histogram(
            "curate_job_duration_seconds",
            "Job wall time, by final state",
            ["state"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        self._counted: OrderedDict[str, dict[tuple[str, str], float]] = OrderedDict()
        self._lock = threading.Lock()

    def job_finished(self, job: dict, stats: dict | None) -> None:
        spec = job.get("spec") or {}
        inputs = {str(k) for k in (spec.get("inputs") or {})}
        nodes = [n for n in spec.get("nodes") or [] if isinstance(n, dict)]
        stage_of = {str(n.get("id")): str(n.get("stage")) for n in nodes}
        ledger = job.get("ledger") or {}
        reads_input = inputs & set(ledger)  # the executor records ingest under the input names
        if not reads_input:
            reads_input = {str(n.get("id")) for n in nodes if inputs & set(n.get("inputs") or [])}

        totals: dict[tuple[str, str], float] = {}  # (metric, stage label) -> this job's documents
        for nid, rec in ledger.items():
            if not isinstance(rec, dict):
                continue
            label = self.stage_label(str(nid), inputs, stage_of)
            if nid in reads_input:
                totals[("docs", "")] = totals.get(("docs", ""), 0.0) + _num(rec.get("in"))
            for metric in ("kept", "rejected"):
                totals[(metric, label)] = totals.get((metric, label), 0.0) + _num(rec.get(metric))
        with self._lock:
            counted = self._counted.pop(str(job.get("id")), {})
            for (metric, label), n in totals.items():
                delta = n - counted.get((metric, label), 0.0)
                if delta > 0:
                    if metric == "docs":
                        self.docs.inc(delta)
                    else:
                        (self.kept if metric == "kept" else self.rejected).labels(label).inc(delta)
            self._remember(str(job.get("id")), {k: max(n, counted.get(k, 0.0)) for k, n in {**counted, **totals}.items()})

        node_stats = (stats or {}).get("nodes") if isinstance((stats or {}).get("nodes"), dict) else {}
        for nid, rec in (node_stats or {}).items():
            if isinstance(rec, dict) and rec.get("wall_s") is not None:
                self.stage_s.labels(self.stage_label(str(nid), inputs, stage_of)).observe(_num(rec["wall_s"]))
        if job.get("started_at") and job.get("finished_at"):
            self.job_s.labels(job["state"]).observe(max(0.0, job["finished_at"] - job["started_at"]))

    @staticmethod
    def stage_label(node_id: str, inputs: set[str], stage_of: dict[str, str]) -> str:
        """The bounded ``stage`` label of a ledger entry: ``input`` for a spec input, the
        node's registered stage name, else ``other``."""
        from curate.registry import stage_names

        if node_id in inputs:
            return INPUT_LABEL
        stage = stage_of.get(node_id)
        return stage if stage in stage_names() else OTHER_LABEL

    def _remember(self, job_id: str, counted: dict[tuple[str, str], float]) -> None:
        self._counted[job_id] = counted
        while len(self._counted) > MAX_REMEMBERED_JOBS:
            self._counted.popitem(last=False)

    def render(self) -> bytes:
        return generate_latest(self.registry)
