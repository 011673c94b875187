"""`quality_signals`: the Gopher, C4 and FineWeb heuristic signals as numeric columns.

Score, then select: this stage only adds columns (``qs_*``, defined in
:mod:`curate.text.heuristics.signals` and the README); ``heuristic_filter`` selects on them.
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field, field_validator

from curate.stage import MapResult, MapStage, ReportSection, StageParams
from curate.text.heuristics.languages import fallback_counts
from curate.text.heuristics.signals import FAMILIES, SIGNALS, compute_signals
from curate.text.heuristics.stopwords import StopwordTables, shipped_lists

if TYPE_CHECKING:  # pragma: no cover
    from curate.jobdata import JobData

STOPWORDS_COLUMN = "qs_stopwords"
FALLBACK_COLUMN = "qs_language_fallback"

Family = Literal["gopher_quality", "gopher_repetition", "c4", "fineweb"]


class QualitySignalsParams(StageParams):
    families: list[Family] = Field(
        default_factory=lambda: list(FAMILIES),
        description="Signal families to add: gopher_quality, gopher_repetition, c4, fineweb",
    )
    language_column: str = Field(
        "language", description="Column naming each document's language (e.g. from language_id); missing "
        "column or null value: the default language")
    default_language: str = Field(
        "en", description="Stop-word list and word splitter for documents whose language has no list")
    stopwords: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Extra stop-word lists, language -> words (replace a shipped list of the same language)",
    )

    @field_validator("families")
    @classmethod
    def _some(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("families must name at least one family")
        return list(dict.fromkeys(v))


class QualitySignals(MapStage):
    """Compute the Gopher, C4 and FineWeb heuristic quality signals as `qs_*` columns.

    The definitions are datatrove 0.10.1's (GopherQualityFilter, GopherRepetitionFilter,
    C4QualityFilter, FineWebQualityFilter), re-implemented in one numba pass per document;
    the README has one table with every column. The `language` column picks each document's
    word splitter (per-character for Chinese, Japanese, Thai, Lao, Khmer, Myanmar, Tibetan)
    and stop-word list (41 shipped languages); a language without a list uses
    `default_language`'s, flagged in `qs_language_fallback` and counted per language in the
    report. Also adds `qs_stopwords`, the list used. No row is rejected: select with
    `heuristic_filter`. Empty and null texts get 0 for every signal.
    """

    name = "quality_signals"
    Params = QualitySignalsParams

    def __init__(self, params: Any = None, /, **kwargs: Any) -> None:
        super().__init__(params, **kwargs)
        self._tables: StopwordTables | None = None

    def signal_names(self) -> list[str]:
        fams = set(self.params.families)
        return [s.name for s in SIGNALS.values() if s.family in fams]

    def provided_columns(self) -> set[str]:
        return set(self.signal_names()) | {STOPWORDS_COLUMN, FALLBACK_COLUMN}

    def score_columns(self) -> list[str]:
        return [c for c in ("qs_gopher_word_count", "qs_gopher_dup_line_frac", "qs_fineweb_line_punct_ratio")
                if c in self.signal_names()]

    def tables(self) -> StopwordTables:
        if self._tables is None:
            p = self.params
            lists = {**shipped_lists(), **p.stopwords}
            if p.default_language not in lists:
                from curate.stage import StageError

                raise StageError(f"quality_signals: no stop-word list for default_language "
                                 f"'{p.default_language}' (shipped: {', '.join(sorted(shipped_lists()))})")
            self._tables = StopwordTables(lists, p.default_language)
        return self._tables

    def process(self, batch: pa.Table) -> MapResult:
        p = self.params
        langs = batch.column(p.language_column) if p.language_column in batch.column_names else None
        if langs is not None and not pa.types.is_string(langs.type) and not pa.types.is_large_string(langs.type):
            langs = pc.cast(langs, pa.string())
        sb = compute_signals(batch.column(self.text_column), langs, self.tables())
        out = batch
        for name in self.signal_names():
            sig = SIGNALS[name]
            out = _set(out, name, pa.array(sb.column(name), pa.int64() if sig.integer else pa.float64()))
        out = _set(out, STOPWORDS_COLUMN, pa.array(sb.stopword_language, pa.string()))
        out = _set(out, FALLBACK_COLUMN, pa.array(sb.fallback, pa.bool_()))
        counts = fallback_counts(langs, np.asarray(sb.fallback, bool), "stopword_fallback") if langs is not None else {}
        return MapResult(out, None, counts=counts)

    # -- report and lineage ------------------------------------------------------------
    def report_sections(self, job: JobData, node_id: str) -> list[ReportSection]:
        """Documents per language, and those that fell back to the default stop-word list."""
        per_lang, fallback = language_counts(job, node_id, self.params.language_column, FALLBACK_COLUMN)
        if not per_lang:
            return []
        rows = [[lang or "(none)", n, fallback.get(lang, 0)] for lang, n in per_lang.most_common()]
        from curate.report.html import table

        data = {"documents": dict(per_lang), "stopword_fallback": dict(fallback),
                "default_language": self.params.default_language}
        body = table(["language", "documents", f"used the default ({self.params.default_language}) list"], rows)
        return [ReportSection("quality_signals", "Quality signals: languages and stop-word fallback", data, body)]

    def explain_row(self, job: JobData, node_id: str, row: dict[str, Any], rejected: bool) -> dict[str, Any]:
        if STOPWORDS_COLUMN not in row:
            return {}
        return {"quality_signals": {"stopwords": row.get(STOPWORDS_COLUMN),
                                    "language_fallback": bool(row.get(FALLBACK_COLUMN))}}


def language_counts(job: JobData, node_id: str, lang_col: str, flag_col: str) -> tuple[Counter, Counter]:
    """(documents per language, documents per language whose ``flag_col`` is true) over every
    document that passed ``node_id``."""
    import pyarrow.parquet as pq

    per_lang: Counter = Counter()
    flagged: Counter = Counter()
    for f in job.files_after(node_id):
        cols = job.columns(f)
        if flag_col not in cols:
            continue
        t = pq.read_table(f, columns=[c for c in (lang_col, flag_col) if c in cols])
        langs = t.column(lang_col).to_pylist() if lang_col in cols else [None] * t.num_rows
        for lang, flag in zip(langs, t.column(flag_col).to_pylist()):
            per_lang[lang] += 1
            if flag:
                flagged[lang] += 1
    return per_lang, flagged


def _set(t: pa.Table, name: str, col: pa.Array) -> pa.Table:
    if name in t.column_names:
        return t.set_column(t.column_names.index(name), name, col)
    return t.append_column(name, col)
