"""Per-job report: ``report.html`` (one self-contained page) and ``summary.json``.

:func:`write_report` reads what the job already wrote (``stats.json``, ``spec.json``,
``rejects/<node>/`` and the node / output Parquet parts, streamed with column
projection). :mod:`.summary` computes the numbers, :mod:`.plots` draws the figures
(matplotlib, Agg, no display) and :mod:`.html` renders the page:

* the DAG with per-node in / kept / rejected counts and a funnel; rejects by reason;
* a histogram of every score column a stage declares (``Stage.score_columns``), split into
  finally kept vs rejected-at-node documents, with the thresholds the stages report
  (``Stage.report_thresholds``) drawn;
* the sections stages contribute (``Stage.report_sections``, e.g. dedup cluster sizes,
  a mixing manifest), under ``summary["sections"][node_id][key]``;
* document shares per ``domain`` at the inputs vs in the outputs (two or more domains);
* fitted statistics, timings per stage; the spec, seed, model digests (``run_stats``)
  and curate's version.
"""

from __future__ import annotations

from pathlib import Path

from curate import jobfs
from curate.jobdata import JobData
from curate.parquet_io import write_json_atomic
from curate.report.html import render_html
from curate.report.summary import build_summary, stage_sections

__all__ = ["build_summary", "render_html", "write_report"]


def write_report(job_dir: str | Path | jobfs.RemotePath) -> jobfs.JobPath:
    """Write ``report.html`` and ``summary.json`` into ``job_dir``; returns the HTML path."""
    job = JobData(job_dir)
    sections = stage_sections(job)
    summary = build_summary(job, sections)
    page = render_html(job, summary, sections)
    write_json_atomic(job.dir / "summary.json", summary)
    out = job.dir / "report.html"
    if isinstance(out, jobfs.RemotePath):
        out.write_text(page)  # one PUT
        return out
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(out)
    return out
