"""quality_signals: Gopher / C4 / FineWeb signal values on hand-made documents, computed by hand."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.stages.quality_signals import QualitySignals
from curate.text.heuristics.signals import SIGNALS
from curate.text.heuristics.stopwords import shipped_lists
from curate.text.heuristics.words import split_words
from workers import read_output, run_pipeline

# 76 characters, 4 lines; words: The cat sat on the mat . (x2) - a bullet line ... # heading (21 tokens)
DOC_A = "The cat sat on the mat.\nThe cat sat on the mat.\n- a bullet line...\n# heading"
DOC_C4 = (
    "Lorem ipsum dolor sit amet.\n"
    "Please enable JavaScript in your browser.\n"
    "function f() { return 1; }.\n"
    "Read our privacy policy now.\n"
    "One. Two three four. Five six seven!\n"
    "It works well here.[1]"
)
DOC_PARAS = "Alpha beta gamma.\n\nAlpha beta gamma.\n\nDelta."  # 44 characters


def _signals(texts: list[str | None], langs: list[str | None] | None = None) -> list[dict]:
    cols = {"id": [f"d{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())}
    if langs is not None:
        cols["language"] = pa.array(langs, pa.string())
    res = QualitySignals()(pa.table(cols))
    assert res.rejected is None
    return res.kept.to_pylist()


def test_word_splitting_follows_spacy_rules():
    assert split_words("Don't e-mail me at foo@bar.com... It's 3.14 $100, ok?") == [
        "Do", "n't", "e", "-", "mail", "me", "at", "foo@bar.com", "...", "It", "'s", "3.14", "$", "100", ",",
        "ok", "?"]
    assert split_words("e.g. Mr. Smith (see os.path.join).") == ["e.g.", "Mr.", "Smith", "(", "see",
                                                                  "os.path.join", ")", "."]
    # per-character languages: each Han / kana character is a word, Latin runs split as usual
    assert split_words("私はPythonが好き。", "ja") == ["私", "は", "Python", "が", "好", "き", "。"]
    assert split_words("私はPythonが好き。", "en") == ["私はPythonが好き", "。"]
    # English special cases only in English: German "im" is a word, English "im" is i + m
    assert split_words("im Haus, e.g. :)", "de") == ["im", "Haus", ",", "e.g", ".", ":)"]
    assert split_words("im Haus, e.g. :)", "en") == ["i", "m", "Haus", ",", "e.g.", ":)"]


def test_gopher_quality_and_repetition_by_hand():
    (r,) = _signals([DOC_A], ["en"])
    assert r["qs_gopher_word_count"] == 16  # 21 tokens minus . . - ... #
    assert r["qs_gopher_mean_word_length"] == pytest.approx(52 / 16)
    assert r["qs_gopher_hash_word_ratio"] == pytest.approx(1 / 21)
    assert r["qs_gopher_ellipsis_word_ratio"] == pytest.approx(1 / 21)
    assert r["qs_gopher_bullet_line_frac"] == pytest.approx(1 / 4)
    assert r["qs_gopher_ellipsis_line_frac"] == pytest.approx(1 / 4)
    assert r["qs_gopher_alpha_word_frac"] == pytest.approx(16 / 21)
    assert r["qs_gopher_stop_word_count"] == 1  # "the" ("The" is not the stop word "the")
    assert r["qs_gopher_dup_line_frac"] == pytest.approx(1 / 4)
    assert r["qs_gopher_dup_line_char_frac"] == pytest.approx(23 / 76)
    assert r["qs_gopher_dup_para_frac"] == 0 and r["qs_gopher_dup_para_char_frac"] == 0
    assert r["qs_gopher_top_2gram_char_frac"] == pytest.approx(7 * 2 / 76)  # "The cat" twice
    assert r["qs_gopher_top_3gram_char_frac"] == pytest.approx(11 * 2 / 76)
    assert r["qs_gopher_top_4gram_char_frac"] == pytest.approx(14 * 2 / 76)
    assert r["qs_gopher_dup_5gram_char_frac"] == pytest.approx(len("Thecatsatonthe") / 76)
    assert r["qs_gopher_dup_6gram_char_frac"] == pytest.approx(len("Thecatsatonthemat") / 76)
    assert r["qs_gopher_dup_7gram_char_frac"] == pytest.approx(len("Thecatsatonthemat.") / 76)
    assert r["qs_gopher_dup_8gram_char_frac"] == 0
    assert r["qs_gopher_dup_10gram_char_frac"] == 0


def test_fineweb_and_c4_line_signals_by_hand():
    (a, c4, paras) = _signals([DOC_A, DOC_C4, DOC_PARAS])
    assert a["qs_fineweb_nonempty_lines"] == 4
    assert a["qs_fineweb_line_punct_ratio"] == pytest.approx(3 / 4)  # "# heading" has no terminal
    assert a["qs_fineweb_short_line_ratio"] == 1.0
    assert a["qs_fineweb_char_dup_ratio"] == pytest.approx(23 / 73)  # 76 chars - 3 newlines
    assert a["qs_fineweb_list_ratio"] == pytest.approx(3 / 21)
    assert a["qs_c4_terminal_punct_line_frac"] == pytest.approx(2 / 4)  # "line..." does not count
    assert a["qs_c4_sentence_count"] == 2
    assert (c4["qs_c4_lorem_ipsum_lines"], c4["qs_c4_javascript_lines"], c4["qs_c4_curly_brace_lines"],
            c4["qs_c4_policy_lines"]) == (1, 1, 1, 1)
    assert c4["qs_c4_terminal_punct_line_frac"] == 1.0  # the [1] citation is removed first
    assert c4["qs_c4_sentence_count"] == 3 + 1  # "One. Two three four. Five six seven!" + the last line
    # spaCy keeps the second space as a token of its own: it starts a sentence after the '.'
    (two,) = _signals(['It is outdated by RFC 2822).  """', 'It is outdated by RFC 2822). """'])[:1]
    assert two["qs_c4_sentence_count"] == 2
    assert _signals(['It is outdated by RFC 2822). """'])[0]["qs_c4_sentence_count"] == 1
    assert paras["qs_gopher_dup_para_frac"] == pytest.approx(1 / 3)
    assert paras["qs_gopher_dup_para_char_frac"] == pytest.approx(17 / 44)
    assert paras["qs_gopher_dup_line_frac"] == pytest.approx(1 / 3)
    assert paras["qs_fineweb_char_dup_ratio"] == pytest.approx(17 / 40)


def test_language_picks_stopwords_and_splitter_with_counted_fallback():
    de = "Der Hund und die Katze sind im Haus."
    ja = "私は猫が好きです。"
    rows = _signals([de, de, de, ja], ["de", "en", "xx", "ja"])
    assert [r["qs_gopher_stop_word_count"] for r in rows] == [3, 0, 0, 4]  # und die im / は が で です
    assert [r["qs_stopwords"] for r in rows] == ["de", "en", "en", "ja"]
    assert [r["qs_language_fallback"] for r in rows] == [False, False, True, False]
    assert rows[3]["qs_gopher_word_count"] == 8  # 9 characters, "。" is punctuation
    assert len(shipped_lists()) >= 20 and shipped_lists()["en"] == (
        "the", "be", "to", "of", "and", "that", "have", "with")


def test_degenerate_documents_never_crash():
    rows = _signals(["", None, "x", "😀😀😀", "\x00\x01\x02", " \t\n\n "], ["en"] * 6)
    for r in rows:
        for name in SIGNALS:
            assert math.isfinite(r[name]), (r["id"], name)
    empty, null, one, emoji, ctrl, blank = rows
    assert all(empty[n] == 0 for n in SIGNALS) and all(null[n] == 0 for n in SIGNALS)
    assert (one["qs_gopher_word_count"], one["qs_gopher_mean_word_length"],
            one["qs_fineweb_nonempty_lines"]) == (1, 1, 1)
    assert emoji["qs_gopher_word_count"] == 0  # emoji are symbols
    assert emoji["qs_gopher_top_2gram_char_frac"] == pytest.approx(3 * 2 / 3)  # "😀 😀" twice in 3 chars
    assert (ctrl["qs_gopher_word_count"], ctrl["qs_gopher_alpha_word_frac"],
            ctrl["qs_fineweb_nonempty_lines"]) == (0, 0, 1)
    assert blank["qs_fineweb_nonempty_lines"] == 0 and blank["qs_gopher_word_count"] == 0


def test_families_limit_the_columns():
    st = QualitySignals(families=["c4"])
    out = st(pa.table({"id": ["a"], "text": [DOC_C4]})).kept
    added = {c for c in out.column_names if c.startswith("qs_")}
    c4 = {n for n, s in SIGNALS.items() if s.family == "c4"}
    assert added == c4 | {"qs_stopwords", "qs_language_fallback"}
    assert added <= st.provided_columns()


@pytest.mark.ray
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_signals_and_filter_both_executors(tmp_path, executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_local")
    (tmp_path / "in").mkdir()
    prose = " ".join(["The library opens at nine and the children borrow books with their parents."] * 6)
    texts = [DOC_A, DOC_C4, DOC_PARAS, prose, ""]
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(5)], "text": texts,
                             "language": ["en", "en", "sw", "en", "en"]}), tmp_path / "in" / "part-0.parquet")
    spec = {
        "name": "qs",
        "inputs": {"web": {"path": str(tmp_path / "in" / "*.parquet")}},
        "nodes": [
            {"id": "qs", "stage": "quality_signals", "inputs": ["web"]},
            {"id": "hf", "stage": "heuristic_filter", "inputs": ["qs"],
             "params": {"presets": ["gopher_quality"], "overrides": {"min_doc_words": 10}}},
        ],
        "outputs": {"o": {"node": "hf", "path": str(tmp_path / "out")}},
    }
    res = run_pipeline(spec, executor=executor, job_dir=tmp_path / "job")
    out = read_output(tmp_path / "out").sort_by("id")
    assert out.column("id").to_pylist() == ["d3"]  # the repeated prose passes gopher_quality
    assert out.column("qs_gopher_stop_word_count").to_pylist() == [3]  # the, and, with
    by_reason = res.stats["nodes"]["hf"]["rejects_by_reason"]
    # DOC_A: 16 of 21 words alphabetic; DOC_C4: 30 of 44; DOC_PARAS: 7 words ("" never gets here)
    assert by_reason == {"gopher_quality:min_doc_words": 1, "gopher_quality:min_alpha_words_ratio": 2}
    assert res.stats["nodes"]["web"]["rejects_by_reason"] == {"empty_text": 1}
    # no Swahili stop-word list and no Swahili thresholds: counted per language, on both executors
    assert res.stats["nodes"]["qs"]["counts"] == {"stopword_fallback.sw": 1}
    assert res.stats["nodes"]["hf"]["counts"] == {"default_rule_set.en": 3, "default_rule_set.sw": 1}


def test_readme_documents_every_signal():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for s in SIGNALS.values():
        assert f"| `{s.name}` | {s.family} | {s.definition} |" in readme, s.name
