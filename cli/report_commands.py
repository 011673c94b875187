"""``curate report JOB_DIR`` and ``curate explain JOB_DIR DOC_ID``."""

from __future__ import annotations

import json

import typer
from rich.console import Console

_err = Console(stderr=True)


def report(job_dir: str = typer.Argument(..., help="Job directory of a finished (or failed) run (or s3://...)")) -> None:
    """Write report.html (one self-contained page) and summary.json into JOB_DIR."""
    from curate import jobfs
    from curate.report import write_report

    if not (jobfs.path(job_dir) / "stats.json").exists():
        _err.print(f"[red]{job_dir} is not a job directory (no stats.json)[/red]")
        raise typer.Exit(2)
    path = write_report(job_dir)
    typer.echo(str(path))


def explain(
    job_dir: str = typer.Argument(..., help="Job directory (or s3://...)"),
    doc_id: str = typer.Argument(..., help="Document id (the id of a copy a stage added works too)"),
    as_json: bool = typer.Option(False, "--json", help="Print the full lineage as JSON"),
) -> None:
    """Why is a document not in the output (or how did it get in)? Answers from the job's files."""
    from curate import jobfs
    from curate.lineage import explain as _explain
    from curate.lineage import format_explanation

    if not jobfs.path(job_dir).is_dir():
        _err.print(f"[red]{job_dir} is not a directory[/red]")
        raise typer.Exit(2)
    e = _explain(str(job_dir), doc_id)
    typer.echo(json.dumps(e, indent=2, default=str) if as_json else format_explanation(e))
    if e["status"] == "not_found":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Mount ``report`` and ``explain`` on the main CLI."""
    app.command("report")(report)
    app.command("explain")(explain)
