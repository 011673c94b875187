"""``curate preselect losses|label|train``: build a PreSelect quality scorer offline.

1. ``losses``: bits per character of every document under N models (KenLM ARPA/binary,
   or ``NAME=hf:PATH`` for a local Hugging Face causal LM when transformers is installed);
2. ``label``: predictive strength against the models' benchmark scores, balanced labels;
3. ``train``: fastText with the paper's hyperparameters and a held-out report.

Then score a corpus with the ``fasttext_score`` stage and keep the top 10% by characters
with ``select_top`` (see ``pipelines/preselect.yaml``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from cli.fasttext_commands import fail, out, print_report, train_config

app = typer.Typer(
    name="preselect",
    help="PreSelect: train a fastText quality scorer from models' losses (losses -> label -> train).",
    no_args_is_help=True,
)


def read_bench(path: Path) -> dict[str, float]:
    """``{model: score}``; ``{model: {"avg": score, ...}}`` (the reference's layout) works too."""
    try:
        raw = json.loads(Path(path).read_text())
    except FileNotFoundError:
        fail(f"benchmark scores file not found: {path}")
    except json.JSONDecodeError as e:
        fail(f"benchmark scores file {path} is not valid JSON: {e}")
    if not isinstance(raw, dict) or not raw:
        fail(f"benchmark scores file {path} must hold a JSON object {{model: score}}")
    bench: dict[str, float] = {}
    for k, v in raw.items():
        if isinstance(v, dict):
            if "avg" not in v:
                fail(f"benchmark entry for model {k!r} is an object without an 'avg' score")
            v = v["avg"]
        bench[k] = v
    return bench


@app.command("losses")
def losses(
    corpus: list[str] = typer.Argument(..., help="Parquet files, directories or globs"),
    model: list[str] = typer.Option(
        ..., "--model", "-m", help="NAME=PATH (KenLM ARPA/binary) or NAME=hf:PATH; repeat"
    ),
    out_path: Path = typer.Option(..., "--out", "-o", help="Output loss matrix (Parquet)"),
    text_column: str = typer.Option("text", "--text-column", help="Text column"),
    keep_column: list[str] = typer.Option(
        [], "--keep-column", help="Extra input columns to carry (e.g. source)"
    ),
    no_normalize: bool = typer.Option(False, "--no-normalize", help="KenLM: skip CCNet normalization"),
    mode: str = typer.Option("ccnet_faithful", "--mode", help="KenLM: ccnet_faithful | per_line"),
    sentencepiece: Path | None = typer.Option(None, "--sentencepiece", help="KenLM: SentencePiece model"),
    batch_size: int = typer.Option(1024, "--batch-size", min=1, help="Documents per batch"),
    input_name: str = typer.Option(
        "corpus", "--input-name", help="Assign ids as a pipeline would for a spec input of this name"
    ),
) -> None:
    """Per-document bits per character under each model (the loss matrix)."""
    from curate.preselect import ModelSpec, compute_losses
    from curate.preselect.losses import corpus_files
    from curate.stage import StageError

    if mode not in ("ccnet_faithful", "per_line"):
        fail(f"--mode must be ccnet_faithful or per_line, got {mode!r}")
    try:
        corpus_files(corpus)  # fail on a bad corpus path before loading any model
        specs = [ModelSpec.parse(m) for m in model]
        models = [
            s.load(not no_normalize, mode, str(sentencepiece) if sentencepiece else None) for s in specs
        ]
        summary = compute_losses(corpus, models, out_path, text_column, batch_size, keep_column, input_name)
    except StageError as e:
        fail(str(e))
    out.print(
        f"loss matrix: {summary['output']}  {summary['documents']} documents x {len(models)} models "
        f"({summary['empty_skipped']} empty skipped)"
    )


@app.command("label")
def label(
    losses_path: Path = typer.Argument(..., help="Loss matrix from `curate preselect losses`"),
    bench: Path = typer.Option(
        ..., "--bench", "-b", help='JSON {"model": benchmark score} (higher = better)'
    ),
    out_path: Path = typer.Option(..., "--out", "-o", help="Output labeled Parquet"),
    negatives: str = typer.Option(
        "lowest", "--negatives", help="lowest (lowest scores first) | hard (best imperfect first)"
    ),
    max_positives: int | None = typer.Option(
        None, "--max-positives", min=1, help="Cap positives (seeded sample)"
    ),
    seed: int = typer.Option(0, "--seed", help="Tie-break / sampling seed"),
) -> None:
    """Predictive strength per document, then balanced positives (PS = 1) and negatives."""
    import pyarrow.parquet as pq

    from curate.parquet_io import write_json_atomic, write_parquet_atomic
    from curate.preselect import label_documents
    from curate.stage import StageError

    if negatives not in ("lowest", "hard"):
        fail(f"--negatives must be lowest or hard, got {negatives!r}")
    scores = read_bench(bench)
    if not losses_path.is_file():
        fail(f"loss matrix not found: {losses_path}")
    try:
        res = label_documents(pq.read_table(losses_path), scores, negatives, seed, max_positives)  # type: ignore[arg-type]
    except StageError as e:
        fail(str(e))
    write_parquet_atomic(out_path, res.table)
    write_json_atomic(out_path.with_name(out_path.name + ".json"), res.summary)
    s = res.summary
    out.print(
        f"labels: {out_path}  {s['positives']} positives, {s['negatives_chosen']} negatives ({negatives}) "
        f"of {s['documents']} documents; score histogram {s['score_histogram']}"
    )
    for w in s["warnings"]:
        out.print(f"[yellow]warning:[/yellow] {w}")


@app.command("train")
def train(
    labels: str = typer.Argument(..., help="Labeled Parquet from `curate preselect label`"),
    out_model: Path = typer.Option(..., "--out", "-o", help="Output fastText model (.bin)"),
    valid_fraction: float = typer.Option(0.1, "--valid-fraction", help="Held-out share"),
    group_column: str | None = typer.Option(
        None, "--group-column", help="Hold out whole groups (e.g. source)"
    ),
    seed: int = typer.Option(0, "--seed", help="Split and shuffle seed"),
    epoch: int = typer.Option(3, "--epoch", help="Epochs (PreSelect: 3)"),
    lr: float = typer.Option(0.1, "--lr", help="Learning rate (PreSelect: 0.1)"),
    word_ngrams: int = typer.Option(2, "--word-ngrams", help="Word n-grams (PreSelect: 2)"),
    dim: int = typer.Option(100, "--dim", help="Embedding size (100)"),
    min_count: int = typer.Option(1, "--min-count", help="Minimal word count (1)"),
    bucket: int = typer.Option(
        2_000_000, "--bucket", help="Hash buckets (2,000,000; smaller = smaller model)"
    ),
    report: Path | None = typer.Option(None, "--report", help="Report JSON (default <out>.report.json)"),
) -> None:
    """Train the PreSelect fastText scorer (__label__1 = high predictive strength)."""
    from curate.preselect import train_classifier
    from curate.stage import StageError

    cfg = train_config(
        epoch=epoch, lr=lr, word_ngrams=word_ngrams, dim=dim, min_count=min_count, bucket=bucket
    )
    try:
        rep = train_classifier(
            labels,
            out_model,
            label_column="label",
            positive_label="1",
            valid_fraction=valid_fraction,
            group_column=group_column,
            split_seed=seed,
            config=cfg,
            report_path=report,
        )
    except StageError as e:
        fail(str(e))
    print_report(rep)


def register(parent: typer.Typer) -> None:
    """Mount ``curate preselect ...``."""
    parent.add_typer(app, name="preselect")
