"""The report page: one self-contained HTML file (figures embedded as base64 PNG).

Generic sections come first (overview, DAG and funnel, rejects, score histograms), then
one section per key the stages contribute (a block per node), then domain shares, fitted
statistics, timings and provenance. :func:`table`, :func:`img` and :func:`row` are the
helpers stage sections use too.
"""

from __future__ import annotations

import html
import json
from typing import Any

from curate.jobdata import JobData
from curate.report import plots
from curate.report.plots import fmt
from curate.stage import ReportSection

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


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """An HTML table; numbers are right-aligned, integers get thousands separators."""

    def cell(v: Any) -> str:
        cls = ' class="n"' if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        txt = fmt(v) if isinstance(v, int) else (f"{v:.4g}" if isinstance(v, float) else str(v))
        return f"<td{cls}>{html.escape(txt)}</td>"

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(cell(v) for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def img(b64: str | None, alt: str) -> str:
    """An embedded PNG, or a "no data" note when there is no figure."""
    if not b64:
        return f'<p class="muted">No data for {html.escape(alt)}.</p>'
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def flat(obj: Any, key: str = "", depth: int = 0) -> list[tuple[str, Any]]:
    """(dotted key, short value) pairs of a nested dict, for a table."""
    if isinstance(obj, dict) and depth < 3:
        out: list[tuple[str, Any]] = []
        for k, v in obj.items():
            out.extend(flat(v, f"{key}.{k}" if key else str(k), depth + 1))
        return out
    if isinstance(obj, (dict, list, tuple)):
        txt = json.dumps(obj, default=str)
        return [(key, txt if len(txt) <= 120 else txt[:117] + "...")]
    return [(key, obj if obj is not None else "-")]


def row(*cells: str) -> str:
    """Blocks side by side (wrapping on narrow pages)."""
    return '<div class="row">' + "".join(f"<div>{c}</div>" for c in cells) + "</div>"


def _overview(job: JobData, s: dict[str, Any]) -> str:
    f = s["funnel"]
    inputs = sum(r["kept"] + r["rejected"] for r in f if r["kind"] == "input")
    final = sum(r["kept"] + (r.get("copies_added") or 0) for r in f if r["node"] in job.sinks)
    cards = [
        ("documents in", inputs),
        ("documents out", final),
        ("rejected", sum(s["reject_totals"].values())),
        ("wall s", round(float(s["job"].get("wall_s") or 0), 2)),
    ]
    out = (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{html.escape(fmt(v))}</b>{html.escape(k)}</div>' for k, v in cards)
        + "</div>"
    )
    if s["warnings"]:
        out += "<ul>" + "".join(f'<li class="warn">{html.escape(w)}</li>' for w in s["warnings"]) + "</ul>"
    return out


def _dag(job: JobData, f: list[dict[str, Any]]) -> str:
    return row(img(plots.plot_dag(job, f), "pipeline DAG"), img(plots.plot_funnel(f), "funnel")) + table(
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


def _rejects(s: dict[str, Any]) -> str:
    return row(
        img(plots.plot_rejects(s), "rejects by reason"),
        table(
            ["node", "reason", "documents"],
            [
                [n, r, c]
                for n, rs in s["rejects_by_reason"].items()
                for r, c in sorted(rs.items(), key=lambda kv: -kv[1])
            ],
        ),
    )


def _scores(s: dict[str, Any]) -> str:
    if not s["scores"]:
        return '<p class="muted">No score columns in this job.</p>'
    return row(
        *(
            img(plots.plot_score(c, h), f"histogram of {c}")
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


def _stage_blocks(job: JobData, sections: list[tuple[str, ReportSection]]) -> list[tuple[str, str, str]]:
    """One page section per key, in order of first appearance, with a block per node."""
    by_key: dict[str, list[tuple[str, ReportSection]]] = {}
    for n, sec in sections:
        by_key.setdefault(sec.key, []).append((n, sec))
    out = []
    for key, items in by_key.items():
        body = "".join(
            f"<h3>{html.escape(n)} ({html.escape(job.stage_of(n))})</h3>"
            + (sec.html or table(["statistic", "value"], [[k, v] for k, v in flat(sec.data)]))
            for n, sec in items
        )
        out.append((key, items[0][1].title, body))
    return out


def _domains(s: dict[str, Any]) -> str:
    d = s["domain_shares"]
    if not d:
        return '<p class="muted">Single domain, no mixing.</p>'
    return (
        "<p class='muted'>Document shares per domain at the inputs vs in the outputs.</p>"
        + img(
            plots.plot_shares(
                d["domains"],
                [("available_share", "inputs", "#94a3b8"), ("realized_share", "outputs", "#2563eb")],
                "document share",
            ),
            "domain shares at the inputs and in the outputs",
        )
        + table(
            ["domain", "input docs", "input share", "output docs", "output share"],
            [
                [dn, e["available_docs"], e["available_share"], e["realized_docs"], e["realized_share"]]
                for dn, e in d["domains"].items()
            ],
        )
    )


def _provenance(s: dict[str, Any]) -> str:
    info = s["job"]
    digests = table(
        ["node", "fact", "value"],
        [
            [n, k, json.dumps(v) if not isinstance(v, str) else v]
            for n, rs in s["model_digests"].items()
            for k, v in rs.items()
        ],
    )
    return (
        table(
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


def render_html(
    job: JobData, s: dict[str, Any], sections: list[tuple[str, ReportSection]] | None = None
) -> str:
    """The report page for summary ``s`` and the stages' ``sections`` (recomputed if None)."""
    if sections is None:
        from curate.report.summary import stage_sections

        sections = stage_sections(job)
    info = s["job"]
    secs: list[tuple[str, str, str]] = [
        ("overview", "Overview", _overview(job, s)),
        ("dag", "Pipeline and funnel", _dag(job, s["funnel"])),
        ("rejects", "Rejects by reason", _rejects(s)),
        ("scores", "Score distributions", _scores(s)),
        *_stage_blocks(job, sections),
        ("domains", "Domain shares", _domains(s)),
    ]
    fits = [[n, k, v] for n, fs in s["fit_stats"].items() for k, v in flat(fs)]
    secs.append(
        (
            "fits",
            "Fitted statistics (barriers)",
            table(["node", "statistic", "value"], fits)
            if fits
            else '<p class="muted">No barrier statistics in this job.</p>',
        )
    )
    t = s["timings"]
    secs.append(
        (
            "timings",
            "Timings",
            row(
                img(plots.plot_timings(t), "timings per stage"),
                table(
                    ["node", "stage", "apply wall s", "fit wall s", "cpu s", "step wall s"],
                    [
                        [r["node"], r["stage"], r["wall_s"], r["fit_wall_s"], r["cpu_s"], r["step_wall_s"]]
                        for r in t
                    ],
                ),
            ),
        )
    )
    secs.append(("provenance", "Spec and provenance", _provenance(s)))
    nav = "".join(f'<a href="#{i}">{html.escape(t)}</a>' for i, t, _ in secs)
    body = "".join(
        f'<section id="{html.escape(i)}"><h2>{html.escape(t)}</h2>{c}</section>' for i, t, c in secs
    )
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
