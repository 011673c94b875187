"""Per-language heuristic thresholds by quantile matching (``curate calibrate``).

FineWeb2 (Penedo et al., 2025, "FineWeb2: One Pipeline to Scale Them All: Adapting
Pre-Training Data Processing to Every Language") does not reuse English filter thresholds
for other languages: it derives each language's thresholds from the distribution of each
filter's metric on reference text of that language. This module implements the
removal-rate matching variant of that idea, exactly:

1. Compute the ``quality_signals`` of every reference document (Parquet with ``text`` and
   ``language``), each with its own language's word splitter and stop words.
2. For each rule ``r`` (signal ``s``, English threshold ``t_en``) compute the fraction ``q_r``
   of **English** reference documents the rule removes: ``q_r = mean(s_en > t_en)`` for a
   ``max`` rule, ``mean(s_en < t_en)`` for a ``min`` rule.
3. For every language ``L`` with at least ``min_docs`` reference documents, its threshold is
   the quantile of its own reference values at the same removal rate:
   ``t_L = quantile(s_L, 1 - q_r)`` for a ``max`` rule and ``t_L = quantile(s_L, q_r)`` for
   a ``min`` rule, with ``numpy.quantile(..., method=quantile_method)`` (default ``"linear"``,
   Hyndman & Fan's type 7, numpy's default). So the rule removes about the same share of
   L's reference text as of English reference text (ties and interpolation make it
   approximate).
4. Rules not in ``rules`` keep the English threshold (FineWeb2 keeps e.g. the document
   length limits); languages with fewer than ``min_docs`` documents are left out and use
   the ``default`` rule set in ``heuristic_filter``.

The result is a preset file (JSON, ``format: curate.heuristic_thresholds/1``) whose
``per_language`` entries ``heuristic_filter`` reads through ``preset_file``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.stages.heuristic_filter_params import PRESET_FILE_FORMAT, resolve_key
from curate.text.heuristics.presets import PRESETS, Rule
from curate.text.heuristics.signals import compute_signals
from curate.text.heuristics.stopwords import StopwordTables

CITATION = ("Penedo et al., 2025. FineWeb2: One Pipeline to Scale Them All: Adapting Pre-Training Data "
            "Processing to Every Language")
# the thresholds FineWeb2 adapts per language (its configs/*.yml keys), in curate's names
FINEWEB2_RULES = (
    "gopher_repetition:dup_line_frac",
    "gopher_repetition:top_2_gram", "gopher_repetition:top_3_gram", "gopher_repetition:top_4_gram",
    "gopher_repetition:dup_5_gram", "gopher_repetition:dup_6_gram", "gopher_repetition:dup_7_gram",
    "gopher_repetition:dup_8_gram", "gopher_repetition:dup_9_gram", "gopher_repetition:dup_10_gram",
    "gopher_quality:min_avg_word_length", "gopher_quality:max_avg_word_length",
    "gopher_quality:min_alpha_words_ratio",
    "fineweb:line_punct_ratio", "fineweb:list_ratio",
)


@dataclass
class Calibration:
    """What ``calibrate`` found: thresholds per language and how they were derived."""

    english: str
    quantile_method: str
    removal: dict[str, float]  # rule key -> fraction of English reference docs it removes
    english_thresholds: dict[str, float]
    per_language: dict[str, dict[str, float]]
    documents: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)  # languages with too few documents

    def preset_file(self) -> dict[str, Any]:
        return {
            "format": PRESET_FILE_FORMAT,
            "method": "removal-rate quantile matching (curate.calibrate)",
            "citation": CITATION,
            "english": self.english,
            "quantile_method": self.quantile_method,
            "removal_fraction": self.removal,
            "english_thresholds": self.english_thresholds,
            "reference_documents": self.documents,
            "skipped_languages": self.skipped,
            "per_language": self.per_language,
        }

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(self.preset_file(), indent=2, sort_keys=True) + "\n")
        return p


def selected_rules(rules: list[str] | None, english_overrides: dict[str, float] | None = None) -> dict[str, Rule]:
    """Rule key -> rule (with English threshold overrides applied) for the keys to calibrate."""
    keys = list(rules) if rules else list(FINEWEB2_RULES)
    presets = list(PRESETS)
    out: dict[str, Rule] = {}
    for k in keys:
        preset, name = resolve_key(presets, k, "rules")
        r = next(x for x in PRESETS[preset] if x.name == name)
        out[f"{preset}:{name}"] = r
    for k, v in (english_overrides or {}).items():
        preset, name = resolve_key(presets, k, "english thresholds")
        key = f"{preset}:{name}"
        if key in out:
            out[key] = Rule(out[key].name, out[key].signal, out[key].direction, float(v))
    return out


def quantile_threshold(values: np.ndarray, rule: Rule, q: float, method: str = "linear") -> float:
    """The threshold that removes about fraction ``q`` of ``values`` under ``rule``'s direction."""
    level = 1.0 - q if rule.direction == "max" else q
    return float(np.quantile(values, level, method=method))


def removal_fraction(values: np.ndarray, rule: Rule) -> float:
    bad = values > rule.threshold if rule.direction == "max" else values < rule.threshold
    return float(np.mean(bad)) if len(values) else 0.0


def calibrate(
    reference: pa.Table,
    *,
    rules: list[str] | None = None,
    english: str = "en",
    english_thresholds: dict[str, float] | None = None,
    min_docs: int = 20,
    quantile_method: str = "linear",
    stopwords: StopwordTables | None = None,
    text_column: str = "text",
    language_column: str = "language",
    batch_rows: int = 4096,
) -> Calibration:
    """Per-language thresholds from reference text (see the module docstring for the method)."""
    for c in (text_column, language_column):
        if c not in reference.column_names:
            raise ValueError(f"calibrate: the reference has no '{c}' column")
    chosen = selected_rules(rules, english_thresholds)
    tables = stopwords or StopwordTables.shipped()
    signals = sorted({r.signal for r in chosen.values()})
    values: dict[str, list[np.ndarray]] = {s: [] for s in signals}
    langs_all: list[np.ndarray] = []
    for start in range(0, reference.num_rows, batch_rows):
        part = reference.slice(start, batch_rows)
        langs = pc.cast(part.column(language_column), pa.string())
        sb = compute_signals(part.column(text_column), langs, tables)
        for s in signals:
            values[s].append(sb.column(s).astype(np.float64))
        langs_all.append(np.asarray(pc.fill_null(langs, "").to_pylist(), dtype=object))
    lang = np.concatenate(langs_all) if langs_all else np.zeros(0, dtype=object)
    cols = {s: np.concatenate(v) if v else np.zeros(0) for s, v in values.items()}
    counts = {str(k): int(n) for k, n in zip(*np.unique(lang, return_counts=True)) if k}
    if counts.get(english, 0) < min_docs:
        raise ValueError(f"calibrate: {counts.get(english, 0)} reference documents in '{english}'; "
                         f"need at least {min_docs} to measure the English removal rates")
    en = lang == english
    removal = {k: removal_fraction(cols[r.signal][en], r) for k, r in chosen.items()}
    per_language: dict[str, dict[str, float]] = {}
    skipped: dict[str, int] = {}
    for code, n in sorted(counts.items()):
        if n < min_docs:
            skipped[code] = n
            continue
        m = lang == code
        per_language[code] = {k: quantile_threshold(cols[r.signal][m], r, removal[k], quantile_method)
                              for k, r in chosen.items()}
    return Calibration(
        english=english,
        quantile_method=quantile_method,
        removal=removal,
        english_thresholds={k: float(r.threshold) for k, r in chosen.items()},
        per_language=per_language,
        documents=counts,
        skipped=skipped,
    )


def read_reference(paths: list[str], text_column: str = "text", language_column: str = "language") -> pa.Table:
    """The text and language columns of Parquet files (paths, directories or globs)."""
    import pyarrow.parquet as pq

    from curate.spec import resolve_input_files

    files = resolve_input_files(paths)
    if not files:
        raise ValueError(f"calibrate: no Parquet files match {', '.join(paths)}")
    parts = [pq.read_table(f, columns=[text_column, language_column]) for f in files]
    return pa.concat_tables(parts, promote_options="default")
