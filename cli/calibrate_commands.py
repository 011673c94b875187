"""``curate calibrate REFERENCE...``: per-language heuristic thresholds (FineWeb2 style)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def _threshold_table(cal) -> Table:
    short = {k: k.split(":", 1)[1] for k in cal.english_thresholds}
    t = Table(title=f"thresholds per language (quantile matching against '{cal.english}')")
    t.add_column("language")
    t.add_column("docs", justify="right")
    for k in cal.english_thresholds:
        t.add_column(short[k], justify="right")
    t.add_row("removes", "", *(f"{cal.removal[k]:.1%}" for k in cal.english_thresholds), style="dim")
    for lang, th in cal.per_language.items():
        style = "bold" if lang == cal.english else None
        t.add_row(lang, str(cal.documents[lang]), *(f"{th[k]:.4g}" for k in cal.english_thresholds), style=style)
    return t


def calibrate(
    reference: list[str] = typer.Argument(..., help="Reference Parquet files / dirs / globs (text, language)"),
    out: Path = typer.Option(..., "--out", "-o", help="Preset file to write (heuristic_filter preset_file)"),
    rule: list[str] = typer.Option(
        None, "--rule", help="Rule to calibrate, preset:rule (repeatable; default: those FineWeb2 adapts)"),
    english: str = typer.Option("en", "--english", help="Language whose thresholds are the reference"),
    min_docs: int = typer.Option(20, "--min-docs", min=1, help="Skip languages with fewer reference docs"),
    quantile_method: str = typer.Option("linear", "--quantile-method", help="numpy.quantile method"),
    text_column: str = typer.Option("text", "--text-column"),
    language_column: str = typer.Option("language", "--language-column"),
) -> None:
    """Derive per-language heuristic_filter thresholds from reference text: each language's
    threshold removes the same fraction of its reference text as the English threshold
    removes of English reference text (FineWeb2, Penedo et al. 2025)."""
    from curate.calibrate import calibrate as run
    from curate.calibrate import read_reference

    err = Console(stderr=True)
    try:
        ref = read_reference(reference, text_column, language_column)
        cal = run(ref, rules=rule or None, english=english, min_docs=min_docs, quantile_method=quantile_method,
                  text_column=text_column, language_column=language_column)
    except (OSError, ValueError) as e:
        err.print(f"[red]calibrate failed: {e}[/red]")
        raise typer.Exit(1) from None
    path = cal.write(out)
    console = Console()
    console.print(_threshold_table(cal))
    if cal.skipped:
        console.print("skipped (too few documents): " + ", ".join(f"{k} ({n})" for k, n in cal.skipped.items()))
    console.print(f"preset file: {path}")


def register(app: typer.Typer) -> None:
    """Add ``calibrate`` to the root CLI."""
    app.command("calibrate")(calibrate)
