"""fasttext_score: scores equal raw fastText predictions; model loading and bad models."""

from __future__ import annotations

import hashlib
from pathlib import Path

import fasttext
import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from curate.preselect import FastTextTrainConfig, ftmodel, train_classifier
from curate.stage import StageError
from curate.stages.fasttext_score import FastTextScore
from curate.testing import textgen as tg

TEXTS = [
    "A plain sentence about parsing configuration files.",
    "Line one\nline two\n\nline four after a blank line",
    "",
    "   ",
    None,
    "Ünïcödé text — with “quotes” and emoji 🙂 and tabs\tinside",
    "buy cheap best vpn now FREE FREE click here",
]


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("ft")
    pos = tg.prose_paragraphs(120, 1)
    neg = tg.spam(60, 2) + tg.boilerplate(60, 3)
    table = pa.table({"id": [f"d{i}" for i in range(240)], "text": pos + neg, "label": [1] * 120 + [0] * 120})
    train_classifier(table, d / "m.bin", config=FastTextTrainConfig(bucket=5000, dim=16), valid_fraction=0.0)
    return d / "m.bin"


def _batch(texts=TEXTS) -> pa.Table:
    return pa.table({"id": [f"r{i}" for i in range(len(texts))], "text": pa.array(texts, pa.string())})


def _raw(model, texts, repl=" ", label="__label__1") -> np.ndarray:
    lines = [(t or "").replace("\n", repl) for t in texts]
    labels, probs = model.predict(lines, k=-1)
    return np.array([p[list(lab).index(label)] for lab, p in zip(labels, probs)], dtype=np.float64)


def test_scores_equal_raw_predict_exactly(model_path):
    model = fasttext.load_model(str(model_path))
    res = FastTextScore(model_path=str(model_path)).bind("ft", 1)(_batch())
    assert res.rejected is None and res.kept.num_rows == len(TEXTS)
    got = np.array(res.kept.column("quality").to_pylist())
    np.testing.assert_array_equal(got, _raw(model, TEXTS))
    # single-line predict returns doubles of the same float32 values
    for t, g in zip(TEXTS, got):
        labels, probs = model.predict((t or "").replace("\n", " "), k=-1)
        assert np.float32(probs[list(labels).index("__label__1")]) == np.float32(g)
    assert res.kept.column("quality").type == pa.float64()
    assert res.kept.column_names == ["id", "text", "quality"]


def test_both_labels_sum_to_one_plus_2e5(model_path):
    s1 = FastTextScore(model_path=str(model_path), label="__label__1", column="p1").bind("a", 1)
    s0 = FastTextScore(model_path=str(model_path), label="0", column="p0").bind("b", 1)  # bare name accepted
    t = s0(s1(_batch()).kept).kept
    total = np.array(t.column("p1").to_pylist()) + np.array(t.column("p0").to_pylist())
    np.testing.assert_allclose(total, 1.0 + 2e-5, atol=2e-7)


def test_newline_replacement_and_empty_text_score(model_path):
    model = fasttext.load_model(str(model_path))
    st = FastTextScore(model_path=str(model_path), newline_replacement="").bind("ft", 1)
    got = np.array(st(_batch()).kept.column("quality").to_pylist())
    np.testing.assert_array_equal(got, _raw(model, TEXTS, repl=""))
    assert (
        got[1] != FastTextScore(model_path=str(model_path)).bind("x", 1)(_batch()).kept["quality"][1].as_py()
    )
    # empty, whitespace-only and null text all get the model's empty-line score
    empty = _raw(model, [""])[0]
    assert got[2] == got[3] == got[4] == empty
    assert st.run_stats()["empty_text_score"] == empty


def test_batching_does_not_change_scores(model_path):
    texts = tg.prose_paragraphs(50, 7) + TEXTS
    a = FastTextScore(model_path=str(model_path), predict_batch_size=3).bind("ft", 1)(_batch(texts)).kept
    b = FastTextScore(model_path=str(model_path)).bind("ft", 1)(_batch(texts)).kept
    assert a.column("quality").equals(b.column("quality"))


def test_existing_column_is_replaced(model_path):
    t = _batch().append_column("quality", pa.array([9.0] * len(TEXTS)))
    out = FastTextScore(model_path=str(model_path)).bind("ft", 1)(t).kept
    assert out.column_names == ["id", "text", "quality"] and max(out["quality"].to_pylist()) < 1.0001


def test_model_loads_once_and_stats_record_digest(model_path, monkeypatch):
    import curate.stages.fasttext_score as mod

    calls = []
    real = mod.load_model
    monkeypatch.setattr(mod, "load_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    st = FastTextScore(model_path=str(model_path)).bind("ft", 1)
    for _ in range(3):
        st(_batch())
    assert len(calls) == 1
    rs = st.run_stats()
    assert rs["model_sha256"] == hashlib.sha256(model_path.read_bytes()).hexdigest()
    # the model's own labels, in its dictionary order (fastText orders labels by count; the two
    # labels tie at 120 documents each, so the order is whatever fastText's sort gives)
    assert rs["model_labels"] == list(fasttext.load_model(str(model_path)).labels)
    assert sorted(rs["model_labels"]) == ["__label__0", "__label__1"]
    # a fresh (driver-side) instance reports the digest and labels without loading the model
    fresh = FastTextScore(model_path=str(model_path)).run_stats()
    assert fresh["model_sha256"] == rs["model_sha256"]
    assert fresh["model_labels"] == rs["model_labels"]
    assert len(calls) == 1


def test_remote_model_is_downloaded_once(model_path, tmp_path):
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe("/models/q.bin", model_path.read_bytes())
    cache = tmp_path / "cache"
    st = FastTextScore(model_path="memory://models/q.bin", cache_dir=str(cache)).bind("ft", 1)
    local = FastTextScore(model_path=str(model_path)).bind("ft", 1)
    assert st(_batch()).kept.column("quality").equals(local(_batch()).kept.column("quality"))
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].read_bytes() == model_path.read_bytes()
    mtime = files[0].stat().st_mtime_ns
    assert ftmodel.resolve_model_path("memory://models/q.bin", cache) == files[0]
    assert files[0].stat().st_mtime_ns == mtime  # reused, not fetched again
    with pytest.raises(StageError, match="not found: memory://models/nope.bin"):
        FastTextScore(model_path="memory://models/nope.bin", cache_dir=str(cache))(_batch())


def test_file_url_is_local(model_path):
    out = FastTextScore(model_path=f"file://{model_path}").bind("ft", 1)(_batch()).kept
    assert out.num_rows == len(TEXTS)


def test_quantized_model_passes_checks(model_path, tmp_path):
    model = fasttext.load_model(str(model_path))
    model.quantize(qnorm=True, retrain=False, cutoff=0)
    q = tmp_path / "m.ftz"
    model.save_model(str(q))
    info = ftmodel.check_model_file(q)
    assert info.quantized
    out = FastTextScore(model_path=str(q)).bind("ft", 1)(_batch()).kept
    np.testing.assert_array_equal(
        np.array(out["quality"].to_pylist()), _raw(fasttext.load_model(str(q)), TEXTS)
    )


# ----------------------------------------------------------------------------- bad input


def test_missing_model_names_the_file(tmp_path):
    with pytest.raises(StageError, match=r"fastText model file not found: .*nope\.bin"):
        FastTextScore(model_path=str(tmp_path / "nope.bin"))(_batch())


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda b: b[: len(b) // 2], "truncated"),
        (lambda b: b[:100], "truncated"),
        (lambda b: b + b"extra", "trailing bytes"),
        (lambda b: b"", "file too small"),
        (lambda b: b"not a model at all" * 20, "bad magic number"),
        (lambda b: b[:4] + (99).to_bytes(4, "little") + b[8:], "unsupported fastText format version 99"),
    ],
)
def test_corrupt_model_is_a_clear_error(model_path, tmp_path, mutate, message):
    bad = tmp_path / "bad.bin"
    bad.write_bytes(mutate(model_path.read_bytes()))
    with pytest.raises(StageError, match=rf"corrupt fastText model .*bad\.bin.*{message}"):
        FastTextScore(model_path=str(bad))(_batch())


def test_unsupervised_model_is_rejected(tmp_path):
    txt = tmp_path / "u.txt"
    txt.write_text("\n".join(f"the quick brown fox jumps over the lazy dog {i} again" for i in range(200)))
    m = fasttext.train_unsupervised(str(txt), dim=8, minCount=1, epoch=1, thread=1, verbose=0)
    m.save_model(str(tmp_path / "u.bin"))
    with pytest.raises(StageError, match="not a classifier"):
        FastTextScore(model_path=str(tmp_path / "u.bin"))(_batch())


def test_unknown_label_lists_the_models_labels(model_path):
    with pytest.raises(
        StageError, match=r"label '__label__hq' is not in fastText model .*m\.bin.*__label__0"
    ):
        FastTextScore(model_path=str(model_path), label="__label__hq")(_batch())


def test_params_validation():
    with pytest.raises(ValidationError, match="newline_replacement"):
        FastTextScore(model_path="x.bin", newline_replacement="\n")
    with pytest.raises(ValidationError, match="model_path"):
        FastTextScore()
    with pytest.raises(ValidationError, match="predict_batch_size"):
        FastTextScore(model_path="x.bin", predict_batch_size=0)
