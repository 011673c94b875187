"""PreSelect step 1: per-document normalized loss (bits per character) under N models.

Built in: KenLM n-gram models (ARPA or binary, through the ``kenlm`` module), e.g. models
of different orders or trained on different amounts of text (``curate lm train``).
Optional: Hugging Face causal LMs through ``transformers`` (``pip install curate[hf]``),
loaded with ``local_files_only=True`` — never downloaded.

``BPC(d) = total_bits(d) / chars(d)`` where ``total_bits`` is the document's negative
log2-likelihood and ``chars`` the character count of the original text. Only the
*within-document* ranking of models matters for the labels, so the normalization is for
readability and cross-document comparisons.

KenLM documents are prepared exactly as ``curate lm train`` and the ``perplexity_score``
stage do (CCNet normalization of the whole document, which deletes newlines, then one
sentence with ``bos``/``eos``; see :mod:`curate.text.ccnet`). Empty documents are skipped (as the
reference does) and counted in the summary. HF models score each document on its own with a strided window
(``block_size``/``stride``); the reference concatenates documents into one token stream
instead, which conditions each document on its predecessor — see the README.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from curate import schema
from curate.preselect.label import LOSS_PREFIX, META_KEY
from curate.parquet_io import write_json_atomic
from curate.stage import StageError
from curate.util import file_digest

LOG2_10 = math.log2(10.0)


class LossModel(Protocol):
    """A model that gives each text its total negative log2-likelihood (bits)."""

    name: str

    def total_bits(self, texts: Sequence[str]) -> np.ndarray: ...

    def describe(self) -> dict[str, Any]: ...


class KenLMLoss:
    """Total bits of each document under a KenLM model, text prepared as the perplexity stage does.

    ``mode="ccnet_faithful"`` (default): CCNet-normalize the whole document (which deletes
    newlines) and score it as one sentence; ``per_line``: normalize and score each line.
    ``normalize=False`` skips CCNet normalization; ``sentencepiece`` tokenizes after it.
    """

    def __init__(
        self,
        name: str,
        path: str | Path,
        normalize: bool = True,
        mode: Literal["ccnet_faithful", "per_line"] = "ccnet_faithful",
        sentencepiece: str | None = None,
    ):
        from curate.lm import ModelError, load_kenlm
        from curate.text.ccnet import sentencepiece_tokenizer

        try:
            self.model = load_kenlm(path)
        except ModelError as e:
            raise StageError(f"KenLM model {name!r}: {e}") from e
        self.name, self.path, self.normalize, self.mode = name, str(path), normalize, mode
        self.sentencepiece = sentencepiece
        self._tok = sentencepiece_tokenizer(sentencepiece) if sentencepiece else None

    def total_bits(self, texts: Sequence[str]) -> np.ndarray:
        from curate.text.ccnet import lines_log10, prepare_lines

        out = np.empty(len(texts), dtype=np.float64)
        for i, t in enumerate(texts):
            log10, _ = lines_log10(self.model, prepare_lines(t, self.mode, self._tok, self.normalize))
            out[i] = -log10 * LOG2_10
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "kenlm",
            "path": self.path,
            "sha256": file_digest(self.path),
            "order": int(self.model.order),
            "normalize": self.normalize,
            "mode": self.mode,
            "sentencepiece": self.sentencepiece,
        }


class HFCausalLoss:
    """Total bits of each document under a local Hugging Face causal LM (optional extra)."""

    def __init__(self, name: str, path: str, block_size: int = 1024, stride: int = 512, device: str = "cpu"):
        try:
            import torch
            import transformers
        except ImportError as e:
            raise StageError(
                f"model {name!r} is a Hugging Face model but transformers/torch are not installed "
                "(pip install 'curate[hf]')"
            ) from e
        try:
            self.tok = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.lm = (
                transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
                .to(device)
                .eval()
            )
        except Exception as e:
            raise StageError(f"cannot load Hugging Face model {name!r} from local path {path}: {e}") from e
        self.torch, self.name, self.path = torch, name, path
        self.block_size, self.stride, self.device = block_size, stride, device

    def total_bits(self, texts: Sequence[str]) -> np.ndarray:
        torch = self.torch
        out = np.empty(len(texts), dtype=np.float64)
        for i, t in enumerate(texts):
            ids = self.tok(t, return_tensors="pt").input_ids[0].to(self.device)
            nats = 0.0
            prev_end = 1  # the first token is never predicted
            for begin in range(0, max(len(ids) - 1, 1), self.stride):
                end = min(begin + self.block_size, len(ids))
                window = ids[begin:end].unsqueeze(0)
                with torch.no_grad():
                    logits = self.lm(window).logits[0, :-1].float()
                nll = torch.nn.functional.cross_entropy(logits, window[0, 1:], reduction="none")
                first_new = max(prev_end, begin + 1) - (begin + 1)
                nats += float(nll[first_new:].sum())
                prev_end = end
                if end == len(ids):
                    break
            out[i] = nats / math.log(2.0)
        return out

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": "hf",
            "path": self.path,
            "block_size": self.block_size,
            "stride": self.stride,
        }


@dataclass(frozen=True)
class ModelSpec:
    """``name=path`` (KenLM) or ``name=hf:path`` (Hugging Face) from the command line."""

    name: str
    path: str
    kind: Literal["kenlm", "hf"] = "kenlm"

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        if "=" not in text:
            raise StageError(f"model spec {text!r} must look like NAME=PATH (or NAME=hf:PATH)")
        name, path = text.split("=", 1)
        name = name.strip()
        if not name or not all(c.isalnum() or c in "_-." for c in name):
            raise StageError(f"model name {name!r} must be non-empty and use letters, digits, '_', '-', '.'")
        if path.startswith("hf:"):
            return cls(name, path[3:], "hf")
        return cls(name, path, "kenlm")

    def load(
        self, normalize: bool = True, mode: str = "ccnet_faithful", sentencepiece: str | None = None
    ) -> LossModel:
        """Instantiate the model (KenLM options are ignored for HF models)."""
        if self.kind == "hf":
            return HFCausalLoss(self.name, self.path)
        return KenLMLoss(self.name, self.path, normalize, mode, sentencepiece)  # type: ignore[arg-type]


def corpus_files(paths: Iterable[str]) -> list[tuple[str, str]]:
    """``(file, path relative to its input root)`` for paths/dirs/globs, sorted as ingest does."""
    from curate.spec import input_root, resolve_input_files

    out: list[tuple[str, str]] = []
    for p in paths:
        root = input_root(p).rstrip("/")
        files = resolve_input_files(p)
        if not files:
            raise StageError(f"no Parquet files match {p}")
        for f in files:
            if "://" not in f and not Path(f).is_file():
                raise StageError(f"corpus file not found: {f}")
            rel = f[len(root) + 1 :] if root and f.startswith(root + "/") else Path(f).name
            out.append((f, rel))
    return out


def _open(path: str):
    if "://" in path:
        import fsspec

        return fsspec.open(path, "rb").open()
    return path


def _ids_for(input_name: str, rel: str, offset: int, n: int) -> pa.Array:
    """Ingest's id formula (curate.schema): xxh3-64 of "<input>\\0<relpath>\\0<row>"."""
    prefix = input_name.encode() + b"\x00" + rel.encode() + b"\x00"
    return pa.array(
        [xxhash.xxh3_64_hexdigest(prefix + str(offset + i).encode()) for i in range(n)], pa.string()
    )


def compute_losses(
    inputs: Sequence[str],
    models: Sequence[LossModel],
    out_path: str | Path,
    text_column: str = schema.TEXT,
    batch_size: int = 1024,
    keep_columns: Sequence[str] | None = None,
    input_name: str = "corpus",
) -> dict[str, Any]:
    """Write the loss matrix for a Parquet corpus: one row per non-empty document.

    Columns: ``id`` (the input's own, or assigned exactly as ingest does for a spec input
    named ``input_name`` over the same path, so ids match a pipeline's), ``text``, any
    ``keep_columns`` present, ``n_chars`` and ``bpc_<model>`` per model. Returns a summary
    (also stored in the Parquet metadata and next to the file as ``<out>.json``).
    """
    if len(models) < 2:
        raise StageError("PreSelect losses need at least 2 models")
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        raise StageError(f"model names must be unique, got {names}")
    described = [m.describe() for m in models]
    keep_columns = list(keep_columns or [])
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_path.with_name(out_path.name + ".tmp")
    meta = {META_KEY: json.dumps({"models": described, "unit": "bits_per_char"}).encode()}
    writer: pq.ParquetWriter | None = None
    docs = skipped = 0
    try:
        for f, rel in corpus_files(inputs):
            try:
                pf = pq.ParquetFile(_open(f))
            except Exception as e:
                raise StageError(f"{f} is not a readable Parquet file ({type(e).__name__}: {e})") from e
            if text_column not in pf.schema_arrow.names:
                raise StageError(
                    f"text column {text_column!r} not found in {f} (columns: {pf.schema_arrow.names})"
                )
            want = [c for c in [schema.ID, text_column, *keep_columns] if c in pf.schema_arrow.names]
            offset = 0
            for rb in pf.iter_batches(batch_size=batch_size, columns=want):
                t = pa.Table.from_batches([rb])
                ids = (
                    t.column(schema.ID).cast(pa.string())
                    if schema.ID in t.column_names
                    else _ids_for(input_name, rel, offset, t.num_rows)
                )
                offset += t.num_rows
                texts = t.column(text_column).to_pylist()
                ok = np.array([bool(x and x.strip()) for x in texts], dtype=bool)
                skipped += int((~ok).sum())
                if not ok.any():
                    continue
                sel = np.flatnonzero(ok)
                texts_ok = [texts[i] for i in sel]
                chars = np.array([len(x) for x in texts_ok], dtype=np.int64)
                cols: dict[str, Any] = {
                    schema.ID: ids.take(pa.array(sel)),
                    schema.TEXT: pa.array(texts_ok, pa.string()),
                }
                for c in keep_columns:
                    if c in t.column_names and c not in cols:
                        cols[c] = t.column(c).take(pa.array(sel))
                cols["n_chars"] = pa.array(chars)
                for m in models:
                    cols[LOSS_PREFIX + m.name] = pa.array(m.total_bits(texts_ok) / chars, pa.float64())
                batch = pa.table(cols)
                if writer is None:
                    writer = pq.ParquetWriter(tmp, batch.schema.with_metadata(meta), compression="zstd")
                writer.write_table(batch.replace_schema_metadata(meta))
                docs += batch.num_rows
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        raise StageError(f"no non-empty documents in {list(inputs)} ({skipped} empty skipped)")
    tmp.replace(out_path)
    summary = {"output": str(out_path), "documents": docs, "empty_skipped": skipped, "models": described}
    write_json_atomic(out_path.with_name(out_path.name + ".json"), summary)
    return summary
