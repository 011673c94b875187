"""``curate fasttext train``: a fastText positive/negative classifier from labeled Parquet (DCLM style)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
out = Console()

app = typer.Typer(
    name="fasttext",
    help="fastText quality classifiers: train on labeled Parquet (score with the fasttext_score stage).",
    no_args_is_help=True,
)


def train_config(**kw: Any):
    """A FastTextTrainConfig from CLI options, with pydantic errors as clean exits."""
    from pydantic import ValidationError

    from curate.preselect import FastTextTrainConfig

    try:
        return FastTextTrainConfig(**kw)
    except ValidationError as e:
        fail(str(e))


def fail(msg: str) -> None:
    console.print(f"[red]error:[/red] {escape(msg)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def print_report(report: dict) -> None:
    v = report["valid"]
    auc = "n/a" if v.get("roc_auc") is None else f"{v['roc_auc']:.4f}"
    acc = "n/a" if v.get("accuracy") is None else f"{v['accuracy']:.4f}"
    out.print(f"model: {report['model']}  sha256 {report['model_sha256'][:16]}…")
    out.print(f"train: {report['train']['docs']} docs {report['train']['class_counts']}")
    out.print(f"valid: {v['docs']} docs {v['class_counts']}  ROC-AUC {auc}  accuracy {acc}")
    out.print(f"report: {report['report_path']}")
    for w in report.get("warnings") or []:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}", highlight=False, soft_wrap=True)


@app.command("train")
def train(
    data: str = typer.Argument(..., help="Labeled Parquet file, directory or glob"),
    out_model: Path = typer.Option(..., "--out", "-o", help="Output model (.bin)"),
    text_column: str = typer.Option("text", "--text-column", help="Text column"),
    label_column: str = typer.Option("label", "--label-column", help="Label column (int, bool or string)"),
    positive: str = typer.Option("1", "--positive", help="Positive label value (scored as __label__<value>)"),
    valid_fraction: float = typer.Option(
        0.1, "--valid-fraction", help="Held-out share (of documents, or of groups)"
    ),
    group_column: str | None = typer.Option(
        None, "--group-column", help="Hold out whole groups, e.g. source"
    ),
    seed: int = typer.Option(0, "--seed", help="Split and shuffle seed"),
    newline_replacement: str = typer.Option(" ", "--newline-replacement", help="What newlines become"),
    epoch: int = typer.Option(3, "--epoch", help="Epochs"),
    lr: float = typer.Option(0.1, "--lr", help="Learning rate"),
    word_ngrams: int = typer.Option(2, "--word-ngrams", help="Word n-grams"),
    dim: int = typer.Option(100, "--dim", help="Embedding size"),
    min_count: int = typer.Option(1, "--min-count", help="Minimal word count"),
    bucket: int = typer.Option(2_000_000, "--bucket", help="Hash buckets (smaller = smaller model)"),
    report: Path | None = typer.Option(None, "--report", help="Report JSON (default <out>.report.json)"),
) -> None:
    """Train a fastText classifier and write a held-out validation report (ROC-AUC, accuracy)."""
    from curate.preselect import train_classifier
    from curate.stage import StageError

    cfg = train_config(
        epoch=epoch, lr=lr, word_ngrams=word_ngrams, dim=dim, min_count=min_count, bucket=bucket
    )
    try:
        rep = train_classifier(
            data,
            out_model,
            text_column=text_column,
            label_column=label_column,
            positive_label=positive,
            valid_fraction=valid_fraction,
            group_column=group_column,
            split_seed=seed,
            newline_replacement=newline_replacement,
            config=cfg,
            report_path=report,
        )
    except StageError as e:
        fail(str(e))
    print_report(rep)


def register(parent: typer.Typer) -> None:
    """Mount ``curate fasttext ...``."""
    parent.add_typer(app, name="fasttext")
