"""heuristic_filter: presets, overrides, per-language thresholds, preset files, reasons, report."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from curate.lineage import explain
from curate.spec import spec_warnings, validate_spec
from curate.stages.heuristic_filter import HeuristicFilter
from curate.stages.heuristic_filter_params import PRESET_FILE_FORMAT
from curate.text.heuristics.languages import LID176_CODES
from curate.text.heuristics.presets import PRESETS
from workers import run_pipeline


def _batch(**cols) -> pa.Table:
    n = len(next(iter(cols.values())))
    return pa.table({"id": [f"d{i}" for i in range(n)], **cols})


def test_presets_carry_datatrove_defaults():
    th = {p: {r.name: (r.direction, r.threshold) for r in rules} for p, rules in PRESETS.items()}
    assert th["gopher_quality"]["min_doc_words"] == ("min", 50)
    assert th["gopher_quality"]["max_avg_word_length"] == ("max", 10)
    assert th["gopher_quality"]["min_stop_words"] == ("min", 2)
    assert th["gopher_repetition"]["dup_line_frac"] == ("max", 0.3)
    assert th["gopher_repetition"]["dup_line_char_frac"] == ("max", 0.2)
    assert [th["gopher_repetition"][f"top_{n}_gram"][1] for n in (2, 3, 4)] == [0.2, 0.18, 0.16]
    assert [th["gopher_repetition"][f"dup_{n}_gram"][1] for n in range(5, 11)] == [0.15, 0.14, 0.13, 0.12,
                                                                                    0.11, 0.10]
    assert th["c4"]["too_few_sentences"] == ("min", 5)
    assert th["fineweb"] == {"empty": ("min", 1), "line_punct_ratio": ("min", 0.12),
                             "short_line_ratio": ("max", 0.67), "char_dup_ratio": ("max", 0.01),
                             "list_ratio": ("max", 0.3)}


def test_reject_names_the_first_failed_rule():
    st = HeuristicFilter(presets=["gopher_repetition"])
    t = _batch(**{name: [0.0, 0.0, 0.0] for name in {r.signal for r in PRESETS["gopher_repetition"]}})
    t = t.set_column(t.column_names.index("qs_gopher_dup_line_frac"), "qs_gopher_dup_line_frac",
                     pa.array([0.41, 0.3, 0.0]))
    t = t.set_column(t.column_names.index("qs_gopher_dup_10gram_char_frac"), "qs_gopher_dup_10gram_char_frac",
                     pa.array([0.5, 0.0, 0.1000001]))
    res = st(t)
    assert res.kept.column("id").to_pylist() == ["d1"]  # 0.3 is not > 0.3
    rej = res.rejected.to_pylist()
    assert [(r["id"], r["reason"], r["detail"]) for r in rej] == [
        ("d0", "gopher_repetition:dup_line_frac", "gopher_repetition:dup_line_frac 0.41 > 0.3"),
        ("d2", "gopher_repetition:dup_10_gram", "gopher_repetition:dup_10_gram 0.1000001 > 0.1"),
    ]
    assert set(st.reasons()) == {f"gopher_repetition:{r.name}" for r in PRESETS["gopher_repetition"]}


def test_overrides_extra_rules_and_per_language():
    st = HeuristicFilter(
        presets=["gopher_quality"],
        overrides={"min_doc_words": 5, "gopher_quality:min_stop_words": None},
        rules=[{"name": "lid", "signal": "language_score", "min": 0.5}],
        per_language={"de": {"min_doc_words": 10}, "default": {"max_avg_word_length": 6}},
    )
    base = {r.signal: [4.0, 5.0, 5.0, 12.0, 12.0] for r in PRESETS["gopher_quality"]}
    base.update({"qs_gopher_alpha_word_frac": [1.0] * 5, "qs_gopher_hash_word_ratio": [0.0] * 5,
                 "qs_gopher_ellipsis_word_ratio": [0.0] * 5, "qs_gopher_bullet_line_frac": [0.0] * 5,
                 "qs_gopher_ellipsis_line_frac": [0.0] * 5, "qs_gopher_stop_word_count": [0] * 5})
    base["qs_gopher_mean_word_length"] = [4.0, 4.0, 7.0, 4.0, 4.0]
    t = _batch(language=["en", "en", "en", "de", "fr"], language_score=[0.9, 0.9, 0.9, 0.9, 0.1], **base)
    res = st(t)
    got = {r["id"]: (r["reason"], r["heuristic_rule_set"]) for r in res.rejected.to_pylist()}
    assert got == {
        "d0": ("gopher_quality:min_doc_words", "default"),  # 4 < 5 (the override)
        "d2": ("gopher_quality:max_avg_word_length", "default"),  # 7 > 6 (default entry)
        "d4": ("custom:lid", "default"),  # fr has no entry: default; stop words disabled everywhere
    }
    assert res.kept.column("heuristic_rule_set").to_pylist() == ["default", "de"]
    de = {a.reason: a.rule.threshold for a in st.rule_sets()["de"]}
    assert de["gopher_quality:min_doc_words"] == 10 and de["gopher_quality:max_avg_word_length"] == 10
    assert "gopher_quality:min_stop_words" not in de and "custom:lid" in st.reasons()


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"presets": ["gopher"]}, "unknown preset 'gopher'"),
        ({"overrides": {"dup_line_fraction": 0.2}}, "unknown rule 'dup_line_fraction'"),
        ({"overrides": {"c5:too_few_sentences": 3}}, "unknown preset 'c5'"),
        ({"overrides": {"fineweb:dup_line_frac": 0.2}}, "unknown rule 'dup_line_frac' of preset 'fineweb'"),
        ({"per_language": {"de": {"top_9_gram": 0.1}}}, "per_language.de: unknown rule 'top_9_gram'"),
        ({"rules": [{"name": "x", "signal": "qs_words", "min": 1}]}, "unknown signal 'qs_words'"),
    ],
)
def test_unknown_names_are_validation_errors(params, named):
    with pytest.raises(ValidationError, match=named):
        HeuristicFilter(params)


def test_unknown_language_key_warns():
    """A per_language key the model never emits is a warning by node, not an error."""
    spec = {"inputs": {"docs": {"path": "x/*.parquet"}},
            "nodes": [{"id": "qs", "stage": "quality_signals", "inputs": ["docs"]},
                      {"id": "hf", "stage": "heuristic_filter", "inputs": ["qs"],
                       "params": {"per_language": {"german": {"min_doc_words": 10}, "de": {}}}}]}
    ps = validate_spec(spec, check_inputs=False)
    assert spec_warnings(ps) == [
        "node 'hf': per_language key 'german' is not a language code the language-ID model emits "
        "(lid.176 codes, or GlotLID's xxx_Scrp): its thresholds never apply"]
    assert HeuristicFilter(per_language={"de": {}, "deu_Latn": {}, "default": {}}).params.spec_warnings() == []


def test_unknown_language_key_is_a_warning_on_every_surface(tmp_path):
    """`curate validate` prints it, POST /v1/validate returns it, a run's stats.json keeps it."""
    from fastapi.testclient import TestClient
    from typer.testing import CliRunner

    from api.app import create_app
    from cli.main import app as cli_app
    from tests.test_api_util import local_config

    (tmp_path / "data" / "in").mkdir(parents=True)
    pq.write_table(pa.table({"id": ["a"], "text": ["One short line of text."], "language": ["de"]}),
                   tmp_path / "data" / "in" / "p.parquet")
    spec = {"name": "warned", "inputs": {"docs": {"path": str(tmp_path / "data" / "in" / "*.parquet")}},
            "nodes": [{"id": "qs", "stage": "quality_signals", "inputs": ["docs"]},
                      {"id": "hf", "stage": "heuristic_filter", "inputs": ["qs"],
                       "params": {"presets": ["c4"], "per_language": {"german": {}}}}],
            "outputs": {"o": {"node": "hf", "path": str(tmp_path / "data" / "out")}}}
    expected = "node 'hf': per_language key 'german' is not a language code"
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    r = CliRunner().invoke(cli_app, ["validate", str(tmp_path / "spec.json")])
    assert r.exit_code == 0 and "warning:" in r.output and expected in " ".join(r.output.split()), r.output
    with TestClient(create_app(local_config(tmp_path))) as c:
        body = c.post("/v1/validate", json=spec).json()
    assert body["valid"] and len(body["warnings"]) == 1 and body["warnings"][0].startswith(expected)
    res = run_pipeline(spec, executor="local", job_dir=tmp_path / "job")
    assert any(w.startswith(expected) for w in res.stats["warnings"])


def test_lid176_code_list_matches_the_bundled_model():
    import fasttext.FastText as ft

    from curate.stages.language_id import bundled_model_path

    labels = ft._FastText(model_path=str(bundled_model_path())).labels
    assert {x.removeprefix("__label__") for x in labels} == LID176_CODES


def test_preset_file_and_spec_entries_on_top(tmp_path):
    f = tmp_path / "th.json"
    f.write_text(json.dumps({"format": PRESET_FILE_FORMAT, "per_language": {
        "de": {"fineweb:line_punct_ratio": 0.05, "fineweb:list_ratio": 0.2},
        "default": {"fineweb:list_ratio": 0.25}}}))
    st = HeuristicFilter(presets=["fineweb"], preset_file=str(f), per_language={"de": {"list_ratio": 0.15}})
    sets = {k: {a.reason: a.rule.threshold for a in v} for k, v in st.rule_sets().items()}
    assert sets["de"]["fineweb:line_punct_ratio"] == 0.05 and sets["de"]["fineweb:list_ratio"] == 0.15
    assert sets["default"]["fineweb:list_ratio"] == 0.25 and sets["default"]["fineweb:line_punct_ratio"] == 0.12
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    from curate.stage import StageError

    with pytest.raises(StageError, match="bad.json"):
        HeuristicFilter(preset_file=str(bad)).reasons()


def test_report_and_explain_show_rules_and_language_fallback(tmp_path):
    (tmp_path / "in").mkdir()
    good = " ".join(["The team wrote the report with care and sent it to the board that week."] * 5)
    texts = [good, "Short text.", good.replace("the", "der"), "Kurz."]
    pq.write_table(pa.table({"id": ["a", "b", "c", "d"], "text": texts, "language": ["en", "en", "de", "sw"]}),
                   tmp_path / "in" / "part-0.parquet")
    spec = {
        "name": "hf",
        "inputs": {"web": {"path": str(tmp_path / "in" / "*.parquet")}},
        "nodes": [
            {"id": "qs", "stage": "quality_signals", "inputs": ["web"]},
            {"id": "hf", "stage": "heuristic_filter", "inputs": ["qs"],
             "params": {"presets": ["gopher_quality"], "per_language": {"de": {"min_stop_words": 0}}}},
        ],
        "outputs": {"o": {"node": "hf", "path": str(tmp_path / "out")}},
    }
    res = run_pipeline(spec, executor="local", job_dir=tmp_path / "job")
    stats = json.loads((tmp_path / "job" / "stats.json").read_text())
    assert stats["nodes"]["hf"]["counts"] == {"default_rule_set.en": 2, "default_rule_set.sw": 1}
    assert stats["nodes"]["qs"]["counts"] == {"stopword_fallback.sw": 1}
    assert res.stats["nodes"]["hf"]["counts"] == stats["nodes"]["hf"]["counts"]
    summary = json.loads((tmp_path / "job" / "summary.json").read_text())
    sec = summary["sections"]["hf"]["heuristic_filter"]
    assert sec["rejects_by_rule"] == {"gopher_quality:min_doc_words": 2}
    assert sec["by_language"]["de"] == {"rule_set": "de", "documents": 1, "rejected": {}}
    assert sec["default_fallback"] == {"en": 2, "sw": 1}
    qs = summary["sections"]["qs"]["quality_signals"]
    assert qs["stopword_fallback"] == {"sw": 1}  # no Swahili list: English stop words
    e = explain(str(tmp_path / "job"), "b")
    assert e["rejected"]["reason"] == "gopher_quality:min_doc_words"
    checks = {c["rule"]: c for c in e["heuristic_filter"]["checks"]}
    assert checks["gopher_quality:min_doc_words"]["value"] == 2 and not checks["gopher_quality:min_doc_words"]["passed"]
    assert e["heuristic_filter"]["rule_set"] == "default"
    assert "heuristic_filter" in (tmp_path / "job" / "report.html").read_text()
