"""Train a fastText quality classifier on labeled Parquet, with a held-out validation report.

Used by ``curate preselect train`` (PreSelect labels) and ``curate fasttext train`` (any
labeled Parquet, DCLM-style positive/negative classifier).

Training lines are ``__label__<label> <text with newlines replaced>`` exactly as PreSelect
writes them (no other normalization). Defaults are the paper's: ``epoch=3, lr=0.1,
wordNgrams=2``, everything else fastText's supervised default (``dim=100, minCount=1,
bucket=2_000_000``). For reproducible builds we train with ``thread=1, seed=0`` and
shuffle the lines with the split seed (the reference writes all positives, then all
negatives, and relies on multi-threaded training to mix them).

The validation split holds out a seeded hash fraction of documents — or of whole groups
when ``group_column`` is given (e.g. ``source``), which measures generalization to unseen
sources. When it holds fewer than 20 documents of a class, a stratified split replaces it,
or the report warns why none can (:mod:`curate.preselect.split`). The report has ROC-AUC,
accuracy and class balance.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pydantic import BaseModel, ConfigDict, Field

from curate import schema
from curate.parquet_io import write_json_atomic
from curate.preselect.ftmodel import label_probability, model_digest, prepare_lines
from curate.preselect.metrics import accuracy, roc_auc
from curate.preselect.split import ensure_held_out_classes, split_mask
from curate.stage import StageError


class FastTextTrainConfig(BaseModel):
    """fastText supervised hyperparameters (PreSelect defaults)."""

    model_config = ConfigDict(extra="forbid")

    epoch: int = Field(3, ge=1, description="Training epochs (PreSelect: 3)")
    lr: float = Field(0.1, gt=0, description="Learning rate (PreSelect: 0.1)")
    word_ngrams: int = Field(2, ge=1, description="Word n-gram length (PreSelect: 2)")
    dim: int = Field(100, ge=1, description="Embedding size (fastText default 100)")
    min_count: int = Field(1, ge=1, description="Minimal word count (fastText default 1)")
    bucket: int = Field(
        2_000_000, ge=0, description="Hash buckets for word n-grams (fastText default 2,000,000)"
    )
    minn: int = Field(0, ge=0, description="Min char n-gram length (0: none, the supervised default)")
    maxn: int = Field(0, ge=0, description="Max char n-gram length (0: none)")
    loss: Literal["softmax", "ns", "hs", "ova"] = Field("softmax", description="Loss function")
    thread: int = Field(1, ge=1, description="Training threads (1 = reproducible)")
    seed: int = Field(0, description="fastText's own random seed")


def _label_strings(col: pa.ChunkedArray | pa.Array, name: str) -> list[str]:
    if col.null_count:
        raise StageError(f"label column {name!r} has {col.null_count} null labels")
    t = col.type
    if pa.types.is_boolean(t):
        vals = ["1" if v else "0" for v in col.to_pylist()]
    elif pa.types.is_integer(t):
        vals = [str(v) for v in col.to_pylist()]
    elif pa.types.is_floating(t):
        raw = col.to_pylist()
        if any(v != int(v) for v in raw):
            raise StageError(f"label column {name!r} has non-integer float labels")
        vals = [str(int(v)) for v in raw]
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        vals = [str(v) for v in col.to_pylist()]
    else:
        raise StageError(f"label column {name!r} has unsupported type {t}")
    return [v if v.startswith("__label__") else f"__label__{v}" for v in vals]


def train_supervised_isolated(kwargs: dict[str, Any], output: Path, workdir: Path) -> None:
    """Run ``fasttext.train_supervised(**kwargs)`` in a child process and save the model to ``output``.

    Why a child process: the installed fastText build initializes only ``thread/10`` of the
    input matrix (per-thread blocks of a tenth each) and leaves the rest as uninitialized
    heap memory, which made training nondeterministic and randomly fail with "Encountered
    NaN" even at tiny learning rates. The child runs with ``MALLOC_PERTURB_=255``, so
    freshly allocated memory is zero-filled: those rows deterministically start at zero
    (the initialized block keeps fastText's seeded uniform init). Same data + config ->
    byte-identical model.
    """
    spec = workdir / "train_args.json"
    spec.write_text(json.dumps({"output": str(output), "kwargs": kwargs}))
    env = {**os.environ, "MALLOC_PERTURB_": "255"}
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("_ft_train.py")), str(spec)],
        env=env,
        capture_output=True,
        check=False,
        text=True,
    )
    if proc.returncode != 0:
        msg = (proc.stderr.strip().splitlines() or [f"exit code {proc.returncode}"])[-1]
        hint = f" (try a lower lr, now {kwargs.get('lr')})" if "NaN" in msg else ""
        raise StageError(f"fastText training failed: {msg}{hint}")


def train_classifier(
    data: pa.Table | str | Path,
    out_model: str | Path,
    *,
    text_column: str = schema.TEXT,
    label_column: str = "label",
    positive_label: str = "1",
    valid_fraction: float = 0.1,
    group_column: str | None = None,
    split_seed: int = 0,
    newline_replacement: str = " ",
    config: FastTextTrainConfig | None = None,
    report_path: str | Path | None = None,
    extra_report: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Train fastText on labeled rows; write the model and a validation report JSON.

    Returns the report (also written to ``report_path``, default ``<model>.report.json``).
    """
    import fasttext

    cfg = config or FastTextTrainConfig()
    if not 0 <= valid_fraction < 1:
        raise StageError(f"valid_fraction must be in [0, 1), got {valid_fraction}")
    table = data if isinstance(data, pa.Table) else _read(data)
    for c in (text_column, label_column) + ((group_column,) if group_column else ()):
        if c not in table.column_names:
            raise StageError(f"column {c!r} not found in the training data (columns: {table.column_names})")
    labels = _label_strings(table.column(label_column), label_column)
    classes = sorted(set(labels))
    pos = positive_label if positive_label.startswith("__label__") else f"__label__{positive_label}"
    if len(classes) < 2:
        raise StageError(f"training data has a single class {classes}; need positives and negatives")
    if pos not in classes:
        raise StageError(
            f"positive label {pos!r} does not occur in column {label_column!r} (classes: {classes})"
        )
    n = table.num_rows
    if group_column:
        keys = pc.cast(table.column(group_column), pa.string())
    elif schema.ID in table.column_names:
        keys = pc.cast(table.column(schema.ID), pa.string())
    else:
        keys = pa.array([str(i) for i in range(n)])
    valid = split_mask(keys, valid_fraction, split_seed) if valid_fraction > 0 else np.zeros(n, bool)
    if valid.all():
        raise StageError("the validation split holds every row; lower valid_fraction or use more groups")
    train_classes = {labels[i] for i in np.flatnonzero(~valid)}
    if pos not in train_classes or len(train_classes) < 2:
        raise StageError(
            f"the training split has classes {sorted(train_classes)}: it needs the positive label {pos!r} and "
            "another class; change split_seed / valid_fraction or use more groups"
        )
    y = np.array([lab == pos for lab in labels], dtype=np.int64)
    valid, held_out_check, warnings = ensure_held_out_classes(
        keys, y, valid, split_seed, positive_label=pos, by_group=group_column is not None)
    texts = table.column(text_column).to_pylist()
    lines = prepare_lines(texts, newline_replacement)
    train_idx = np.flatnonzero(~valid)
    rng = np.random.default_rng(split_seed)
    train_idx = train_idx[rng.permutation(len(train_idx))]
    out_model = Path(out_model)
    out_model.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="curate-ft-") as td:
        train_file = os.path.join(td, "train.txt")
        with open(train_file, "w", encoding="utf-8") as fh:
            fh.writelines(f"{labels[i]} {lines[i]}" for i in train_idx)
        kwargs = {
            "input": train_file,
            "epoch": cfg.epoch,
            "lr": cfg.lr,
            "wordNgrams": cfg.word_ngrams,
            "dim": cfg.dim,
            "minCount": cfg.min_count,
            "bucket": cfg.bucket,
            "minn": cfg.minn,
            "maxn": cfg.maxn,
            "loss": cfg.loss,
            "thread": cfg.thread,
            "seed": cfg.seed,
            "verbose": 0,
        }
        tmp = out_model.with_name(out_model.name + ".tmp")
        train_supervised_isolated(kwargs, tmp, Path(td))
    os.replace(tmp, out_model)
    model = fasttext.load_model(str(out_model))
    report: dict[str, Any] = {
        "model": str(out_model),
        "model_sha256": model_digest(out_model),
        "labels": list(model.labels),
        "positive_label": pos,
        "params": cfg.model_dump(),
        "newline_replacement": newline_replacement,
        "split": {
            "by": group_column or (schema.ID if schema.ID in table.column_names else "row"),
            "valid_fraction": valid_fraction,
            "seed": split_seed,
            "held_out_check": held_out_check,
        },
        "train": _balance(y[~valid], [labels[i] for i in np.flatnonzero(~valid)]),
        "valid": _balance(y[valid], [labels[i] for i in np.flatnonzero(valid)]),
    }
    if warnings:
        report["warnings"] = list(warnings)
    if group_column:
        g = keys.to_pylist()
        report["split"]["valid_groups"] = sorted({g[i] for i in np.flatnonzero(valid)})
        report["split"]["train_groups"] = sorted({g[i] for i in np.flatnonzero(~valid)})
    if valid.any():
        vidx = np.flatnonzero(valid)
        vlines = [lines[i] for i in vidx]
        scores = label_probability(model, vlines, pos)
        top, _ = model.f.multilinePredict(vlines, 1, 0.0, "strict")
        pred = np.array([t[0] == pos for t in top], dtype=np.int64)
        report["valid"]["roc_auc"] = roc_auc(y[vidx], scores)
        report["valid"]["accuracy"] = accuracy(y[vidx], pred)
        if report["valid"]["roc_auc"] is None:
            report.setdefault("warnings", []).append("validation split has a single class: ROC-AUC undefined")
    else:
        report["valid"].update(roc_auc=None, accuracy=None)
    if extra_report:
        report.update(extra_report)
    rp = Path(report_path) if report_path else out_model.with_name(out_model.name + ".report.json")
    write_json_atomic(rp, report)
    report["report_path"] = str(rp)
    return report


def _balance(y: np.ndarray, labels: list[str]) -> dict[str, Any]:
    counts: dict[str, int] = {}
    for lab in labels:
        counts[lab] = counts.get(lab, 0) + 1
    return {
        "docs": len(y),
        "class_counts": dict(sorted(counts.items())),
        "positive_share": float(y.mean()) if len(y) else None,
    }


def _read(path: str | Path) -> pa.Table:
    from curate.spec import resolve_input_files

    files = resolve_input_files(str(path))
    if not files:
        raise StageError(f"no Parquet files match {path}")
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")
