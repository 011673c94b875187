"""``curate lm ...``: train and inspect KenLM-compatible models offline."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    name="lm",
    help="Train and inspect n-gram language models (KenLM ARPA) for perplexity_score.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)


@app.command("train")
def train(
    corpus: str = typer.Argument(
        ..., help="Parquet file/glob/directory, .jsonl or .txt (one document per line)"
    ),
    order: int = typer.Option(5, "--order", "-o", min=1, max=10, help="n-gram order (CCNet uses 5)"),
    out: Path = typer.Option(..., "--out", help="Output ARPA path"),
    text_column: str = typer.Option("text", "--text-column", help="Text column (Parquet) or field (jsonl)"),
    sentencepiece: Path | None = typer.Option(
        None, "--sentencepiece", help="SentencePiece model applied after normalization"
    ),
    backend: str = typer.Option(
        "auto", "--backend", help="auto (lmplz if on PATH, else numpy) | lmplz | numpy"
    ),
    discount_fallback: bool = typer.Option(
        True,
        "--discount-fallback/--no-discount-fallback",
        help="Use lmplz's fallback discounts (0.5, 1, 1.5) when the closed form fails",
    ),
    no_normalize: bool = typer.Option(
        False, "--no-normalize", help="Skip CCNet normalization (text already normalized)"
    ),
    limit: int | None = typer.Option(None, "--limit", min=1, help="Use at most this many documents"),
) -> None:
    """CCNet-normalize a corpus (as perplexity_score does) and estimate a modified Kneser-Ney LM."""
    import itertools

    from curate.lm import EstimationError, ModelError, iter_corpus, train_lm

    if backend not in ("auto", "lmplz", "numpy"):
        console.print(f"[red]--backend must be auto, lmplz or numpy (got {backend!r})[/red]")
        raise typer.Exit(2)
    try:
        docs = iter_corpus(corpus, text_column)
        if limit:
            docs = itertools.islice(docs, limit)
        info = train_lm(
            docs,
            order,
            out,
            sentencepiece=sentencepiece,
            backend=backend,  # type: ignore[arg-type]
            discount_fallback=discount_fallback,
            normalize=not no_normalize,
        )
    except (EstimationError, ModelError, FileNotFoundError, ValueError, RuntimeError) as e:
        console.print(f"[red]lm train: {e}[/red]")
        raise typer.Exit(1) from e
    typer.echo(json.dumps(info, indent=2))


@app.command("info")
def info(model: Path = typer.Argument(..., help="ARPA or kenlm binary model")) -> None:
    """Print a model's order (and n-gram counts for ARPA)."""
    from curate.lm import ModelError, arpa_orders, is_arpa, model_order

    try:
        facts: dict = {"model": str(model), "order": model_order(model)}
        if model.is_file() and is_arpa(model):
            facts["ngrams"] = arpa_orders(model)
    except ModelError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from e
    typer.echo(json.dumps(facts, indent=2))


@app.command("score")
def score(
    model: Path = typer.Argument(..., help="ARPA or kenlm binary model"),
    text: str = typer.Argument(..., help="Document text"),
    sentencepiece: Path | None = typer.Option(None, "--sentencepiece"),
    mode: str = typer.Option("ccnet_faithful", "--mode", help="ccnet_faithful | per_line"),
) -> None:
    """CCNet perplexity of one document (the value perplexity_score writes)."""
    from curate.lm import ModelError, load_kenlm
    from curate.text import ccnet

    try:
        m = load_kenlm(model)
    except ModelError as e:
        console.print(f"[red]{e}[/red]")
        raise typer.Exit(1) from e
    tok = ccnet.sentencepiece_tokenizer(str(sentencepiece)) if sentencepiece else None
    lines = ccnet.prepare_lines(text, mode, tok)  # type: ignore[arg-type]
    typer.echo(json.dumps({"normalized": lines, "perplexity": ccnet.doc_perplexity(m, text, mode, tok)}))  # type: ignore[arg-type]


dsir_app = typer.Typer(
    name="dsir",
    help="Fit DSIR targets offline for dsir_resample.",
    no_args_is_help=True,
    add_completion=False,
)


@dsir_app.command("fit")
def dsir_fit(
    target: str = typer.Argument(..., help="Target corpus: Parquet file/glob/directory, .jsonl or .txt"),
    out: Path = typer.Option(..., "--out", help="Output .npz (pass it as dsir_resample's `target`)"),
    text_column: str = typer.Option("text", "--text-column", help="Text column (Parquet) or field (jsonl)"),
    num_buckets: int = typer.Option(
        10000, "--num-buckets", min=1, help="Hash buckets (must match the stage)"
    ),
    ngrams: int = typer.Option(
        2, "--ngrams", min=1, max=5, help="Highest n-gram order (must match the stage)"
    ),
) -> None:
    """Hashed n-gram counts of a target corpus (data-selection compatible features)."""
    from curate.lm import iter_corpus
    from curate.stages.dsir_resample import fit_target_counts, save_target_counts

    if not str(out).endswith(".npz"):
        console.print("[red]--out must end in .npz[/red]")
        raise typer.Exit(2)
    try:
        fitted = fit_target_counts(iter_corpus(target, text_column), num_buckets, ngrams)
    except (FileNotFoundError, ValueError) as e:
        console.print(f"[red]dsir fit: {e}[/red]")
        raise typer.Exit(1) from e
    if fitted["docs"] == 0 or fitted["counts"].sum() == 0:
        console.print(f"[red]dsir fit: target {target!r} is empty[/red]")
        raise typer.Exit(1)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_target_counts(out, fitted, num_buckets, ngrams)
    facts = {"out": str(out), "docs": fitted["docs"], "ngrams_total": int(fitted["counts"].sum()),
             "num_buckets": num_buckets, "ngrams": ngrams}  # fmt: skip
    typer.echo(json.dumps(facts, indent=2))


def register(root: typer.Typer) -> None:
    """Mount ``curate lm`` and ``curate dsir`` on the main CLI."""
    root.add_typer(app, name="lm")
    root.add_typer(dsir_app, name="dsir")
