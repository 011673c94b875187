"""curate calibrate: per-language thresholds by removal-rate quantile matching, checked against
numpy.quantile (method "linear") of signal values known by construction."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli.main import app
from curate.calibrate import calibrate
from curate.stages.heuristic_filter import HeuristicFilter

WORDS = {  # a word of each length per language
    "en": {3: "cat", 4: "tree", 5: "house", 6: "garden", 7: "library", 8: "elephant", 12: "wonderlandish"[:12]},
    "de": {3: "Tag", 4: "Haus", 5: "Baums", 6: "Garten", 7: "Fenster", 8: "Bahnhofs", 12: "Bahnhofshalle"[:12]},
    "fr": {3: "mer", 4: "pain", 5: "arbre", 6: "maison", 7: "fenetre", 8: "jardinet", 12: "bibliothèque"},
}
LINES = 10


def _doc(lang: str, words_per_line: int, length: int, punctuated: int) -> str:
    """10 lines of `words_per_line` copies of a `length`-letter word; the first `punctuated`
    lines end in '.'. Signals by construction: list_ratio = 9 / (10 w + p), mean word length
    = length, line_punct_ratio = p / 10."""
    w = WORDS[lang][length]
    return "\n".join(" ".join([w] * words_per_line) + ("." if i < punctuated else "") for i in range(LINES))


# (words per line, word length, punctuated lines) of each language's reference documents
PLAN = {
    "en": [(4, 4, 8)] * 30 + [(1, 12, 1)] * 10,
    "de": [(1 + i % 6, (3, 4, 5, 6, 7, 8)[i % 6] if i % 5 else 12, i % 11) for i in range(40)],
    "fr": [(2 + i % 3, (4, 5, 12)[i % 3], (i * 7) % 10) for i in range(30)],
}
RULES = ["fineweb:list_ratio", "gopher_quality:max_avg_word_length", "fineweb:line_punct_ratio"]


def _reference() -> pa.Table:
    texts, langs = [], []
    for lang, plan in PLAN.items():
        for w, length, p in plan:
            texts.append(_doc(lang, w, length, p))
            langs.append(lang)
    return pa.table({"text": texts, "language": langs})


def _expected(lang: str) -> dict[str, np.ndarray]:
    plan = np.array(PLAN[lang], dtype=np.float64)
    w, length, p = plan[:, 0], plan[:, 1], plan[:, 2]
    return {"fineweb:list_ratio": (LINES - 1) / (LINES * w + p),
            "gopher_quality:max_avg_word_length": length,
            "fineweb:line_punct_ratio": p / LINES}


def test_thresholds_are_quantiles_at_the_english_removal_rate():
    cal = calibrate(_reference(), rules=RULES, min_docs=20)
    en = _expected("en")
    # English: 10 of 40 documents have list_ratio 9/11 > 0.3 and mean word length 12 > 10;
    # the same 10 have 1 of 10 lines punctuated (0.1 < 0.12)
    assert cal.removal == {"fineweb:list_ratio": 0.25, "gopher_quality:max_avg_word_length": 0.25,
                           "fineweb:line_punct_ratio": 0.25}
    assert np.mean(en["fineweb:list_ratio"] > 0.3) == 0.25
    for lang in ("en", "de", "fr"):
        exp = _expected(lang)
        got = cal.per_language[lang]
        assert got["fineweb:list_ratio"] == pytest.approx(np.quantile(exp["fineweb:list_ratio"], 0.75))
        assert got["gopher_quality:max_avg_word_length"] == pytest.approx(
            np.quantile(exp["gopher_quality:max_avg_word_length"], 0.75))
        assert got["fineweb:line_punct_ratio"] == pytest.approx(np.quantile(exp["fineweb:line_punct_ratio"], 0.25))
    assert cal.documents == {"en": 40, "de": 40, "fr": 30}
    # "higher" picks an observed value instead of interpolating
    hi = calibrate(_reference(), rules=RULES, quantile_method="higher")
    assert hi.per_language["de"]["fineweb:list_ratio"] == pytest.approx(
        np.quantile(_expected("de")["fineweb:list_ratio"], 0.75, method="higher"))


def test_small_languages_are_skipped_and_english_is_required():
    cal = calibrate(_reference(), rules=RULES, min_docs=35)
    assert set(cal.per_language) == {"en", "de"} and cal.skipped == {"fr": 30}
    with pytest.raises(ValueError, match="'en'"):
        calibrate(_reference().filter(pa.array([False] * 40 + [True] * 70)), rules=RULES)


def test_cli_writes_a_preset_file_heuristic_filter_reads(tmp_path):
    pq.write_table(_reference(), tmp_path / "ref.parquet")
    out = tmp_path / "thresholds.json"
    args = ["calibrate", str(tmp_path / "ref.parquet"), "--out", str(out)]
    for r in RULES:
        args += ["--rule", r]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "list_ratio" in res.output and "de" in res.output and "removes" in res.output
    doc = json.loads(out.read_text())
    assert doc["citation"].startswith("Penedo et al., 2025. FineWeb2")
    st = HeuristicFilter(presets=["fineweb", "gopher_quality"], preset_file=str(out))
    de = {a.reason: a.rule.threshold for a in st.rule_sets()["de"]}
    assert de["fineweb:list_ratio"] == pytest.approx(np.quantile(_expected("de")["fineweb:list_ratio"], 0.75))
    assert de["fineweb:short_line_ratio"] == 0.67  # not calibrated: the English value
