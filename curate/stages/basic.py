"""Built-in stages that prove the core: length_filter, sample, threshold_filter, union."""

from __future__ import annotations

import operator
from typing import Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, model_validator

from curate import schema
from curate.stage import MapResult, MapStage, StageError, StageParams, split_batch
from curate.text.normalize import char_counts, word_counts
from curate.util import uniform_from_ids


class LengthFilterParams(StageParams):
    min_chars: int | None = Field(None, ge=0, description="Reject documents with fewer characters")
    max_chars: int | None = Field(None, ge=1, description="Reject documents with more characters")
    min_words: int | None = Field(None, ge=0, description="Reject documents with fewer whitespace words")
    max_words: int | None = Field(None, ge=1, description="Reject documents with more whitespace words")

    @model_validator(mode="after")
    def _check(self) -> "LengthFilterParams":
        if all(v is None for v in (self.min_chars, self.max_chars, self.min_words, self.max_words)):
            raise ValueError("set at least one of min_chars, max_chars, min_words, max_words")
        if self.min_chars is not None and self.max_chars is not None and self.min_chars > self.max_chars:
            raise ValueError("min_chars must be <= max_chars")
        if self.min_words is not None and self.max_words is not None and self.min_words > self.max_words:
            raise ValueError("min_words must be <= max_words")
        return self


class LengthFilter(MapStage):
    """Keep documents whose length in characters and/or words lies within bounds.

    Rejects carry reason `too_short_chars`, `too_long_chars`, `too_few_words` or
    `too_many_words` and the measured length as detail.
    """

    name = "length_filter"
    Params = LengthFilterParams
    reject_reasons = {
        "too_short_chars": "fewer characters than min_chars",
        "too_long_chars": "more characters than max_chars",
        "too_few_words": "fewer whitespace words than min_words",
        "too_many_words": "more whitespace words than max_words",
    }

    def process(self, batch: pa.Table) -> MapResult:
        p = self.params
        texts = batch.column(self.text_column)
        n = batch.num_rows
        reason = np.full(n, "", dtype=object)
        detail = np.full(n, "", dtype=object)
        keep = np.ones(n, dtype=bool)
        checks = []
        if p.min_chars is not None or p.max_chars is not None:
            checks.append(("chars", char_counts(texts), p.min_chars, p.max_chars, "too_short_chars", "too_long_chars"))
        if p.min_words is not None or p.max_words is not None:
            checks.append(("words", word_counts(texts), p.min_words, p.max_words, "too_few_words", "too_many_words"))
        for unit, vals, lo, hi, r_lo, r_hi in checks:
            for bound, cmp, r in ((lo, operator.lt, r_lo), (hi, operator.gt, r_hi)):
                if bound is None:
                    continue
                bad = keep & cmp(vals, bound)
                reason[bad] = r
                detail[bad] = [f"{v} {unit}" for v in vals[bad]]
                keep &= ~bad
        return split_batch(batch, keep, pa.array(reason, pa.string()), pa.array(detail, pa.string()))


class SampleParams(StageParams):
    fraction: float = Field(description="Fraction of documents to keep, in (0, 1]", gt=0, le=1)


class Sample(MapStage):
    """Keep a seeded random fraction of documents (decided per document id).

    The decision depends only on the spec seed, the node id and the document id, so it
    is the same whatever the batching or executor. Rejects: `not_sampled`.
    """

    name = "sample"
    Params = SampleParams
    reject_reasons = {"not_sampled": "not in the seeded random fraction"}

    def process(self, batch: pa.Table) -> MapResult:
        u = uniform_from_ids(batch.column(schema.ID), self.seed)
        return split_batch(batch, u < self.params.fraction, "not_sampled")


_OPS = {
    ">": pc.greater,
    ">=": pc.greater_equal,
    "<": pc.less,
    "<=": pc.less_equal,
    "==": pc.equal,
    "!=": pc.not_equal,
}


class ThresholdFilterParams(StageParams):
    column: str = Field(description="Numeric (or string, for == / != / in / not_in) column to compare")
    op: Literal[">", ">=", "<", "<=", "==", "!=", "in", "not_in"] = Field(
        ">=", description="Comparison: keep rows where `column OP value`; `in` / `not_in` test membership in a list"
    )
    value: float | int | str | list[float | int | str] = Field(
        description="Value to compare against (a list for `in` / `not_in`)"
    )
    keep_null: bool = Field(False, description="Keep rows whose column is null (else reject as `null_value`)")
    reason: str = Field(
        "threshold", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
        description="Reject reason written for rows that fail the comparison (e.g. `low_language_score`)",
    )

    @model_validator(mode="after")
    def _value_shape(self) -> "ThresholdFilterParams":
        is_list = isinstance(self.value, list)
        if self.op in ("in", "not_in") and not is_list:
            raise ValueError(f"op '{self.op}' needs a list value, e.g. value: [en, de]")
        if self.op not in ("in", "not_in") and is_list:
            raise ValueError(f"op '{self.op}' compares with one value; use op: in / not_in for a list")
        if is_list and not self.value:
            raise ValueError(f"op '{self.op}' needs a non-empty list")
        if self.reason == "null_value":
            raise ValueError("reason 'null_value' is reserved for null values")
        return self


class ThresholdFilter(MapStage):
    """Keep rows where a column satisfies a comparison (e.g. `quality >= 0.5`, or
    `language in [en, de]`).

    Rejects: `threshold` (or the `reason` you set; detail: the value), or `null_value` for nulls.
    """

    name = "threshold_filter"
    Params = ThresholdFilterParams
    reject_reasons = {"threshold": "the value fails the comparison (the `reason` parameter renames it)",
                      "null_value": "the value is null"}

    def reasons(self) -> dict[str, str]:
        p = self.params
        return {p.reason: f"{p.column} {p.op} {p.value!r} does not hold", "null_value": "the value is null"}

    def required_columns(self) -> set[str]:
        return {self.params.column}

    def score_columns(self) -> list[str]:
        return [self.params.column]

    def report_thresholds(self, fit_stats: dict[str, Any] | None) -> dict[str, list[tuple[str, float]]]:
        """The comparison itself, when its value is a number."""
        p = self.params
        if not isinstance(p.value, (int, float)):
            return {}
        return {p.column: [(f"{p.column} {p.op} {p.value}", float(p.value))]}

    def process(self, batch: pa.Table) -> MapResult:
        p = self.params
        if p.column not in batch.column_names:
            raise StageError(f"threshold_filter '{self.node_id}': column '{p.column}' is missing")
        col = batch.column(p.column)
        try:
            if p.op in ("in", "not_in"):
                res = pc.is_in(col, value_set=pa.array(p.value).cast(col.type))
                res = pc.invert(res) if p.op == "not_in" else res
            else:
                res = _OPS[p.op](col, pa.scalar(p.value))
        except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise StageError(
                f"threshold_filter '{self.node_id}': cannot compare column '{p.column}' of type {col.type} "
                f"with {p.value!r} ({e})"
            ) from None
        isnull = pc.is_null(col)
        keep = pc.if_else(isnull, p.keep_null, res)
        reason = pc.if_else(isnull, "null_value", p.reason)
        detail = pc.cast(col, pa.string())
        return split_batch(batch, keep, reason, pc.fill_null(detail, ""))


class UnionParams(StageParams):
    pass


class Union(MapStage):
    """Join several branches into one stream (rows pass through unchanged).

    Columns missing from some branch are filled with nulls.
    """

    name = "union"
    Params = UnionParams
    joins_inputs = True

    def process(self, batch: pa.Table) -> MapResult:
        return MapResult(batch, None)
