"""KenLM-compatible n-gram language models: training and model-file checks.

* :func:`train_lm` -- CCNet-normalize a corpus (optionally SentencePiece it), then estimate
  an order-N modified Kneser-Ney model and write ARPA. Uses ``lmplz`` when it is on PATH
  (or ``backend="lmplz"``), else the built-in numpy estimator
  (:mod:`curate.lm.kneser_ney`), which matches lmplz's own toy models within 1e-6.
* :func:`arpa_orders` / :func:`model_order` / :func:`load_kenlm` -- read and validate
  model files with clear errors (missing, corrupt, wrong order).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from curate.lm.kneser_ney import EstimationError, NgramModel, estimate

__all__ = [
    "EstimationError", "ModelError", "NgramModel", "arpa_orders", "estimate", "iter_corpus",
    "load_kenlm", "model_order", "train_lm", "training_lines",
]  # fmt: skip


class ModelError(ValueError):
    """A language model file is missing, unreadable or not what was asked for."""


def arpa_orders(path: str | Path) -> list[int]:
    """The ``ngram N=count`` header counts of an ARPA file (index 0 = unigrams)."""
    counts: dict[int, int] = {}
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            seen_data = False
            for line in f:
                s = line.strip()
                if not seen_data:
                    if s == "\\data\\":
                        seen_data = True
                    elif s:
                        raise ModelError(f"{path}: not an ARPA file (no \\data\\ header)")
                    continue
                if s.startswith("ngram "):
                    n, c = s[6:].split("=")
                    counts[int(n)] = int(c)
                elif s.startswith("\\1-grams:"):
                    break
    except FileNotFoundError as e:
        raise ModelError(f"language model not found: {path}") from e
    except (ValueError, UnicodeDecodeError) as e:
        if isinstance(e, ModelError):
            raise
        raise ModelError(f"{path}: corrupt ARPA header ({e})") from e
    if not counts:
        raise ModelError(f"{path}: not an ARPA file (no ngram counts in the header)")
    return [counts.get(i, 0) for i in range(1, max(counts) + 1)]


def is_arpa(path: str | Path) -> bool:
    """Whether the file looks like a text ARPA file (else: kenlm binary)."""
    with open(path, "rb") as f:
        head = f.read(64).lstrip()
    return head.startswith(b"\\data\\")


def load_kenlm(path: str | Path, expected_order: int | None = None) -> Any:
    """Load an ARPA or kenlm binary model with clear errors; check its order if asked."""
    import kenlm

    p = Path(path)
    if not p.is_file():
        raise ModelError(f"language model not found: {path}")
    if is_arpa(p):
        orders = arpa_orders(p)
        if any(c <= 0 for c in orders):
            raise ModelError(f"{path}: ARPA header has an empty order ({orders})")
    try:
        model = kenlm.Model(str(p))
    except Exception as e:  # noqa: BLE001 - kenlm raises OSError/RuntimeError variants
        raise ModelError(f"cannot load language model {path}: {type(e).__name__}: {e}") from e
    if expected_order is not None and model.order != expected_order:
        raise ModelError(f"{path}: model order is {model.order}, expected {expected_order}")
    return model


def model_order(path: str | Path) -> int:
    """Order of an ARPA or binary model file."""
    p = Path(path)
    if p.is_file() and is_arpa(p):
        return len(arpa_orders(p))
    return int(load_kenlm(p).order)


# ----------------------------------------------------------------------------------------
# Corpus reading and training
# ----------------------------------------------------------------------------------------


def iter_corpus(corpus: str | Path, text_column: str = "text", batch_size: int = 8192) -> Iterator[str]:
    """Documents of a corpus: Parquet file/glob/directory (``text_column``), ``.jsonl``
    (``text_column`` field) or plain text (one document per line)."""
    pattern = str(Path(corpus).expanduser())
    if Path(pattern).is_dir():
        files = sorted(glob.glob(os.path.join(pattern, "**", "*.parquet"), recursive=True))
    else:
        files = sorted(glob.glob(pattern, recursive=True))
    if not files:
        raise FileNotFoundError(f"corpus {corpus!r} matches no files")
    for f in files:
        if f.endswith(".parquet"):
            import pyarrow.parquet as pq

            pf = pq.ParquetFile(f)
            if text_column not in pf.schema_arrow.names:
                raise ValueError(f"{f}: no text column {text_column!r} (columns: {pf.schema_arrow.names})")
            for rb in pf.iter_batches(batch_size=batch_size, columns=[text_column]):
                for t in rb.column(0).to_pylist():
                    if t:
                        yield t
        elif f.endswith((".jsonl", ".json")):
            with open(f, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        t = json.loads(line).get(text_column)
                        if t:
                            yield t
        else:
            with open(f, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        yield line.rstrip("\n")


def training_lines(
    docs: Iterable[str], tokenize: Callable[[str], str] | None = None, normalize: bool = True
) -> Iterator[str]:
    """One training sentence per document, prepared exactly as the scorer prepares text
    (CCNet normalization of the whole document, then optional SentencePiece)."""
    from curate.text.ccnet import normalize as ccnet_normalize

    for d in docs:
        t = ccnet_normalize(d) if normalize else d
        if tokenize is not None:
            t = tokenize(t)
        for line in t.split("\n"):
            if line.strip():
                yield line


def lmplz_path() -> str | None:
    """``lmplz`` on PATH, if any."""
    return shutil.which("lmplz")


def train_lm(
    docs: Iterable[str],
    order: int,
    out: str | Path,
    *,
    sentencepiece: str | Path | None = None,
    backend: Literal["auto", "lmplz", "numpy"] = "auto",
    discount_fallback: bool = True,
    normalize: bool = True,
    memory: str = "20%",
) -> dict[str, Any]:
    """Train an order-``order`` modified Kneser-Ney LM on ``docs`` and write ARPA to ``out``.

    Returns facts about the run (backend, sentences, tokens, seconds, n-gram counts).
    """
    from curate.text.ccnet import sentencepiece_tokenizer

    t0 = time.time()
    tok = sentencepiece_tokenizer(str(sentencepiece)) if sentencepiece else None
    lines = list(training_lines(docs, tok, normalize))
    if not lines:
        raise EstimationError("the training corpus is empty (no non-empty document after normalization)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lmplz = lmplz_path()
    use = backend if backend != "auto" else ("lmplz" if lmplz else "numpy")
    if use == "lmplz":
        if not lmplz:
            raise FileNotFoundError("backend=lmplz but `lmplz` is not on PATH")
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [lmplz, "-o", str(order), "-S", memory, "-T", tmp]
            if discount_fallback:
                cmd.append("--discount_fallback")
            text = "\n".join(lines) + "\n"
            with open(out, "wb") as fo:
                r = subprocess.run(cmd, input=text.encode("utf-8"), stdout=fo, stderr=subprocess.PIPE)
            if r.returncode != 0:
                raise EstimationError(
                    f"lmplz failed ({r.returncode}): {r.stderr.decode(errors='replace')[-2000:]}"
                )
    else:
        estimate(lines, order, discount_fallback=discount_fallback).write_arpa(str(out))
    orders = arpa_orders(out)
    if len(orders) != order or any(c <= 0 for c in orders):
        raise ModelError(f"{out}: ARPA has orders {orders}, expected {order} non-empty orders")
    return {
        "backend": use,
        "order": order,
        "sentences": len(lines),
        "tokens": sum(len(s.split()) for s in lines),
        "ngrams": orders,
        "seconds": round(time.time() - t0, 3),
        "out": str(out),
        "sentencepiece": str(sentencepiece) if sentencepiece else None,
    }
