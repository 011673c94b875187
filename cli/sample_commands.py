"""``curate sample-data DIR``: write the bundled sample corpus (no download)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table


def _manifest_table(manifest: dict) -> Table:
    t = Table(title=f"sample corpus in {manifest['out_dir']} (seed {manifest['seed']})")
    for c in ("domain", "files", "rows", "text MB", "parquet MB", "low-quality / empty rows"):
        t.add_column(c, justify="left" if c in ("domain", "low-quality / empty rows") else "right")
    junk = ("boilerplate", "spam", "shuffled", "null", "empty", "whitespace")
    for domain, rows in manifest["rows_per_domain"].items():
        files = [f for f in manifest["files"] if f["domain"] == domain]
        kinds = manifest["kinds_per_domain"].get(domain, {})
        bad = ", ".join(f"{k}={kinds[k]}" for k in junk if kinds.get(k))
        t.add_row(
            domain,
            str(len(files)),
            str(rows),
            f"{manifest['text_bytes_per_domain'][domain] / 1e6:.2f}",
            f"{sum(f['bytes'] for f in files) / 1e6:.2f}",
            bad or "-",
        )
    t.add_row(
        "total",
        str(len(manifest["files"])),
        str(manifest["total_rows"]),
        f"{manifest['total_text_bytes'] / 1e6:.2f}",
        f"{manifest['total_bytes'] / 1e6:.2f}",
        "",
        style="bold",
    )
    return t


def _multilingual_table(manifest: dict) -> Table:
    t = Table(title=f"multilingual sample in {manifest['out_dir']} (seed {manifest['seed']})")
    kinds = sorted({k for v in manifest["kinds_per_language"].values() for k in v})
    for c in ("language", *kinds):
        t.add_column(c, justify="left" if c == "language" else "right")
    for lang, counts in manifest["kinds_per_language"].items():
        t.add_row(lang, *(str(counts.get(k, 0)) for k in kinds))
    t.add_row(f"total {manifest['total_rows']} rows, {manifest['total_text_bytes'] / 1e6:.2f} MB text",
              *([""] * len(kinds)), style="bold")
    return t


def sample_data(
    out_dir: Path = typer.Argument(..., help="Directory to write <domain>/part-NNNNN.parquet into"),
    size_mb: float = typer.Option(
        None, "--size-mb", min=0.01, help="Approximate text size in MB (uncompressed; default 20, "
        "multilingual 1)"
    ),
    seed: int = typer.Option(0, "--seed", help="Seed; same installed files + same seed => identical files"),
    multilingual: bool = typer.Option(
        False, "--multilingual", help="Write the multilingual web sample (6 languages, 3 scripts) instead"
    ),
) -> None:
    """Write a deterministic multi-domain sample corpus (stdlib docstrings, license and
    README texts of installed packages; near-duplicates and junk included), or with
    --multilingual the web sample in six languages that pipelines/fineweb2.yaml reads."""
    from curate.sample_data import write_sample_corpus
    from curate.sample_multilingual import write_multilingual_corpus

    try:
        if multilingual:
            manifest = write_multilingual_corpus(out_dir, target_mb=size_mb or 1.0, seed=seed)
        else:
            manifest = write_sample_corpus(out_dir, target_mb=size_mb or 20.0, seed=seed)
    except (OSError, RuntimeError, ValueError) as e:
        Console(stderr=True).print(f"[red]sample-data failed: {e}[/red]")
        raise typer.Exit(1) from None
    console = Console()
    if multilingual:
        console.print(_multilingual_table(manifest))
        console.print(f"manifest: {Path(manifest['out_dir']) / 'manifest.json'}")
        return
    console.print(_manifest_table(manifest))
    console.print(f"manifest: {Path(manifest['out_dir']) / 'manifest.json'}")


def register(app: typer.Typer) -> None:
    """Add ``sample-data`` to the root CLI."""
    app.command("sample-data")(sample_data)
