"""language_id: fastText LID scores equal raw model.predict, on text in 8 languages / 5 scripts."""

from __future__ import annotations

import fasttext.FastText as ft
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.stage import StageError
from curate.stages.language_id import LanguageId, bundled_model_path, normalize_label
from workers import read_output, run_pipeline

# Real sentences written for this test (not from a corpus); several have newlines.
DOCS = {
    "en": "The library opens at nine in the morning.\nChildren may borrow up to five books at once.",
    "de": "Die Bibliothek öffnet um neun Uhr morgens.\nKinder dürfen fünf Bücher auf einmal ausleihen.",
    "fr": "La bibliothèque ouvre à neuf heures du matin. Les enfants peuvent emprunter cinq livres à la fois.",
    "es": "La biblioteca abre a las nueve de la mañana y los niños pueden llevarse hasta cinco libros.",
    "ru": "Библиотека открывается в девять утра.\nДети могут брать до пяти книг одновременно.",
    "el": "Η βιβλιοθήκη ανοίγει στις εννέα το πρωί και τα παιδιά μπορούν να δανειστούν πέντε βιβλία.",
    "ja": "図書館は朝九時に開きます。子どもは一度に五冊まで本を借りることができます。",
    "ar": "تفتح المكتبة في الساعة التاسعة صباحا ويمكن للأطفال استعارة خمسة كتب في المرة الواحدة.",
}


def _table() -> pa.Table:
    langs = list(DOCS)
    return pa.table({"id": [f"d{i}" for i in range(len(langs))], "text": [DOCS[k] for k in langs]})


@pytest.fixture(scope="module")
def raw_model():
    return ft._FastText(model_path=str(bundled_model_path()))


def test_scores_equal_raw_predict(raw_model):
    st = LanguageId(top_k=3)
    out = st(_table()).kept
    assert out.column("language").to_pylist() == list(DOCS)  # each document in its own language
    for i, text in enumerate(out.column("text").to_pylist()):
        labels, probs = raw_model.predict(text.replace("\n", " "), k=3)
        assert out.column("language")[i].as_py() == normalize_label(labels[0])
        assert out.column("language_score")[i].as_py() == float(probs[0])  # exact: float32 widened
        top = out.column("language_top_k")[i].as_py()
        assert [t["language"] for t in top] == [normalize_label(x) for x in labels]
        assert [t["score"] for t in top] == [float(p) for p in probs]
    assert st.provided_columns() == {"language", "language_score", "language_top_k"}


def test_null_and_empty_text_are_scored_not_rejected(raw_model):
    t = pa.table({"id": ["a", "b"], "text": pa.array([None, ""], pa.string())})
    res = LanguageId()(t)
    assert res.rejected is None and res.kept.num_rows == 2
    labels, probs = raw_model.predict("", k=1)
    assert res.kept.column("language").to_pylist() == [normalize_label(labels[0])] * 2
    assert res.kept.column("language_score").to_pylist() == [float(probs[0])] * 2
    assert "language_top_k" not in res.kept.column_names


def test_batching_does_not_change_scores():
    a = LanguageId()(_table()).kept
    b = LanguageId(predict_batch_size=3)(_table()).kept
    assert a.equals(b)


def test_missing_and_corrupt_model_name_the_file(tmp_path):
    with pytest.raises(StageError, match="not found: .*nope.ftz"):
        LanguageId(model_path=str(tmp_path / "nope.ftz")).ensure_setup()
    bad = tmp_path / "bad.ftz"
    bad.write_bytes(bundled_model_path().read_bytes()[:5000])
    with pytest.raises(StageError, match="bad.ftz"):
        LanguageId(model_path=str(bad)).ensure_setup()


def test_model_path_is_a_typed_read_path():
    from curate.params import param_path_fields

    kind, shape = param_path_fields(LanguageId.Params)["model_path"]
    assert (kind.access, shape) == ("read", "scalar")


@pytest.mark.ray
@pytest.mark.parametrize("executor", ["local", "ray"])
def test_language_pipeline_both_executors(tmp_path, executor, request):
    if executor == "ray":
        request.getfixturevalue("ray_local")
    (tmp_path / "in").mkdir()
    pq.write_table(_table(), tmp_path / "in" / "part-0.parquet")
    spec = {
        "name": "lid",
        "inputs": {"web": {"path": str(tmp_path / "in" / "*.parquet")}},
        "nodes": [
            {"id": "lid", "stage": "language_id", "inputs": ["web"]},
            {"id": "conf", "stage": "threshold_filter", "inputs": ["lid"],
             "params": {"column": "language_score", "op": ">=", "value": 0.5}},
        ],
        "outputs": {"o": {"node": "conf", "path": str(tmp_path / "out")}},
    }
    res = run_pipeline(spec, executor=executor, job_dir=tmp_path / "job")
    out = read_output(tmp_path / "out")
    assert sorted(out.column("language").to_pylist()) == sorted(DOCS)
    assert res.stats["nodes"]["lid"]["run_stats"]["model_sha256"] == (
        "8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83"
    )
