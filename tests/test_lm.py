"""Modified Kneser-Ney estimation vs lmplz's own toy models (:mod:`curate.lm.kneser_ney`),
model-file checks and ``curate lm``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from curate.lm import EstimationError, ModelError, arpa_orders, estimate, load_kenlm, model_order, train_lm

TOY0 = {
    "<unk>": (-0.90309, 0.0), "<s>": (0.0, -0.30103), "a": (-0.46943438, -0.30103), "</s>": (-0.5720968, 0.0),
    "b": (-0.5720968, -0.30103),
    "<s> a": (-0.37712017, -0.30103), "a a": (-0.37712017, -0.30103), "b a": (-0.2984526, -0.30103),
    "a </s>": (-0.58682007, 0.0), "b </s>": (-0.5220179, 0.0), "<s> b": (-0.41574955, -0.30103),
    "a b": (-0.58682007, -0.30103),
    "<s> a a": (-0.14885087, 0.0), "b a a": (-0.33741078, 0.0), "<s> b a": (-0.124077894, 0.0),
    "a b a": (-0.2997394, 0.0), "b a </s>": (-0.42082912, 0.0), "a b </s>": (-0.397617, 0.0),
    "a a b": (-0.20102891, 0.0),
}  # fmt: skip
TOY1 = {
    "<unk>": (-1.0, 0.0), "<s>": (0.0, -0.30103), "a": (-0.6146491, -0.30103), "</s>": (-0.6146491, 0.0),
    "c": (-0.7659168, -0.30103), "b": (-0.6146491, -0.30103),
    "<s> a": (-0.4301247, -0.30103), "a a": (-0.4301247, -0.30103), "c </s>": (-0.20660876, 0.0),
    "b </s>": (-0.5404639, 0.0), "<s> c": (-0.4740302, -0.30103), "a b": (-0.4301247, -0.30103),
    "b b": (-0.3422159, -0.47712123),
    "<s> a a": (-0.1638568, 0.0), "<s> c </s>": (-0.09113217, 0.0), "b b </s>": (-0.7462621, 0.0),
    "a a b": (-0.1638568, 0.0), "a b b": (-0.13823806, 0.0), "b b b": (-0.13375957, 0.0),
}  # fmt: skip


def _assert_same(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for g, (lp, bo) in want.items():
        assert got[g][0] == pytest.approx(lp, abs=1e-6), g
        assert got[g][1] == pytest.approx(bo, abs=1e-6), g


def test_toy0_matches_lmplz():
    _assert_same(estimate(["a a b a", "b a a b"], 3).entries(), TOY0)


def test_toy1_matches_lmplz():
    _assert_same(estimate(["a a b b b b b b b", "c"], 3).entries(), TOY1)


def test_arpa_roundtrip_through_kenlm(tmp_path: Path):
    p = tmp_path / "toy0.arpa"
    estimate(["a a b a", "b a a b"], 3).write_arpa(str(p))
    assert arpa_orders(p) == [5, 7, 7]
    m = load_kenlm(p, expected_order=3)
    assert m.score("a b") == pytest.approx(-1.662587, abs=1e-5)
    assert model_order(p) == 3


def _conditional(entries: dict, order: int, vocab: list[str], ctx: tuple[str, ...], w: str) -> float:
    """p(w | ctx) by the ARPA back-off rule (pure Python oracle)."""
    for k in range(min(len(ctx), order - 1), -1, -1):
        h = ctx[len(ctx) - k :]
        g = " ".join(h + (w,))
        if g in entries:
            bo = 0.0
            for j in range(len(ctx) - k):  # back-offs of the longer contexts we skipped
                hh = " ".join(ctx[j:])
                bo += entries.get(hh, (0.0, 0.0))[1]
            return 10 ** (entries[g][0] + bo)
    return 10 ** entries["<unk>"][0]


def test_probabilities_normalize_with_closed_form_discounts():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(60)]
    zipf = 1.0 / np.arange(1, 61)
    sents = [" ".join(rng.choice(words, size=rng.integers(1, 9), p=zipf / zipf.sum())) for _ in range(400)]
    for order in (2, 3):
        m = estimate(sents, order)
        assert m.discounts[-1] != (0.5, 1.0, 1.5)  # closed form used
        e = m.entries()
        vocab = words + ["</s>", "<unk>"]
        for ctx in [(), ("<s>",), ("w0",), ("w3", "w1"), ("<s>", "w2"), ("w59", "w0")]:
            total = sum(_conditional(e, order, vocab, ctx, w) for w in vocab)
            assert total == pytest.approx(1.0, abs=1e-6), ctx


def test_estimation_errors():
    with pytest.raises(EstimationError, match="discounts"):
        estimate(["a a b a", "b a a b"], 3, discount_fallback=False)
    with pytest.raises(EstimationError, match="lower order"):
        estimate(["a b"], 5)
    with pytest.raises(EstimationError, match="empty"):
        estimate([], 3)


def test_model_file_errors(tmp_path: Path):
    with pytest.raises(ModelError, match="not found"):
        load_kenlm(tmp_path / "nope.arpa")
    bad = tmp_path / "bad.arpa"
    bad.write_text("this is not a model\n")
    with pytest.raises(ModelError):
        load_kenlm(bad)
    trunc = tmp_path / "trunc.arpa"
    estimate(["a a b a", "b a a b"], 3).write_arpa(str(trunc))
    trunc.write_text(trunc.read_text()[:120])
    with pytest.raises(ModelError, match="cannot load"):
        load_kenlm(trunc)
    good = tmp_path / "g.arpa"
    estimate(["a a b a", "b a a b"], 3).write_arpa(str(good))
    with pytest.raises(ModelError, match="order is 3, expected 5"):
        load_kenlm(good, expected_order=5)


def test_train_lm_normalizes_and_writes_loadable_arpa(tmp_path: Path):
    from curate.testing import textgen

    docs = textgen.prose_paragraphs(300, 1)
    info = train_lm(docs, 3, tmp_path / "m.arpa", backend="numpy")
    assert info["backend"] == "numpy" and info["sentences"] == 300 and len(info["ngrams"]) == 3
    m = load_kenlm(tmp_path / "m.arpa", expected_order=3)
    text = (tmp_path / "m.arpa").read_text()
    assert "\tThe" not in text and "\tthe" in text  # lower-cased like the scorer's input
    assert m.order == 3
    if shutil.which("lmplz") is None:
        with pytest.raises(FileNotFoundError, match="lmplz"):
            train_lm(docs, 3, tmp_path / "x.arpa", backend="lmplz")


def test_cli_lm_train_info_score(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from typer.testing import CliRunner

    from cli.main import app
    from curate.testing import textgen

    pq.write_table(pa.table({"body": textgen.prose_paragraphs(200, 2)}), tmp_path / "c.parquet")
    r = CliRunner().invoke(
        app,
        [
            "lm",
            "train",
            str(tmp_path / "c.parquet"),
            "--order",
            "3",
            "--out",
            str(tmp_path / "lm.arpa"),
            "--text-column",
            "body",
            "--backend",
            "numpy",
        ],
    )
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["order"] == 3
    r = CliRunner().invoke(app, ["lm", "info", str(tmp_path / "lm.arpa")])
    assert r.exit_code == 0 and json.loads(r.stdout)["order"] == 3
    r = CliRunner().invoke(app, ["lm", "score", str(tmp_path / "lm.arpa"), "The module provides functions."])
    assert r.exit_code == 0 and json.loads(r.stdout)["perplexity"] > 1
    r = CliRunner().invoke(
        app, ["lm", "train", str(tmp_path / "c.parquet"), "--out", str(tmp_path / "y.arpa")]
    )
    assert r.exit_code == 1 and "no text column 'text'" in " ".join(r.output.split())


def _read_arpa(path: Path) -> dict[str, tuple[float, float]]:
    out = {}
    for line in path.read_text().splitlines():
        if not line or line.startswith(("\\", "ngram")):
            continue
        parts = line.split("\t")
        out[parts[1]] = (float(parts[0]), float(parts[2]) if len(parts) > 2 else 0.0)
    return out


@pytest.mark.skipif(shutil.which("lmplz") is None, reason="lmplz not on PATH (optional: see README)")
def test_numpy_estimator_matches_lmplz_on_real_text(tmp_path: Path):
    from curate.testing import textgen

    docs = textgen.domain_texts("prose", 600, 3)
    for order in (3, 5):
        a = train_lm(docs, order, tmp_path / "np.arpa", backend="numpy")
        b = train_lm(docs, order, tmp_path / "lz.arpa", backend="lmplz")
        assert a["ngrams"] == b["ngrams"]
        ea, eb = _read_arpa(tmp_path / "np.arpa"), _read_arpa(tmp_path / "lz.arpa")
        assert set(ea) == set(eb)
        for g, (lp, bo) in eb.items():
            assert ea[g][0] == pytest.approx(lp, abs=2e-6) and ea[g][1] == pytest.approx(bo, abs=2e-6), g
