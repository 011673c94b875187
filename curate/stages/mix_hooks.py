"""The `mix` stage's report section (its manifest) and lineage (bucket, repeats, copies)."""

from __future__ import annotations

import html
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from curate import schema
from curate.stage import ReportSection
from curate.stages.mix_params import MIX_BUCKET, MIX_REPEAT, read_manifest

if TYPE_CHECKING:  # pragma: no cover
    from curate.jobdata import JobData

_HEADERS = [
    "domain",
    "available tokens",
    "weight",
    "target tokens",
    "realized tokens",
    "realized share",
    "epochs used",
    "max epochs",
    "cap bound",
]


def manifest(job: JobData, node_id: str) -> dict[str, Any] | None:
    """The node's manifest: from its fit stats, else ``state/<node>/manifest.json``."""
    man = ((job.nodes.get(node_id) or {}).get("fit_stats") or {}).get("mix")
    if man is None and (job.state_dir(node_id) / "manifest.json").exists():
        man = read_manifest(job.state_dir(node_id))
    return man or None


def report_sections(job: JobData, node_id: str) -> list[ReportSection]:
    """Per domain: available, target and realized tokens, epochs and caps, with a chart
    of token shares before, targeted and after mixing."""
    from curate.report.html import img, table
    from curate.report.plots import fmt, plot_shares

    man = manifest(job, node_id)
    if not man:
        return []
    doms = man.get("domains") or {}
    rows = [
        [
            dn,
            e.get("available_tokens", 0),
            e.get("target_weight", 0.0),
            round(e.get("target_tokens", 0)),
            e.get("realized_tokens", 0),
            e.get("realized_share", 0.0),
            e.get("epochs_used", 0.0),
            e.get("max_epochs", 0.0),
            "yes" if e.get("cap_bound") else "no",
        ]
        for dn, e in doms.items()
    ]
    head = (
        f"<p>method {html.escape(str(man.get('method')))}, "
        f"budget {fmt(man.get('budget_tokens'))} tokens, realized {fmt(man.get('realized_tokens'))}, "
        f"on_cap {html.escape(str(man.get('on_cap')))}</p>"
    )
    series = [
        ("available_share", "before (available)", "#94a3b8"),
        ("target_share", "target", "#f59e0b"),
        ("realized_share", "after (realized)", "#2563eb"),
    ]
    chart = img(plot_shares(doms, series, "token share"), "domain shares before and after mixing")
    return [ReportSection("mixing", "Domain mixing", man, head + chart + table(_HEADERS, rows))]


def explain_row(job: JobData, node_id: str, row: dict[str, Any], rejected: bool) -> dict[str, Any]:
    """``{"mix": {node, bucket, repeat, copy_ids}}``: how often the document was drawn and
    the ids of its copies in the outputs (``detail`` too when it was not drawn)."""
    if rejected:
        return {
            "mix": {
                "node": node_id,
                "bucket": row.get(schema.DOMAIN),
                "repeat": 0,
                "copy_ids": [],
                "detail": row.get(schema.DETAIL),
            }
        }
    if MIX_REPEAT not in row and MIX_BUCKET not in row:
        return {}
    sid = row.get(schema.SOURCE_ID)
    sid = str(sid if sid is not None else row.get(schema.ID))
    below = set(job.descendants(node_id)) | {node_id}
    copies: set[str] = set()
    for s in job.sinks:
        if s in below:
            c = job.find_rows(
                job.node_files(s), pc.field(schema.SOURCE_ID) == sid, [schema.SOURCE_ID], [schema.ID]
            )
            if c is not None:
                copies |= set(c.column(schema.ID).to_pylist())
    return {
        "mix": {
            "node": node_id,
            "bucket": row.get(MIX_BUCKET),
            "repeat": row.get(MIX_REPEAT),
            "copy_ids": sorted(copies),
        }
    }
