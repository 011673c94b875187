"""fasttext_score: score documents with any supervised fastText model (PreSelect, DCLM...)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate import schema
from curate.preselect.ftmodel import (
    check_model_file,
    label_probability,
    load_model,
    model_digest,
    resolve_label,
    resolve_model_path,
)
from curate.params import Annotated, ReadPath, WritePath
from curate.stage import MapResult, MapStage, StageParams


class FastTextScoreParams(StageParams):
    model_path: Annotated[str, ReadPath] = Field(
        description="fastText classifier (.bin/.ftz): a local path, file:// or any fsspec URL such as "
        "s3://bucket/model.bin (downloaded once per machine into cache_dir)"
    )
    label: str = Field(
        "__label__1",
        description="Label whose probability is written (e.g. __label__1, the PreSelect positive class); "
        "the bare name ('1') is accepted too",
    )
    column: str = Field(schema.QUALITY, description="Output column for the probability (float64)")
    newline_replacement: str = Field(
        " ",
        description="What every newline becomes before prediction: ' ' matches PreSelect training, "
        "'' reproduces PreSelect-100B / datatrove scoring bit for bit",
    )
    predict_batch_size: int = Field(
        16384,
        ge=1,
        description="Lines per fastText predict call (memory bound only; results do not depend on it)",
    )
    cache_dir: Annotated[str | None, WritePath] = Field(
        None,
        description="Download cache for remote models (default $CURATE_CACHE_DIR/models or ~/.cache/curate/models)",
    )

    @field_validator("newline_replacement")
    @classmethod
    def _no_newline(cls, v: str) -> str:
        if "\n" in v:
            raise ValueError("newline_replacement must not contain a newline")
        return v


class FastTextScore(MapStage):
    """Score documents with a fastText classifier: probability of one label into a column.

    The model (local path or s3:// etc.) loads once per worker; on Ray the stage runs in an
    actor pool. Text is preprocessed as PreSelect does — newlines become
    `newline_replacement` — and predicted in batches with `k=-1`, so each score equals
    `model.predict(text, k=-1)` for the chosen label exactly (fastText reports `p + 1e-5`,
    so a binary model's two label scores sum to 1.00002). Empty (or null) text is scored as
    fastText scores the empty line — the end-of-line token alone — a per-model constant
    recorded as `empty_text_score` in the run stats. No row is rejected. The model's
    sha256 is recorded in stats.json (`run_stats`).
    """

    name = "fasttext_score"
    Params = FastTextScoreParams
    uses_model = True

    def __init__(self, params: Any = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._model: Any = None
        self._label: str = ""
        self._digest: str | None = None
        self._labels: list[str] = []
        self._empty_score: float | None = None

    def provided_columns(self) -> set[str]:
        return {self.params.column}

    def score_columns(self) -> list[str]:
        return [self.params.column]

    def setup(self) -> None:
        p = self.params
        model, local, _info = load_model(p.model_path, p.cache_dir)
        self._label = resolve_label(model, p.label, p.model_path)
        self._model = model
        self._labels = list(model.labels)
        self._digest = model_digest(local)
        self._empty_score = float(label_probability(model, ["\n"], self._label)[0])

    def score_texts(self, texts: list[str | None]) -> np.ndarray:
        """Scores for plain Python strings (the same preprocessing as `process`)."""
        self.ensure_setup()
        r = self.params.newline_replacement
        lines = [(t or "").replace("\n", r) + "\n" for t in texts]
        return label_probability(self._model, lines, self._label)

    def process(self, batch: pa.Table) -> MapResult:
        p = self.params
        texts = pc.fill_null(batch.column(self.text_column), "")
        if p.newline_replacement != "\n":
            texts = pc.replace_substring(texts, "\n", p.newline_replacement)
        lines = pc.binary_join_element_wise(texts, "", "\n").to_pylist()  # "<text>\n"
        bs = p.predict_batch_size
        if len(lines) <= bs:
            scores = label_probability(self._model, lines, self._label)
        else:
            scores = np.concatenate(
                [
                    label_probability(self._model, lines[i : i + bs], self._label)
                    for i in range(0, len(lines), bs)
                ]
            )
        col = pa.array(scores, type=pa.float64())
        if p.column in batch.column_names:
            batch = batch.set_column(batch.column_names.index(p.column), p.column, col)
        else:
            batch = batch.append_column(p.column, col)
        return MapResult(batch, None)

    def run_stats(self) -> dict[str, Any]:
        if self._digest is None:  # not set up in this process: read the file without loading the model
            try:
                local = resolve_model_path(self.params.model_path, self.params.cache_dir)
                self._digest = model_digest(local)
                self._labels = list(check_model_file(local).labels)
            except Exception as e:  # noqa: BLE001 - stats must never fail the job
                return {"model_path": self.params.model_path, "model_sha256": None, "error": str(e)}
        out: dict[str, Any] = {
            "model_path": self.params.model_path,
            "model_sha256": self._digest,
            "label": self._label or self.params.label,
            "newline_replacement": self.params.newline_replacement,
        }
        if self._labels:
            out["model_labels"] = self._labels
        if self._empty_score is not None:
            out["empty_text_score"] = self._empty_score
        return out
