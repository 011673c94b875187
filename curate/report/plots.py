"""The report's figures: matplotlib's object API on an Agg canvas (no global backend, no
display), each returned as a base64 PNG for embedding. Stage sections may use them."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

from curate.jobdata import JobData

_COLORS = {"input": "#dbeafe", "map": "#dcfce7", "barrier": "#fde68a"}


def figure(w: float, h: float):
    """A matplotlib Figure of ``w`` x ``h`` inches on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def png(fig) -> str:
    """``fig`` as a base64-encoded PNG."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def fmt(n: Any) -> str:
    """A count with thousands separators (other values as they are)."""
    return f"{int(n):,}" if isinstance(n, (int, float)) and float(n).is_integer() else f"{n}"


def plot_dag(job: JobData, funnel: list[dict[str, Any]]) -> str:
    """The DAG, top to bottom, each node with its in / kept / rejected counts."""
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
    fig = figure(max(4.5, 0.85 * (dx * width + 0.4)), 0.85 * (dy * nlayers + 0.2))
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
        extra = f" +{fmt(r['copies_added'])} copies" if r.get("copies_added") else ""
        ax.text(x, y + 0.2, f"{n}  ·  {r['stage']}", ha="center", va="center", fontsize=9, weight="bold")
        ax.text(
            x,
            y - 0.14,
            f"in {fmt(r['in'])} → kept {fmt(r['kept'])}{extra}",
            ha="center",
            va="center",
            fontsize=8,
        )
        if r["rejected"]:
            ax.text(
                x,
                y - 0.32,
                f"rejected {fmt(r['rejected'])}",
                ha="center",
                va="center",
                fontsize=7.5,
                color="#b91c1c",
            )
    ax.set_xlim(-dx * width / 2 - 0.1, dx * width / 2 + 0.1)
    ax.set_ylim(-dy * (nlayers - 1) - bh / 2 - 0.1, bh / 2 + 0.1)
    ax.axis("off")
    return png(fig)


def plot_funnel(funnel: list[dict[str, Any]]) -> str:
    """Kept / rejected / copies added per node, as stacked bars."""
    rows = [r for r in funnel if r["in"] or r["kept"]]
    fig = figure(8, max(2.0, 0.42 * len(rows) + 0.8))
    ax = fig.add_subplot(111)
    y = np.arange(len(rows))[::-1]
    kept = np.array([r["kept"] for r in rows], float)
    rej = np.array([r["rejected"] for r in rows], float)
    cop = np.array([r.get("copies_added") or 0 for r in rows], float)
    ax.barh(y, kept, color="#22c55e", label="kept")
    ax.barh(y, rej, left=kept, color="#ef4444", label="rejected")
    if cop.any():
        ax.barh(y, cop, left=kept + rej, color="#3b82f6", label="copies added")
    ax.set_yticks(y, [f"{r['node']} ({r['stage']})" for r in rows], fontsize=8)
    ax.set_xlabel("documents")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def plot_rejects(summary: dict[str, Any]) -> str | None:
    """The 25 largest (node, reason) reject counts."""
    items = [(f"{n}: {r}", c) for n, rs in summary["rejects_by_reason"].items() for r, c in rs.items()]
    if not items:
        return None
    items.sort(key=lambda kv: -kv[1])
    items = items[:25]
    fig = figure(8, max(2.0, 0.36 * len(items) + 0.8))
    ax = fig.add_subplot(111)
    y = np.arange(len(items))[::-1]
    ax.barh(y, [c for _, c in items], color="#f97316")
    ax.set_yticks(y, [k for k, _ in items], fontsize=8)
    for yy, (_, c) in zip(y, items):
        ax.text(c, yy, f" {fmt(c)}", va="center", fontsize=7)
    ax.set_xlabel("rejected documents")
    ax.grid(axis="x", alpha=0.3)
    return png(fig)


def plot_score(column: str, h: dict[str, Any]) -> str:
    """A score histogram stacked by group (kept, rejected at a node), thresholds drawn."""
    edges = np.array(h["bin_edges"])
    fig = figure(8, 3.4)
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
    ax.set_title(f"{column}: n={fmt(h['count'])}, mean={h['mean']:.4g}", fontsize=9)
    ax.legend(fontsize=7)
    return png(fig)


def plot_shares(domains: dict[str, dict[str, Any]], series: list[tuple[str, str, str]], ylabel: str) -> str:
    """Grouped bars per domain: one bar per ``(key, label, color)`` of ``series``, the
    height being ``domains[d][key]``."""
    doms = list(domains)
    fig = figure(max(6, 1.2 * len(doms) + 2), 3.4)
    ax = fig.add_subplot(111)
    x = np.arange(len(doms))
    w = 0.8 / len(series)
    for k, (key, label, color) in enumerate(series):
        ax.bar(
            x + (k - (len(series) - 1) / 2) * w,
            [domains[d].get(key, 0) for d in doms],
            w,
            label=label,
            color=color,
        )
    ax.set_xticks(x, doms)
    ax.set_ylabel(ylabel)
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return png(fig)


def plot_timings(t: list[dict[str, Any]]) -> str | None:
    """Apply, fit and CPU seconds per node."""
    rows = [r for r in t if r["wall_s"] or r["fit_wall_s"] or r["cpu_s"]]
    if not rows:
        return None
    fig = figure(8, max(2.0, 0.4 * len(rows) + 0.8))
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
    return png(fig)
