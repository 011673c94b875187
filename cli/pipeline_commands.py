"""Pipeline commands: ``curate run``, ``curate validate``, ``curate stages``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(stderr=True)
out = Console()


def _ledger_table(stats: dict) -> Table:
    t = Table(title="ledger (documents)")
    for c in ("node", "stage", "in", "kept", "rejected", "top reject reasons"):
        t.add_column(c, justify="right" if c in ("in", "kept", "rejected") else "left")
    for nid, ns in stats.get("nodes", {}).items():
        reasons = sorted(ns.get("rejects_by_reason", {}).items(), key=lambda kv: -kv[1])[:3]
        kept = str(ns.get("kept", 0)) + (f" (+{ns['copies_added']} copies)" if ns.get("copies_added") else "")
        t.add_row(nid, ns.get("stage", ""), str(ns.get("in", 0)), kept, str(ns.get("rejected", 0)),
                  ", ".join(f"{r}={n}" for r, n in reasons))
    return t


PREFLIGHT_HINT = "(--no-preflight skips these checks, for paths an earlier step creates)"


def _preflight_or_exit(ps, job_dir: Path | str | None) -> dict[str, int]:
    """Run the preflight on a validated spec; print its problems and exit 2 if any.
    Returns the files each input matched."""
    from curate.preflight import preflight

    rep = preflight(ps, job_dir=job_dir)
    if rep.problems:
        console.print("[red]preflight failed (paths the spec names):[/red]")
        for p in rep.problems:
            console.print(f"[red]  - {escape(str(p))}[/red]", soft_wrap=True)
        console.print(PREFLIGHT_HINT, soft_wrap=True)
        raise typer.Exit(2)
    return rep.input_files


def register(app: typer.Typer) -> None:
    """Add ``run``, ``validate`` and ``stages`` to ``app``."""

    @app.command()
    def run(
        spec: Path = typer.Argument(..., help="Pipeline spec (YAML or JSON)"),
        executor: str = typer.Option("local", "--executor", "-e", help="local | ray"),
        ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Existing Ray cluster (default: embedded)"),
        job_dir: Optional[str] = typer.Option(
            None, "--job-dir", help="Job directory, local or s3://bucket/prefix (default: spec job_dir or runs/<name>)"),
        resume: bool = typer.Option(False, "--resume", help="Skip shards and fits already completed"),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display"),
        no_preflight: bool = typer.Option(
            False, "--no-preflight", help="Do not check that inputs match files and paths exist before running"),
    ) -> None:
        """Run a pipeline end to end and print its ledger."""
        from curate import jobfs
        from curate.spec import SpecError, validate_spec
        from workers import JobFailed, run_pipeline
        from workers.ingest import ShardError

        if executor not in ("local", "ray"):
            console.print(f"[red]unknown executor '{executor}' (use local or ray)[/red]")
            raise typer.Exit(2)
        try:
            ps = validate_spec(spec)
        except SpecError as e:
            console.print(f"[red]{escape(str(e))}[/red]")
            raise typer.Exit(2) from None
        target_dir = jobfs.path(job_dir or ps.job_dir or Path("runs") / ps.name)
        if not no_preflight:
            _preflight_or_exit(ps, target_dir)
        if not resume:
            from workers.completed_work import resume_hint

            hint = resume_hint(target_dir)
            if hint:
                console.print(f"[yellow]note:[/yellow] {escape(hint)}", soft_wrap=True)
        if executor == "ray" or ray_address:
            executor = "ray"
            ray_address = ray_address or os.environ.get("CURATE_RAY_ADDRESS") or None
        progress_fn = None
        if not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            prog = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console)
            tasks: dict[str, int] = {}

            def progress_fn(step: str, done: int, total: int) -> None:
                if step not in tasks:
                    tasks[step] = prog.add_task(step, total=max(total, 1))
                prog.update(tasks[step], completed=done if total else 1, total=max(total, 1))

            prog.start()
        try:
            result = run_pipeline(spec, executor=executor, job_dir=job_dir, ray_address=ray_address, resume=resume, progress=progress_fn)
        except SpecError as e:
            if not quiet:
                prog.stop()
            console.print(f"[red]{escape(str(e))}[/red]")
            raise typer.Exit(2)
        except (JobFailed, ShardError) as e:
            if not quiet:
                prog.stop()
            console.print(f"[red]job failed:[/red] {escape(str(e))}")
            raise typer.Exit(1)
        if not quiet:
            prog.stop()
        out.print(_ledger_table(result.stats))
        for w in result.warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(w)}")
        out.print(f"job directory: {escape(str(result.job_dir))}")
        for name, path in result.outputs.items():
            out.print(f"output {escape(name)}: {escape(path)}")
        report = result.job_dir / "report.html"
        if report.exists():
            out.print(f"report: {report}")


    @app.command()
    def validate(
        spec: Path = typer.Argument(..., help="Pipeline spec (YAML or JSON)"),
        no_preflight: bool = typer.Option(
            False, "--no-preflight", help="Check the spec only, not that its input files and paths exist"),
    ) -> None:
        """Validate a spec and print every problem, by node; then check its paths (preflight)."""
        from curate.plan import make_plan
        from curate.spec import SpecError, spec_warnings, validate_spec

        try:
            ps = validate_spec(spec)
        except SpecError as e:
            console.print(f"[red]{escape(str(e))}[/red]")
            raise typer.Exit(2)
        for w in spec_warnings(ps):
            console.print(f"[yellow]warning:[/yellow] {escape(w)}")
        counts = None if no_preflight else _preflight_or_exit(ps, ps.job_dir or Path("runs") / ps.name)
        plan = make_plan(ps)
        out.print(f"[green]valid[/green]: {len(ps.nodes)} nodes, {len(plan.steps)} steps")
        for name, n in (counts or {}).items():
            out.print(f"  input {escape(name)}: {n} file{'s' if n != 1 else ''}")
        for s in plan.steps:
            head = f"fit {s.barrier} -> " if s.barrier else ""
            out.print(f"  step {s.id}: {', '.join(s.sources)} -> {head}{' -> '.join(s.chain) or '(materialize)'}")


    @app.command()
    def stages(
        as_json: bool = typer.Option(False, "--json", help="Print the full catalogue with JSON schemas"),
        name: Optional[str] = typer.Argument(None, help="Show one stage's schema"),
    ) -> None:
        """List every stage with its kind and parameters (JSON schema with --json)."""
        from curate.registry import catalogue

        cat = catalogue()
        if name:
            cat = [c for c in cat if c["name"] == name]
            if not cat:
                from curate.spec import stage_suggestion

                console.print(f"[red]{escape(f'unknown stage {name!r}' + stage_suggestion(name))}[/red]")
                raise typer.Exit(2)
            as_json = True
        if as_json:
            out.print_json(json.dumps(cat))
            return
        t = Table(title="curate stages")
        for c in ("stage", "kind", "parameters", "summary"):
            t.add_column(c)
        for c in cat:
            props = c["params_schema"].get("properties", {})
            t.add_row(c["name"], c["kind"], ", ".join(props), c["summary"])
        out.print(t)
