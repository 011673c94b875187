"""``curate plan SPEC [--estimate]``: the plan of a spec, and what a run of it will cost."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

console = Console(stderr=True)
out = Console()


def estimate_table(est) -> Table:
    """One table: a row per node (with the barrier columns filled for barriers)."""
    from curate.estimate_model import fmt_bytes, fmt_seconds

    bars = {b.node: b for b in est.barriers}
    t = Table(title=f"estimate: {est.corpus_docs:,} docs, {fmt_bytes(est.corpus_bytes)} on {est.cluster.nodes} x "
                    f"{est.cluster.cpus_per_node} CPUs ({est.cluster.executor})")
    cols = ("node", "stage", "docs in", "kept", "docs/s/CPU", "bytes/doc", "wall",
            "fit wall", "peak mem/task", "shuffle", "scratch")
    for c in cols:
        t.add_column(c, justify="left" if c in ("node", "stage") else "right")
    for n in est.nodes:
        b = bars.get(n.node)
        t.add_row(n.node, n.stage, f"{n.docs_in:,}", f"{n.output_fraction:.1%}",
                  f"{n.docs_per_s_per_cpu:,.0f}" if n.docs_per_s_per_cpu else "-", f"{n.bytes_per_doc:,.0f}",
                  fmt_seconds(n.wall_s),
                  *((fmt_seconds(b.fit_wall_s), fmt_bytes(b.peak_memory_per_task) + ("" if b.fits_in_memory else " !"),
                     fmt_bytes(b.shuffle_bytes), fmt_bytes(b.scratch_bytes)) if b else ("", "", "", "")))
    outs = ", ".join(f"{k} {fmt_bytes(v)}" for k, v in est.output_bytes.items())
    t.caption = (f"job: wall {fmt_seconds(est.wall_s)}, {est.cpu_hours:,.2f} CPU-hours, scratch "
                 f"{fmt_bytes(est.scratch_bytes)}, output {outs or '-'}; {est.shards:,} shards; "
                 f"sampled {est.sample_docs[-1]:,} docs")
    return t


def register(app: typer.Typer) -> None:
    """Add ``plan`` to ``app``."""

    @app.command()
    def plan(
        spec: Path = typer.Argument(..., help="Pipeline spec (YAML or JSON)"),
        estimate: bool = typer.Option(False, "--estimate", help="Run the spec on a sample and predict a full run"),
        nodes: int = typer.Option(1, "--nodes", help="Cluster nodes to size for"),
        cpus_per_node: int = typer.Option(2, "--cpus-per-node", help="CPUs per node"),
        memory_per_node: str = typer.Option("8GiB", "--memory-per-node", help="Memory per node (e.g. 256GiB)"),
        executor: str = typer.Option("ray", "--executor", "-e", help="ray (a cluster) | local (one process)"),
        corpus_bytes: Optional[str] = typer.Option(None, "--corpus-bytes", help="Size for this much input (e.g. 10TB); default: the inputs' files"),
        corpus_docs: Optional[str] = typer.Option(None, "--corpus-docs", help="Size for this many documents (e.g. 3e9)"),
        sample_rows: int = typer.Option(16_000, "--sample-rows", help="Rows sampled in all (spread over the files)"),
        max_files: int = typer.Option(32, "--sample-files", help="Files sampled per input, at most"),
        as_json: bool = typer.Option(False, "--json", help="Print the estimate as JSON"),
    ) -> None:
        """Print the plan of a spec; with --estimate, what a run on a cluster will cost."""
        from curate.estimate_model import EstimateError, make_cluster, parse_size
        from curate.plan import make_plan
        from curate.spec import SpecError, validate_spec

        try:
            ps = validate_spec(spec)
        except SpecError as e:
            console.print(f"[red]{escape(str(e))}[/red]")
            raise typer.Exit(2)
        if not estimate:
            for s in make_plan(ps).steps:
                head = f"fit {s.barrier} -> " if s.barrier else ""
                out.print(f"step {s.id}: {', '.join(s.sources)} -> {head}{' -> '.join(s.chain) or '(materialize)'}")
            return
        from workers.estimate import estimate as run_estimate

        try:
            cluster = make_cluster(nodes=nodes, cpus_per_node=cpus_per_node,
                                   memory_per_node=parse_size(memory_per_node), executor=executor)
            est = run_estimate(ps, cluster, corpus_bytes=parse_size(corpus_bytes) if corpus_bytes else None,
                               corpus_docs=parse_size(corpus_docs) if corpus_docs else None,
                               sample_rows=sample_rows, max_files=max_files)
        except (EstimateError, SpecError) as e:
            console.print(f"[red]{escape(str(e))}[/red]")
            raise typer.Exit(2)
        if as_json:
            out.print_json(json.dumps(est.model_dump(mode="json")))
            return
        Console(width=max(out.width, 160)).print(estimate_table(est))
        for w in est.warnings:
            console.print(f"[yellow]warning:[/yellow] {escape(w)}", soft_wrap=True)
