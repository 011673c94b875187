"""Prometheus metrics (prometheus-client), one registry per service instance.

* ``curate_jobs{state=...}`` — jobs by state (read from the store at scrape time);
* ``curate_docs_processed_total`` — input documents of finished jobs (ledger ``in`` of
  nodes that read a spec input directly);
* ``curate_docs_kept_total`` / ``curate_docs_rejected_total`` — per stage;
* ``curate_stage_duration_seconds{stage=...}`` — wall time of each node (stats.json);
* ``curate_job_duration_seconds{state=...}`` — driver wall time of finished jobs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

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

    def job_finished(self, job: dict, stats: dict | None) -> None:
        spec = job.get("spec") or {}
        inputs = set((spec.get("inputs") or {}).keys())
        stage_of = {n.get("id"): n.get("stage") for n in spec.get("nodes") or [] if isinstance(n, dict)}
        reads_input = {
            n.get("id")
            for n in spec.get("nodes") or []
            if isinstance(n, dict) and inputs & set(n.get("inputs") or [])
        }
        ledger = job.get("ledger") or {}
        if inputs & set(ledger):  # the executor records ingest under the input names
            reads_input = inputs & set(ledger)
        node_stats = (stats or {}).get("nodes") if isinstance((stats or {}).get("nodes"), dict) else {}
        for nid, rec in ledger.items():
            if not isinstance(rec, dict):
                continue
            stage = str(rec.get("stage") or stage_of.get(nid) or nid)
            if nid in reads_input:
                self.docs.inc(_num(rec.get("in")))
            self.kept.labels(stage).inc(_num(rec.get("kept")))
            self.rejected.labels(stage).inc(_num(rec.get("rejected")))
        for nid, rec in (node_stats or {}).items():
            if isinstance(rec, dict) and rec.get("wall_s") is not None:
                self.stage_s.labels(str(rec.get("stage") or stage_of.get(nid) or nid)).observe(
                    _num(rec["wall_s"])
                )
        if job.get("started_at") and job.get("finished_at"):
            self.job_s.labels(job["state"]).observe(max(0.0, job["finished_at"] - job["started_at"]))

    def render(self) -> bytes:
        return generate_latest(self.registry)
