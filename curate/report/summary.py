"""The report's numbers: everything ``summary.json`` holds, read back from a job directory.

Generic parts (the funnel, rejects, score histograms, domain shares, timings) come from
what every job writes. What a stage knows about itself comes from its hooks: the score
columns it adds or selects on (``score_columns``), the thresholds to draw on them
(``report_thresholds``) and sections of its own (``report_sections``, stored under
``sections[node_id][key]``).
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import schema
from curate.jobdata import JobData
from curate.stage import ReportSection

HIST_BINS = 60

_FUNNEL_COUNTS = ("in", "kept", "rejected", "copies_added", "bytes_in", "bytes_kept", "bytes_rejected")


def funnel(job: JobData) -> list[dict[str, Any]]:
    """Per node, in DAG order: its stage, kind, inputs, counts and rejects by reason."""
    rows = []
    for n in job.order:
        ns = job.nodes.get(n)
        if ns is None:
            continue
        rows.append(
            {
                "node": n,
                "stage": ns.get("stage", ""),
                "kind": ns.get("kind", ""),
                "inputs": ns.get("inputs", []),
                **{k: ns.get(k, 0) for k in _FUNNEL_COUNTS},
                "rejects_by_reason": ns.get("rejects_by_reason") or {},
            }
        )
    return rows


def score_columns(job: JobData) -> list[str]:
    """The score columns the job's stages declare, in DAG order, each once."""
    cols: list[str] = []
    for n in job.order:
        st = job.stage(n)
        for c in st.score_columns() if st is not None else []:
            if c not in cols:
                cols.append(c)
    return cols


def thresholds(job: JobData, column: str) -> list[dict[str, Any]]:
    """The thresholds every node's stage draws on ``column`` (labels prefixed by the node)."""
    found: list[dict[str, Any]] = []
    for n in job.order:
        st = job.stage(n)
        if st is None:
            continue
        fit = (job.nodes.get(n) or {}).get("fit_stats") or {}
        for label, value in st.report_thresholds(fit).get(column, []):
            found.append({"node": n, "label": f"{n}: {label}", "value": float(value)})
    return found


def population(job: JobData, column: str) -> list[tuple[str, str]]:
    """(group, file) covering each document once: rejects (by node) + the DAG's sinks (kept)."""
    out = []
    for n in job.reject_nodes():
        out.extend((f"rejected at {n}", f) for f in job.reject_files(n) if column in job.columns(f))
    out.extend(("kept", f) for _, f in job.sink_files() if column in job.columns(f))
    return out


def is_numeric(t: Any) -> bool:
    """An integer or floating-point Arrow type."""
    return pa.types.is_integer(t) or pa.types.is_floating(t)


def score_histogram(job: JobData, column: str) -> dict[str, Any] | None:
    """Histogram of ``column`` over every document (kept vs rejected at each node), with
    the thresholds drawn on it; None if no document has a numeric value."""
    files = population(job, column)
    if not files:
        return None
    lo, hi, count, total = math.inf, -math.inf, 0, 0.0
    for _, f in files:
        for t in job.iter_column_batches(f, [column]):
            col = t.column(column)
            if not is_numeric(col.type):
                return None
            col = pc.drop_null(col)
            if len(col) == 0:
                continue
            v = col.to_numpy(zero_copy_only=False).astype(np.float64)
            v = v[np.isfinite(v)]
            if v.size:
                lo, hi = min(lo, float(v.min())), max(hi, float(v.max()))
                count += int(v.size)
                total += float(v.sum())
    if count == 0:
        return None
    if hi <= lo:
        hi = lo + 1.0
    # heavy-tailed positive scores (perplexity) get log-spaced bins and a log axis
    log = lo > 0 and (column == schema.PERPLEXITY or hi / lo > 1e4)
    edges = np.geomspace(lo, hi, HIST_BINS + 1) if log else np.linspace(lo, hi, HIST_BINS + 1)
    groups: dict[str, np.ndarray] = {}
    for g, f in files:
        acc = groups.setdefault(g, np.zeros(HIST_BINS, dtype=np.int64))
        for t in job.iter_column_batches(f, [column]):
            v = pc.drop_null(t.column(column)).to_numpy(zero_copy_only=False).astype(np.float64)
            acc += np.histogram(v[np.isfinite(v)], bins=edges)[0]
    return {
        "count": count,
        "min": lo,
        "max": hi,
        "mean": total / count,
        "log_scale": bool(log),
        "bin_edges": edges.tolist(),
        "counts": {g: c.tolist() for g, c in groups.items()},
        "thresholds": thresholds(job, column),
    }


def domain_counts(job: JobData, files: list[str]) -> Counter:
    """Documents per value of the ``domain`` column in ``files`` (streamed; copies skipped)."""
    out: Counter = Counter()
    for f in files:
        for t in job.iter_column_batches(f, [schema.DOMAIN]):
            if schema.DOMAIN in t.column_names:
                vc = pc.value_counts(t.column(schema.DOMAIN)).to_pylist()
                out.update({str(x["values"]): x["counts"] for x in vc})
    return out


def domain_shares(job: JobData) -> dict[str, Any] | None:
    """Document shares per ``domain`` at the inputs vs in the final outputs (None with
    fewer than two domains on both sides)."""
    # every input document is in exactly one place: a rejects part or a final output
    after = domain_counts(job, [f for _, f in job.sink_files()])
    before = after + domain_counts(job, [f for n in job.reject_nodes() for f in job.reject_files(n)])
    if not before:
        for i, spec in (job.spec.get("inputs") or {}).items():
            before[(spec or {}).get("domain") or i] += (job.nodes.get(i) or {}).get("in", 0)
    if len(before) < 2 and len(after) < 2:
        return None
    tb, ta = sum(before.values()) or 1, sum(after.values()) or 1
    return {
        "domains": {
            d: {
                "available_share": before[d] / tb,
                "realized_share": after[d] / ta,
                "available_docs": before[d],
                "realized_docs": after[d],
            }
            for d in sorted(set(before) | set(after))
        },
    }


def timings(job: JobData) -> list[dict[str, Any]]:
    """Wall, fit and CPU seconds per node."""
    return [
        {
            "node": n,
            "stage": job.stage_of(n),
            "wall_s": float(ns.get("wall_s") or 0.0),
            "fit_wall_s": float(ns.get("fit_wall_s") or 0.0),
            "cpu_s": float(ns.get("cpu_s") or 0.0),
            "step_wall_s": float(ns.get("step_wall_s") or 0.0),
        }
        for n in job.order
        if (ns := job.nodes.get(n)) is not None
    ]


def stage_sections(job: JobData) -> list[tuple[str, ReportSection]]:
    """(node id, section) for every section the job's stages contribute, in DAG order."""
    out = []
    for n in job.order:
        st = job.stage(n)
        if st is not None:
            out.extend((n, sec) for sec in st.report_sections(job, n))
    return out


def build_summary(job: JobData, sections: list[tuple[str, ReportSection]] | None = None) -> dict[str, Any]:
    """Every number the report shows, as one JSON-able dict (``sections``: the stages'
    sections when already computed)."""
    from curate import __version__

    if sections is None:
        sections = stage_sections(job)
    info = dict(job.stats.get("job") or {})
    totals: Counter = Counter()
    for ns in job.nodes.values():
        totals.update(ns.get("rejects_by_reason") or {})
    scores = {}
    for c in score_columns(job):
        h = score_histogram(job, c)
        if h is not None:
            scores[c] = h
    by_node: dict[str, dict[str, Any]] = {}
    for n, sec in sections:
        by_node.setdefault(n, {})[sec.key] = sec.data
    return {
        "job": info,
        "curate_version": info.get("curate_version") or __version__,
        "seed": info.get("seed", job.spec.get("seed")),
        "funnel": funnel(job),
        "rejects_by_reason": {
            n: ns.get("rejects_by_reason") or {} for n, ns in job.nodes.items() if ns.get("rejects_by_reason")
        },
        "reject_totals": dict(totals.most_common()),
        "scores": scores,
        "sections": by_node,
        "domain_shares": domain_shares(job),
        "timings": timings(job),
        "model_digests": {n: ns.get("run_stats") for n, ns in job.nodes.items() if ns.get("run_stats")},
        "fit_stats": {n: ns.get("fit_stats") for n, ns in job.nodes.items() if ns.get("fit_stats")},
        "warnings": list(job.stats.get("warnings") or [])
        + [f"{n}: {w}" for n, ns in job.nodes.items() for w in (ns.get("warnings") or [])],
        "outputs": job.stats.get("outputs") or {},
        "spec": job.spec,
    }
