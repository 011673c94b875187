"""Per-job report: ``report.html`` (one self-contained page) and ``summary.json``.

:func:`write_report` reads what the job already wrote (``stats.json``, ``plan.json``,
``spec.json``, ``rejects/<node>/`` and the node / output Parquet parts, streamed with
column projection) and renders, with matplotlib (Agg, no display):

* the DAG with per-node in / kept / rejected counts and a funnel;
* rejects by reason;
* a histogram of every score column present (``quality``, ``perplexity``,
  ``dsir_logw`` and any column a ``threshold_filter`` compares), split into finally kept
  vs rejected-later documents, with the applied thresholds / cutoffs drawn;
* the dedup cluster-size distribution;
* domain shares before and after mixing (the ``mix`` manifest);
* timings per stage; the spec, seed, model digests (``run_stats``) and curate's version.

Thresholds are found in the spec params (``column`` + ``value`` of a threshold filter) and
in a node's ``fit_stats``: preferably ``fit_stats["thresholds"] = {column: [values]}``,
otherwise numeric entries whose key mentions threshold / cutoff / min / max of a stage
that requires or provides the column. ``summary.json`` carries the same numbers.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate import schema
from curate.jobdata import JobData
from curate.parquet_io import write_json_atomic

SCORE_COLUMNS = (schema.QUALITY, schema.PERPLEXITY, schema.DSIR_LOGW)
HIST_BINS = 60
_THRESH_KEY = re.compile(r"(threshold|cutoff|(^|[_.])(min|max|lower|upper|lo|hi|below|from)([_.]|$))", re.I)
# lengths, counts and sampling keys are not score thresholds
_NOT_THRESH = re.compile(r"word|char|token|doc|byte|count|seed|key|epoch|size|fraction|budget", re.I)
_COLORS = {"input": "#dbeafe", "map": "#dcfce7", "barrier": "#fde68a"}


# ----------------------------------------------------------------------------------------
# numbers
# ----------------------------------------------------------------------------------------


def _funnel(job: JobData) -> list[dict[str, Any]]:
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
                **{
                    k: ns.get(k, 0)
                    for k in (
                        "in",
                        "kept",
                        "rejected",
                        "copies_added",
                        "bytes_in",
                        "bytes_kept",
                        "bytes_rejected",
                    )
                },
                "rejects_by_reason": ns.get("rejects_by_reason") or {},
            }
        )
    return rows


def _stage_columns(job: JobData, node: str) -> set[str]:
    """Columns a node's stage requires or provides (empty if it cannot be instantiated)."""
    try:
        from curate.registry import get_stage_class

        st = get_stage_class(job.stage_of(node))(job.node_params.get(node, {}))
        return set(st.required_columns()) | set(st.provided_columns())
    except Exception:  # unknown stage, bad params in an old job...: no association
        return set()


def _numbers(obj: Any, key: str = "") -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    if isinstance(obj, bool):
        return out
    if isinstance(obj, (int, float)) and math.isfinite(obj):
        out.append((key, float(obj)))
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            out.extend(_numbers(v, key))
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.extend(_numbers(v, f"{key}.{k}" if key else str(k)))
    return out


def _thresholds(job: JobData, column: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for n in job.order:
        params = job.node_params.get(n, {})
        fit = (job.nodes.get(n) or {}).get("fit_stats") or {}
        if params.get("column") == column and isinstance(params.get("value"), (int, float)):
            found.append(
                {
                    "node": n,
                    "label": f"{n}: {column} {params.get('op', '>=')} {params['value']}",
                    "value": float(params["value"]),
                }
            )
            continue
        explicit = (
            (fit.get("thresholds") or {}).get(column) if isinstance(fit.get("thresholds"), dict) else None
        )
        if explicit is not None:
            for _, v in _numbers(explicit):
                found.append({"node": n, "label": f"{n}: {v:.4g}", "value": v})
            continue
        if column not in _stage_columns(job, n) and params.get("column") != column:
            continue
        seen: set[float] = set()
        for src in (params, {k: v for k, v in fit.items() if k != "thresholds"}):
            for k, v in _numbers(src):
                if _THRESH_KEY.search(k) and not _NOT_THRESH.search(k) and v not in seen:
                    seen.add(v)
                    found.append({"node": n, "label": f"{n}: {k}={v:.4g}", "value": v})
    return found


def _score_columns(job: JobData) -> list[str]:
    cols = list(SCORE_COLUMNS)
    for n in job.order:
        c = job.node_params.get(n, {}).get("column")
        if isinstance(c, str) and c not in cols:
            cols.append(c)
    return cols


def _population(job: JobData, column: str, exclude_reason: re.Pattern | None = None) -> list[tuple[str, str]]:
    """(group, file) covering each document once: rejects (by node) + the DAG's sinks (kept)."""
    out = []
    for n in job.reject_nodes():
        out.extend((f"rejected at {n}", f) for f in job.reject_files(n) if column in job.columns(f))
    out.extend(("kept", f) for _, f in job.sink_files() if column in job.columns(f))
    return out


def _score_hist(job: JobData, column: str) -> dict[str, Any] | None:
    files = _population(job, column)
    if not files:
        return None
    lo, hi, count, total = math.inf, -math.inf, 0, 0.0
    for _, f in files:
        for t in job.iter_column_batches(f, [column]):
            col = t.column(column)
            if not (pa_is_numeric(col.type)):
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
        "thresholds": _thresholds(job, column),
    }


def pa_is_numeric(t: Any) -> bool:
    return pa.types.is_integer(t) or pa.types.is_floating(t)


_DUP_REASON = re.compile(r"dup", re.I)
_SIZE_BUCKETS = [(1, 1), (2, 2), (3, 4), (5, 9), (10, 99), (100, 999), (1000, None)]


def _bucket_label(lo: int, hi: int | None) -> str:
    return f"{lo}" if lo == hi else (f"{lo}+" if hi is None else f"{lo}-{hi}")


def _dedup(job: JobData) -> dict[str, Any] | None:
    """Cluster-size distribution: from ``dup_cluster_size`` on representatives, or else
    from the dedup rejects (each rejected duplicate names the id kept in its place)."""
    removed = sum(
        n
        for ns in job.nodes.values()
        for r, n in (ns.get("rejects_by_reason") or {}).items()
        if _DUP_REASON.search(r)
    )
    sizes: Counter = Counter()
    source = None
    col = schema.DUP_CLUSTER_SIZE
    files = _population(job, col)
    if files:
        source = col
        for g, f in files:
            cols = [col, schema.REASON, schema.ID, schema.DUP_KEPT]
            for t in job.iter_column_batches(f, cols):
                if schema.REASON in t.column_names:  # rejected duplicates are not representatives
                    keep = pc.invert(
                        pc.fill_null(pc.match_substring_regex(t.column(schema.REASON), "(?i)dup"), False)
                    )
                    t = t.filter(keep)
                if schema.DUP_KEPT in t.column_names and schema.ID in t.column_names:
                    # annotate-only dedup keeps every member: count each cluster once, at the
                    # member it keeps (dup_kept is a flag, or the kept id)
                    kept = t.column(schema.DUP_KEPT)
                    if pa.types.is_boolean(kept.type):
                        rep = kept
                    else:
                        rep = pc.equal(pc.cast(kept, pa.string()), pc.cast(t.column(schema.ID), pa.string()))
                    t = t.filter(pc.fill_null(rep, True))
                v = pc.drop_null(t.column(col)).to_numpy(zero_copy_only=False).astype(np.int64)
                sizes.update(Counter(v.tolist()))
    else:
        kept_of: Counter = Counter()
        for n in job.reject_nodes():
            for f in job.reject_files(n):
                names = job.columns(f)
                key = schema.DUP_KEPT if schema.DUP_KEPT in names else schema.DETAIL
                for t in job.iter_column_batches(f, [schema.REASON, key]):
                    m = pc.fill_null(pc.match_substring_regex(t.column(schema.REASON), "(?i)dup"), False)
                    kept_of.update(pc.drop_null(t.column(key).filter(m)).to_pylist())
        if kept_of:
            source = "rejects"
            sizes = Counter(1 + c for c in kept_of.values())
    has_dedup = any("dedup" in job.stage_of(n) for n in job.order)
    if not sizes and not removed and not has_dedup:
        return None
    buckets = []
    for lo, hi in _SIZE_BUCKETS:
        m = [(s, c) for s, c in sizes.items() if s >= lo and (hi is None or s <= hi)]
        buckets.append(
            {
                "size": _bucket_label(lo, hi),
                "clusters": sum(c for _, c in m),
                "documents": sum(s * c for s, c in m),
            }
        )
    return {
        "source": source,
        "duplicates_removed": removed,
        "clusters_with_duplicates": sum(c for s, c in sizes.items() if s > 1),
        "largest_cluster": max(sizes) if sizes else 0,
        "size_buckets": buckets,
    }


def _mixing(job: JobData) -> dict[str, Any] | None:
    for n in job.order:
        fit = (job.nodes.get(n) or {}).get("fit_stats") or {}
        man = fit.get("mix")
        if man is None:
            p = job.dir / "state" / n / "manifest.json"
            if job.stage_of(n) == "mix" and p.exists():
                man = json.loads(p.read_text())
        if man:
            return {"node": n, "source": "mix", **man}
    # no mix stage: domain document shares at the inputs vs in the final outputs
    # every input document is in exactly one place: a rejects part or a final output
    after = _domain_counts(job, [f for _, f in job.sink_files()])
    before = after + _domain_counts(job, [f for n in job.reject_nodes() for f in job.reject_files(n)])
    if not before:
        for i, spec in (job.spec.get("inputs") or {}).items():
            before[(spec or {}).get("domain") or i] += (job.nodes.get(i) or {}).get("in", 0)
    if len(before) < 2 and len(after) < 2:
        return None
    tb, ta = sum(before.values()) or 1, sum(after.values()) or 1
    doms = sorted(set(before) | set(after))
    return {
        "node": None,
        "source": "documents",
        "domains": {
            d: {
                "available_share": before[d] / tb,
                "realized_share": after[d] / ta,
                "available_docs": before[d],
                "realized_docs": after[d],
            }
            for d in doms
        },
    }


def _domain_counts(job: JobData, files: list[str]) -> Counter:
    """Documents per value of the ``domain`` column in ``files`` (streamed; mixing copies skipped)."""
    out: Counter = Counter()
    for f in files:
        for t in job.iter_column_batches(f, [schema.DOMAIN]):
            if schema.DOMAIN in t.column_names:
                vc = pc.value_counts(t.column(schema.DOMAIN)).to_pylist()
                out.update({str(x["values"]): x["counts"] for x in vc})
    return out


def _timings(job: JobData) -> list[dict[str, Any]]:
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


def build_summary(job: JobData) -> dict[str, Any]:
    """Every number the report shows, as one JSON-able dict."""
    from curate import __version__

    info = dict(job.stats.get("job") or {})
    totals: Counter = Counter()
    for ns in job.nodes.values():
        totals.update(ns.get("rejects_by_reason") or {})
    scores = {}
    for c in _score_columns(job):
        h = _score_hist(job, c)
        if h is not None:
            scores[c] = h
    return {
        "job": info,
        "curate_version": info.get("curate_version") or __version__,
        "seed": info.get("seed", job.spec.get("seed")),
        "funnel": _funnel(job),
        "rejects_by_reason": {
            n: ns.get("rejects_by_reason") or {} for n, ns in job.nodes.items() if ns.get("rejects_by_reason")
        },
        "reject_totals": dict(totals.most_common()),
        "scores": scores,
        "dedup": _dedup(job),
        "mixing": _mixing(job),
        "timings": _timings(job),
        "model_digests": {n: ns.get("run_stats") for n, ns in job.nodes.items() if ns.get("run_stats")},
        "fit_stats": {n: ns.get("fit_stats") for n, ns in job.nodes.items() if ns.get("fit_stats")},
        "warnings": list(job.stats.get("warnings") or [])
        + [f"{n}: {w}" for n, ns in job.nodes.items() for w in (ns.get("warnings") or [])],
        "outputs": job.stats.get("outputs") or {},
        "spec": job.spec,
    }


# ----------------------------------------------------------------------------------------
# figures (matplotlib object API + Agg canvas: no global backend, no display)
# ----------------------------------------------------------------------------------------


def _figure(w: float, h: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def _fmt(n: Any) -> str:
    return f"{int(n):,}" if isinstance(n, (int, float)) and float(n).is_integer() else f"{n}"


def plot_dag(job: JobData, funnel: list[dict[str, Any]]) -> str:
    from matplotlib.patches import FancyBboxPatch

    info = {r["node"]: r for r in funnel}
    nodes = [n for n in job.order if n in info]
    depth: dict[str, int] = {}
    for n in nodes:
        depth[n] = 1 + max((depth[i] for i in job.inputs_of(n) if i in depth), default=-1)
    layers: dict[int, list[str]] = {}
    for n in nodes:
        layers.setdefault(depth[n], []).append(n)
    nlayers = max(layers) + 1 if layers else 1
    width = max((len(v) for v in layers.values()), default=1)
    dx, dy, bw, bh = 2.8, 1.15, 2.5, 0.78  # top-to-bottom layout, one row per DAG layer
    fig = _figure(max(4.5, 0.85 * (dx * width + 0.4)), 0.85 * (dy * nlayers + 0.2))
    ax = fig.add_subplot(111)
    pos = {}
    for d, ns in layers.items():
        for k, n in enumerate(ns):
            pos[n] = (dx * (k - (len(ns) - 1) / 2), -dy * d)
    for n in nodes:
        for i in job.inputs_of(n):
            if i in pos:
                (x0, y0), (x1, y1) = pos[i], pos[n]
                ax.annotate(
                    "",
                    xy=(x1, y1 + bh / 2),
                    xytext=(x0, y0 - bh / 2),
                    arrowprops={"arrowstyle": "-|>", "color": "#64748b", "lw": 1.2},
                )
    for n, (x, y) in pos.items():
        r = info[n]
        ax.add_patch(
            FancyBboxPatch(
                (x - bw / 2, y - bh / 2),
                bw,
                bh,
                boxstyle="round,pad=0.02",
                fc=_COLORS.get(r["kind"], "#e5e7eb"),
                ec="#334155",
                lw=1,
            )
        )
        extra = f" +{_fmt(r['copies_added'])} copies" if r.get("copies_added") else ""
        ax.text(x, y + 0.2, f"{n}  ·  {r['stage']}", ha="center", va="center", fontsize=9, weight="bold")
        ax.text(
            x,
            y - 0.14,
            f"in {_fmt(r['in'])} → kept {_fmt(r['kept'])}{extra}",
            ha="center",
            va="center",
            fontsize=8,
        )
        if r["rejected"]:
            ax.text(
                x,
                y - 0.32,
                f"rejected {_fmt(r['rejected'])}",
                ha="center",
                va="center",
                fontsize=7.5,
                color="#b91c1c",
            )
    ax.set_xlim(-dx * width / 2 - 0.1, dx * width / 2 + 0.1)
    ax.set_ylim(-dy * (nlayers - 1) - bh / 2 - 0.1, bh / 2 + 0.1)
    ax.axis("off")
    return _png(fig)


def plot_funnel(funnel: list[dict[str, Any]]) -> str:
    rows = [r for r in funnel if r["in"] or r["kept"]]
    fig = _figure(8, max(2.0, 0.42 * len(rows) + 0.8))
    ax = fig.add_subplot(111)
    y = np.arange(len(rows))[::-1]
    kept = np.array([r["kept"] for r in rows], float)
    rej = np.array([r["rejected"] for r in rows], float)
    cop = np.array([r.get("copies_added") or 0 for r in rows], float)
    ax.barh(y, kept, color="#22c55e", label="kept")
    ax.barh(y, rej, left=kept, color="#ef4444", label="rejected")
    if cop.any():
        ax.barh(y, cop, left=kept + rej, color="#3b82f6", label="copies added (mix)")
    ax.set_yticks(y, [f"{r['node']} ({r['stage']})" for r in rows], fontsize=8)
    ax.set_xlabel("documents")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def plot_rejects(summary: dict[str, Any]) -> str | None:
    items = [(f"{n}: {r}", c) for n, rs in summary["rejects_by_reason"].items() for r, c in rs.items()]
    if not items:
        return None
    items.sort(key=lambda kv: -kv[1])
    items = items[:25]
    fig = _figure(8, max(2.0, 0.36 * len(items) + 0.8))
    ax = fig.add_subplot(111)
    y = np.arange(len(items))[::-1]
    ax.barh(y, [c for _, c in items], color="#f97316")
    ax.set_yticks(y, [k for k, _ in items], fontsize=8)
    for yy, (_, c) in zip(y, items):
        ax.text(c, yy, f" {_fmt(c)}", va="center", fontsize=7)
    ax.set_xlabel("rejected documents")
    ax.grid(axis="x", alpha=0.3)
    return _png(fig)


def plot_score(column: str, h: dict[str, Any]) -> str:
    edges = np.array(h["bin_edges"])
    fig = _figure(8, 3.4)
    ax = fig.add_subplot(111)
    bottom = np.zeros(len(edges) - 1)
    counts = {g: np.array(c, float) for g, c in h["counts"].items() if sum(c)}
    rej = sorted((g for g in counts if g != "kept"), key=lambda g: -counts[g].sum())
    shown = (["kept"] if "kept" in counts else []) + rej[:5]
    if rej[5:]:
        counts["rejected elsewhere"] = sum(counts[g] for g in rej[5:])
        shown.append("rejected elsewhere")
    cmap = ["#22c55e", "#ef4444", "#f97316", "#a855f7", "#0ea5e9", "#eab308", "#94a3b8"]
    for k, g in enumerate(shown):
        c = counts[g]
        ax.stairs(bottom + c, edges, baseline=bottom.copy(), fill=True, color=cmap[k % len(cmap)], label=g)
        bottom += c
    if h.get("log_scale"):
        ax.set_xscale("log")
    span = h["max"] - h["min"]
    for t in h["thresholds"]:
        if h["min"] - 0.5 * span <= t["value"] <= h["max"] + 0.5 * span and (
            t["value"] > 0 or not h.get("log_scale")
        ):
            ax.axvline(t["value"], color="black", ls="--", lw=1.2)
            ax.text(t["value"], ax.get_ylim()[1] * 0.95, " " + t["label"], rotation=90, va="top", fontsize=7)
    ax.set_xlabel(column + (" (log scale)" if h.get("log_scale") else ""))
    ax.set_ylabel("documents")
    ax.set_title(f"{column}: n={_fmt(h['count'])}, mean={h['mean']:.4g}", fontsize=9)
    ax.legend(fontsize=7)
    return _png(fig)


def plot_dedup(d: dict[str, Any]) -> str:
    b = d["size_buckets"]
    fig = _figure(7, 3.0)
    ax = fig.add_subplot(111)
    x = np.arange(len(b))
    vals = [r["clusters"] for r in b]
    ax.bar(x, vals, color="#8b5cf6")
    ax.set_xticks(x, [r["size"] for r in b])
    if any(vals):
        ax.set_yscale("log")
    ax.set_xlabel("dup cluster size (documents)")
    ax.set_ylabel("clusters")
    for xx, v in zip(x, vals):
        if v:
            ax.text(xx, v, _fmt(v), ha="center", va="bottom", fontsize=7)
    return _png(fig)


def plot_mixing(m: dict[str, Any]) -> str:
    doms = list(m["domains"])
    fig = _figure(max(6, 1.2 * len(doms) + 2), 3.4)
    ax = fig.add_subplot(111)
    x = np.arange(len(doms))
    mixed = m.get("source") == "mix"
    series = [("available_share", "before (available)" if mixed else "inputs", "#94a3b8")]
    if mixed:
        series.append(("target_share", "target", "#f59e0b"))
    series.append(("realized_share", "after (realized)" if mixed else "outputs", "#2563eb"))
    w = 0.8 / len(series)
    for k, (key, label, color) in enumerate(series):
        ax.bar(
            x + (k - (len(series) - 1) / 2) * w,
            [m["domains"][d].get(key, 0) for d in doms],
            w,
            label=label,
            color=color,
        )
    ax.set_xticks(x, doms)
    ax.set_ylabel("token share" if m.get("source") == "mix" else "document share")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def plot_timings(t: list[dict[str, Any]]) -> str | None:
    rows = [r for r in t if r["wall_s"] or r["fit_wall_s"] or r["cpu_s"]]
    if not rows:
        return None
    fig = _figure(8, max(2.0, 0.4 * len(rows) + 0.8))
    ax = fig.add_subplot(111)
    y = np.arange(len(rows))[::-1]
    wall = np.array([r["wall_s"] for r in rows])
    fit = np.array([r["fit_wall_s"] for r in rows])
    ax.barh(y + 0.2, wall, 0.4, color="#0ea5e9", label="apply wall s")
    ax.barh(y + 0.2, fit, 0.4, left=wall, color="#f59e0b", label="fit wall s")
    ax.barh(y - 0.2, [r["cpu_s"] for r in rows], 0.4, color="#64748b", label="cpu s")
    ax.set_yticks(y, [f"{r['node']} ({r['stage']})" for r in rows], fontsize=8)
    ax.set_xlabel("seconds (summed over shards)")
    ax.legend(fontsize=8)
    return _png(fig)


# ----------------------------------------------------------------------------------------
# HTML
# ----------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#0f172a;background:#f8fafc}
header{background:#0f172a;color:#f8fafc;padding:16px 28px}header h1{margin:0;font-size:22px}
header .meta{opacity:.8;font-size:13px;margin-top:4px}
nav{padding:8px 28px;background:#e2e8f0;font-size:13px}nav a{margin-right:14px;color:#1e3a8a}
section{background:#fff;margin:16px 28px;padding:12px 20px;border-radius:8px;box-shadow:0 1px 3px #0002}
h2{font-size:17px;margin:6px 0 10px}img{max-width:100%;display:block;margin:6px 0}
table{border-collapse:collapse;font-size:12.5px;margin:6px 0}td,th{border-bottom:1px solid #e2e8f0;
padding:3px 10px;text-align:left}th{background:#f1f5f9}
td.n{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#0f172a;color:#e2e8f0;padding:10px;border-radius:6px;font-size:12px;overflow:auto;max-height:420px}
.row{display:flex;gap:20px;flex-wrap:wrap;align-items:flex-start}
.row>div{flex:1 1 420px;min-width:0;overflow-x:auto}
.cards{display:flex;gap:12px;flex-wrap:wrap}.card{background:#f1f5f9;border-radius:8px;padding:8px 14px}
.card b{display:block;font-size:20px}.warn{color:#b45309}.muted{color:#64748b}
"""


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        cls = ' class="n"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        txt = _fmt(v) if isinstance(v, int) else (f"{v:.4g}" if isinstance(v, float) else str(v))
        return f"<td{cls}>{html.escape(txt)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(b64: str | None, alt: str) -> str:
    if not b64:
        return f'<p class="muted">No data for {html.escape(alt)}.</p>'
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def _flat(obj: Any, key: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    """(dotted key, short value) pairs of a nested fit_stats dict, for a table."""
    if isinstance(obj, dict) and depth < 3:
        out: list[tuple[str, Any]] = []
        for k, v in obj.items():
            out.extend(_flat(v, f"{key}.{k}" if key else str(k), depth + 1))
        return out
    if isinstance(obj, (dict, list, tuple)):
        txt = json.dumps(obj, default=str)
        return [(key, txt if len(txt) <= 120 else txt[:117] + "...")]
    return [(key, obj if obj is not None else "-")]


def _row(*cells: str) -> str:
    return '<div class="row">' + "".join(f"<div>{c}</div>" for c in cells) + "</div>"


def render_html(job: JobData, s: dict[str, Any]) -> str:
    """The report page for summary ``s`` (images embedded as base64 PNG)."""
    info = s["job"]
    secs: list[tuple[str, str, str]] = []
    f = s["funnel"]
    inputs = sum(r["kept"] + r["rejected"] for r in f if r["kind"] == "input")
    final = sum(r["kept"] + (r.get("copies_added") or 0) for r in f if r["node"] in job.sinks)
    cards = [
        ("documents in", inputs),
        ("documents out", final),
        ("rejected", sum(s["reject_totals"].values())),
        ("wall s", round(float(info.get("wall_s") or 0), 2)),
    ]
    overview = (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{html.escape(_fmt(v))}</b>{html.escape(k)}</div>' for k, v in cards)
        + "</div>"
    )
    if s["warnings"]:
        overview += (
            "<ul>" + "".join(f'<li class="warn">{html.escape(w)}</li>' for w in s["warnings"]) + "</ul>"
        )
    secs.append(("overview", "Overview", overview))
    dag = _row(_img(plot_dag(job, f), "pipeline DAG"), _img(plot_funnel(f), "funnel")) + _table(
        ["node", "stage", "kind", "in", "kept", "rejected", "copies added", "inputs"],
        [
            [
                r["node"],
                r["stage"],
                r["kind"],
                r["in"],
                r["kept"],
                r["rejected"],
                r.get("copies_added") or 0,
                ", ".join(r["inputs"]),
            ]
            for r in f
        ],
    )
    secs.append(("dag", "Pipeline and funnel", dag))
    rej = _row(
        _img(plot_rejects(s), "rejects by reason"),
        _table(
            ["node", "reason", "documents"],
            [
                [n, r, c]
                for n, rs in s["rejects_by_reason"].items()
                for r, c in sorted(rs.items(), key=lambda kv: -kv[1])
            ],
        ),
    )
    secs.append(("rejects", "Rejects by reason", rej))
    if s["scores"]:
        sc = _row(
            *(
                _img(plot_score(c, h), f"histogram of {c}")
                + (
                    "<p class='muted'>thresholds: "
                    + html.escape("; ".join(t["label"] for t in h["thresholds"]))
                    + "</p>"
                    if h["thresholds"]
                    else ""
                )
                for c, h in s["scores"].items()
            )
        )
    else:
        sc = '<p class="muted">No score columns (quality, perplexity, dsir_logw) in this job.</p>'
    secs.append(("scores", "Score distributions", sc))
    d = s["dedup"]
    if d:
        dd = _row(
            _img(plot_dedup(d), "dedup cluster sizes"),
            _table(
                ["duplicates removed", "clusters with duplicates", "largest cluster", "source"],
                [
                    [
                        d["duplicates_removed"],
                        d["clusters_with_duplicates"],
                        d["largest_cluster"],
                        d["source"] or "-",
                    ]
                ],
            ),
        )
    else:
        dd = '<p class="muted">No deduplication in this job.</p>'
    secs.append(("dedup", "Deduplication", dd))
    m = s["mixing"]
    if m:
        if m.get("source") == "mix":
            rows = [
                [
                    dn,
                    e.get("available_tokens", 0),
                    e.get("target_weight", 0.0),
                    int(round(e.get("target_tokens", 0))),
                    e.get("realized_tokens", 0),
                    e.get("realized_share", 0.0),
                    e.get("epochs_used", 0.0),
                    e.get("max_epochs", 0.0),
                    "yes" if e.get("cap_bound") else "no",
                ]
                for dn, e in m["domains"].items()
            ]
            tbl = _table(
                [
                    "domain",
                    "available tokens",
                    "weight",
                    "target tokens",
                    "realized tokens",
                    "realized share",
                    "epochs used",
                    "max epochs",
                    "cap bound",
                ],
                rows,
            )
            head = (
                f"<p>node <b>{html.escape(str(m['node']))}</b>: method {html.escape(str(m.get('method')))}, "
                f"budget {_fmt(m.get('budget_tokens'))} tokens, realized {_fmt(m.get('realized_tokens'))}, "
                f"on_cap {html.escape(str(m.get('on_cap')))}</p>"
            )
        else:
            head = "<p class='muted'>No mix stage: document shares at the inputs vs in the outputs.</p>"
            tbl = ""
        mx = head + _img(plot_mixing(m), "domain shares before and after mixing") + tbl
    else:
        mx = '<p class="muted">Single domain, no mixing.</p>'
    secs.append(("mixing", "Domain mixing", mx))
    fits = [[n, k, v] for n, fs in s["fit_stats"].items() for k, v in _flat(fs) if not k.startswith("mix.")]
    secs.append(
        (
            "fits",
            "Fitted statistics (barriers)",
            _table(["node", "statistic", "value"], fits)
            if fits
            else '<p class="muted">No barrier statistics in this job.</p>',
        )
    )
    secs.append(
        (
            "timings",
            "Timings",
            _row(
                _img(plot_timings(s["timings"]), "timings per stage"),
                _table(
                    ["node", "stage", "apply wall s", "fit wall s", "cpu s", "step wall s"],
                    [
                        [r["node"], r["stage"], r["wall_s"], r["fit_wall_s"], r["cpu_s"], r["step_wall_s"]]
                        for r in s["timings"]
                    ],
                ),
            ),
        )
    )
    digests = _table(
        ["node", "fact", "value"],
        [
            [n, k, json.dumps(v) if not isinstance(v, str) else v]
            for n, rs in s["model_digests"].items()
            for k, v in rs.items()
        ],
    )
    prov = (
        _table(
            ["curate version", "seed", "executor", "started", "finished", "state"],
            [
                [
                    s["curate_version"],
                    str(s["seed"]),
                    info.get("executor", ""),
                    info.get("started_at", ""),
                    info.get("finished_at", ""),
                    info.get("state", ""),
                ]
            ],
        )
        + "<h3>Model digests and run facts</h3>"
        + (digests if s["model_digests"] else '<p class="muted">No models in this job.</p>')
        + "<h3>Spec</h3><pre>"
        + html.escape(json.dumps(s["spec"], indent=2, sort_keys=True))
        + "</pre>"
    )
    secs.append(("provenance", "Spec and provenance", prov))
    nav = "".join(f'<a href="#{i}">{html.escape(t)}</a>' for i, t, _ in secs)
    body = "".join(f'<section id="{i}"><h2>{html.escape(t)}</h2>{c}</section>' for i, t, c in secs)
    title = html.escape(f"curate report: {info.get('name', job.dir.name)}")
    meta = html.escape(
        f"job {job.dir.name} · state {info.get('state', '?')} · seed {s['seed']} · "
        f"executor {info.get('executor', '?')} · curate {s['curate_version']}"
    )
    return (
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_CSS}</style></head><body><header><h1>{title}</h1><div class='meta'>{meta}</div></header>"
        f"<nav>{nav}</nav>{body}</body></html>"
    )


def write_report(job_dir: str | Path) -> Path:
    """Write ``report.html`` and ``summary.json`` into ``job_dir``; returns the HTML path."""
    job = JobData(job_dir)
    summary = build_summary(job)
    page = render_html(job, summary)
    write_json_atomic(job.dir / "summary.json", summary)
    out = job.dir / "report.html"
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
