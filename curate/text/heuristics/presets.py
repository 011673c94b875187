"""Rule presets of ``heuristic_filter``: datatrove 0.10.1's default thresholds.

A rule keeps a document when ``signal >= threshold`` (a ``min`` rule) or ``signal <=
threshold`` (a ``max`` rule), the way datatrove rejects on ``value < min`` / ``value > max``.
Presets list their rules in datatrove's order of checks, so the first failing rule, which
names the reject, is the one datatrove reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Direction = Literal["min", "max"]


@dataclass(frozen=True)
class Rule:
    name: str
    signal: str
    direction: Direction
    threshold: float

    def keeps(self, value: float) -> bool:
        return value >= self.threshold if self.direction == "min" else value <= self.threshold

    def describe(self, value: float) -> str:
        """``dup_line_frac 0.41 > 0.3``: the failed comparison."""
        op = "<" if self.direction == "min" else ">"
        v, t = _num(value), _num(self.threshold)
        if v == t:  # too close to tell apart at 4 digits
            v = repr(float(value))
        return f"{self.name} {v} {op} {t}"


def _num(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:.4g}"


def _rules(*rows: tuple[str, str, Direction, float]) -> tuple[Rule, ...]:
    return tuple(Rule(*r) for r in rows)


PRESETS: dict[str, tuple[Rule, ...]] = {
    "gopher_quality": _rules(
        ("min_doc_words", "qs_gopher_word_count", "min", 50),
        ("max_doc_words", "qs_gopher_word_count", "max", 100000),
        ("min_avg_word_length", "qs_gopher_mean_word_length", "min", 3),
        ("max_avg_word_length", "qs_gopher_mean_word_length", "max", 10),
        ("max_hash_word_ratio", "qs_gopher_hash_word_ratio", "max", 0.1),
        ("max_ellipsis_word_ratio", "qs_gopher_ellipsis_word_ratio", "max", 0.1),
        ("max_bullet_lines_ratio", "qs_gopher_bullet_line_frac", "max", 0.9),
        ("max_ellipsis_lines_ratio", "qs_gopher_ellipsis_line_frac", "max", 0.3),
        ("min_alpha_words_ratio", "qs_gopher_alpha_word_frac", "min", 0.8),
        ("min_stop_words", "qs_gopher_stop_word_count", "min", 2),
    ),
    "gopher_repetition": _rules(
        ("dup_para_frac", "qs_gopher_dup_para_frac", "max", 0.3),
        ("dup_para_char_frac", "qs_gopher_dup_para_char_frac", "max", 0.2),
        ("dup_line_frac", "qs_gopher_dup_line_frac", "max", 0.3),
        ("dup_line_char_frac", "qs_gopher_dup_line_char_frac", "max", 0.2),
        ("top_2_gram", "qs_gopher_top_2gram_char_frac", "max", 0.2),
        ("top_3_gram", "qs_gopher_top_3gram_char_frac", "max", 0.18),
        ("top_4_gram", "qs_gopher_top_4gram_char_frac", "max", 0.16),
        ("dup_5_gram", "qs_gopher_dup_5gram_char_frac", "max", 0.15),
        ("dup_6_gram", "qs_gopher_dup_6gram_char_frac", "max", 0.14),
        ("dup_7_gram", "qs_gopher_dup_7gram_char_frac", "max", 0.13),
        ("dup_8_gram", "qs_gopher_dup_8gram_char_frac", "max", 0.12),
        ("dup_9_gram", "qs_gopher_dup_9gram_char_frac", "max", 0.11),
        ("dup_10_gram", "qs_gopher_dup_10gram_char_frac", "max", 0.10),
    ),
    "c4": _rules(
        ("lorem_ipsum", "qs_c4_lorem_ipsum_lines", "max", 0),
        ("curly_bracket", "qs_c4_curly_brace_lines", "max", 0),
        ("too_few_sentences", "qs_c4_sentence_count", "min", 5),
    ),
    "fineweb": _rules(
        ("empty", "qs_fineweb_nonempty_lines", "min", 1),
        ("line_punct_ratio", "qs_fineweb_line_punct_ratio", "min", 0.12),
        ("short_line_ratio", "qs_fineweb_short_line_ratio", "max", 0.67),
        ("char_dup_ratio", "qs_fineweb_char_dup_ratio", "max", 0.01),
        ("list_ratio", "qs_fineweb_list_ratio", "max", 0.3),
    ),
}
