"""fastText model files: fetching (local or fsspec URL), integrity checks, loading, scoring.

fastText's own loader accepts many broken files silently (a truncated ``.bin`` loads and
then predicts garbage), and can crash the process on others. :func:`check_model_file`
therefore parses the binary layout first (header, dictionary, matrix sizes) and compares
the expected size with the real one, so a bad file fails with a message naming it.

Scoring semantics (:func:`label_probability`): fastText's ``predict`` returns, per label,
``exp(log(p + 1e-5))`` — i.e. ``p + 1e-5`` — so the two label scores of a binary model sum
to ``1 + 2e-5``. We always predict with ``k=-1`` (every label) and pick the wanted label by
name, so the value equals ``model.predict(lines, k=-1)`` exactly (float32, widened to
float64 without rounding).
"""

from __future__ import annotations

import mmap
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xxhash

from curate.stage import StageError
from curate.util import file_digest

FASTTEXT_MAGIC = 793712314
FASTTEXT_MAX_VERSION = 12
_ARGS = struct.Struct(
    "<12id"
)  # dim ws epoch minCount neg wordNgrams loss model bucket minn maxn lrUpdateRate t
_MODEL_NAMES = {1: "cbow", 2: "skipgram", 3: "supervised"}


def default_cache_dir() -> Path:
    """Where remote models are cached: ``$CURATE_CACHE_DIR/models`` or ``~/.cache/curate/models``."""
    base = os.environ.get("CURATE_CACHE_DIR")
    return Path(base) / "models" if base else Path.home() / ".cache" / "curate" / "models"


def is_remote(path: str) -> bool:
    """True for fsspec URLs other than ``file://`` (``s3://``, ``gs://``, ``memory://``...)."""
    return "://" in path and not path.startswith("file://")


def resolve_model_path(path: str, cache_dir: str | Path | None = None) -> Path:
    """A local path for ``path``; remote URLs are downloaded once into ``cache_dir``.

    The cache name is derived from the URL; an existing cached copy is reused when its size
    equals the remote size (or the remote size cannot be read). Downloads go through a
    temporary file and a rename, so concurrent workers never read a partial file.
    """
    path = path.removeprefix("file://")
    if not is_remote(path):
        p = Path(path).expanduser()
        if not p.is_file():
            raise StageError(f"fastText model file not found: {path}")
        return p
    import fsspec

    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    name = path.rstrip("/").rsplit("/", 1)[-1] or "model.bin"
    local = cache / f"{xxhash.xxh3_64_hexdigest(path.encode())}-{name}"
    try:
        fs, fpath = fsspec.core.url_to_fs(path)
        if not fs.exists(fpath):
            raise StageError(f"fastText model file not found: {path}")
        try:
            remote_size = int(fs.size(fpath))
        except Exception:  # noqa: BLE001 - size is only a cache check
            remote_size = -1
        if local.is_file() and (remote_size < 0 or local.stat().st_size == remote_size):
            return local
        tmp = local.with_name(local.name + f".{os.getpid()}.part")
        with fs.open(fpath, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 22):
                dst.write(chunk)
        os.replace(tmp, local)
    except StageError:
        raise
    except Exception as e:
        raise StageError(f"cannot fetch fastText model {path}: {type(e).__name__}: {e}") from e
    return local


@dataclass(frozen=True)
class ModelInfo:
    """What :func:`check_model_file` learned from the file's header."""

    version: int
    model: str
    dim: int
    bucket: int
    word_ngrams: int
    nwords: int
    nlabels: int
    quantized: bool
    labels: tuple[str, ...] = ()


def check_model_file(path: str | Path) -> ModelInfo:
    """Validate a fastText ``.bin``/``.ftz`` file's layout; raise StageError naming the problem."""
    path = Path(path)
    size = path.stat().st_size
    bad = f"corrupt fastText model {path}"
    if size < 8 + _ARGS.size + 28:
        raise StageError(f"{bad}: file too small ({size} bytes)")
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        magic, version = struct.unpack_from("<ii", mm, 0)
        if magic != FASTTEXT_MAGIC:
            raise StageError(f"{bad}: not a fastText model (bad magic number)")
        if not 11 <= version <= FASTTEXT_MAX_VERSION:
            raise StageError(f"{bad}: unsupported fastText format version {version}")
        a = _ARGS.unpack_from(mm, 8)
        dim, word_ngrams, model, bucket = a[0], a[5], a[7], a[8]
        if not (0 < dim <= 100_000 and bucket >= 0 and model in _MODEL_NAMES):
            raise StageError(f"{bad}: implausible header (dim={dim}, bucket={bucket}, model={model})")
        pos = 8 + _ARGS.size
        nentries, nwords, nlabels = struct.unpack_from("<iii", mm, pos)
        _ntokens, prune_size = struct.unpack_from("<qq", mm, pos + 12)
        pos += 28
        if nentries < 0 or nwords < 0 or nlabels < 0 or nentries != nwords + nlabels:
            raise StageError(f"{bad}: inconsistent dictionary header")
        labels: list[str] = []
        for _ in range(nentries):
            end = mm.find(b"\0", pos)
            if end < 0 or end + 10 > size:
                raise StageError(f"{bad}: truncated in the dictionary")
            if mm[end + 9] == 1:  # entry type: 0 word, 1 label
                labels.append(mm[pos:end].decode("utf-8", "replace"))
            pos = end + 1 + 9  # word\0, count int64, type int8
        pos += 8 * max(0, prune_size)
        if pos + 1 > size:
            raise StageError(f"{bad}: truncated after the dictionary")
        quant_in = mm[pos] != 0
        pos += 1
        info = ModelInfo(
            version, _MODEL_NAMES[model], dim, bucket, word_ngrams, nwords, nlabels, quant_in, tuple(labels)
        )
        if quant_in:  # product-quantized (.ftz): layout is not size-checked further
            return info
        for which in ("input", "output"):
            if pos + 16 > size:
                raise StageError(f"{bad}: truncated before the {which} matrix")
            m, n = struct.unpack_from("<qq", mm, pos)
            if m < 0 or n != dim:
                raise StageError(f"{bad}: {which} matrix has shape {m}x{n}, expected {dim} columns")
            pos += 16 + 4 * m * n
            if which == "input":
                if pos + 1 > size:
                    raise StageError(f"{bad}: truncated in the input matrix")
                if mm[pos] != 0:  # quantized output matrix
                    return info
                pos += 1
        if pos != size:
            what = "truncated" if pos > size else "has trailing bytes"
            raise StageError(f"{bad}: {what} (expected {pos} bytes, found {size})")
    return info


def load_model(path: str, cache_dir: str | Path | None = None) -> tuple[Any, Path, ModelInfo]:
    """Fetch, validate and load a supervised fastText model. Returns (model, local path, info)."""
    import fasttext.FastText as ft

    local = resolve_model_path(path, cache_dir)
    info = check_model_file(local)
    if info.model != "supervised" or info.nlabels == 0:
        raise StageError(f"fastText model {path} is not a classifier (model type {info.model!r}, no labels)")
    try:
        model = ft._FastText(model_path=str(local))  # load_model() only adds a stderr warning
    except ValueError as e:
        raise StageError(f"corrupt fastText model {path}: {e}") from e
    return model, local, info


def resolve_label(model: Any, label: str, path: str) -> str:
    """The model's spelling of ``label`` (``1`` is accepted for ``__label__1``), or a clear error."""
    labels = list(model.labels)
    if label in labels:
        return label
    if f"__label__{label}" in labels:
        return f"__label__{label}"
    raise StageError(f"label {label!r} is not in fastText model {path}; the model's labels are {labels}")


def prepare_lines(texts: Sequence[str | None], newline_replacement: str = " ") -> list[str]:
    """Texts as fastText input lines (newlines replaced, one trailing ``\\n``; None -> empty)."""
    return [(t or "").replace("\n", newline_replacement) + "\n" for t in texts]


def label_probability(model: Any, lines: list[str], label: str) -> np.ndarray:
    """Probability fastText assigns to ``label`` for each prepared line (``...\\n``-terminated).

    Equal to ``model.predict([line.rstrip("\\n") ...], k=-1)`` picked by label name.
    """
    if not lines:
        return np.zeros(0, dtype=np.float64)
    all_labels, all_probs = model.f.multilinePredict(lines, -1, 0.0, "strict")
    out = np.empty(len(lines), dtype=np.float64)
    for i, (labs, probs) in enumerate(zip(all_labels, all_probs)):
        out[i] = probs[0] if labs[0] == label else probs[labs.index(label)]
    return out


def model_digest(path: str | Path) -> str:
    """sha256 of a model file."""
    return file_digest(path, "sha256")
