"""perplexity_score / perplexity_filter in-process: CCNet values, bad models, buckets, and
quality (an LM trained on one domain prefers held-out text of that domain)."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from curate.fit import FitContext, LocalTaskRunner, ShardSet
from curate.lm import train_lm
from curate.stage import StageError
from curate.stages.perplexity import PerplexityFilter, PerplexityScore, percentile_from_hist
from curate.testing import textgen
from tests.test_ccnet import BIGRAM_ARPA


@pytest.fixture
def bigram(tmp_path: Path) -> str:
    p = tmp_path / "bigram.arpa"
    p.write_text(BIGRAM_ARPA)
    return str(p)


def _batch(texts: list) -> pa.Table:
    return pa.table({"id": [f"d{i}" for i in range(len(texts))], "text": texts})


def test_score_values_and_empty_text(bigram):
    st = PerplexityScore(model=bigram).bind("pp", 1)
    r = st(_batch(["A B", "b a", "C", "", None, " \n\t ", "a b\n"]))
    assert r.kept.column("perplexity").to_pylist() == [1.5, 6.3, 10.0, 1.5]
    assert r.rejected.column("reason").to_pylist() == ["empty_text"] * 3
    assert r.kept.num_rows + r.rejected.num_rows == 7
    # on_empty=score: CCNet's value for an empty line, 10 ** -(log10 p(</s> | <s>)) = 10
    r = PerplexityScore(model=bigram, on_empty="score").bind("pp", 1)(_batch(["", None, "a b"]))
    assert r.rejected is None and r.kept.column("perplexity").to_pylist() == [10.0, 10.0, 1.5]
    # per-line mode normalizes and scores each line
    r = PerplexityScore(model=bigram, mode="per_line").bind("pp", 1)(_batch(["a b\nb a"]))
    expect = round(10 ** (-(-0.55284 + -2.39794) / 6), 1)
    assert r.kept.column("perplexity").to_pylist() == [expect]
    rs = st.run_stats()
    assert rs["model_order"] == 2 and len(rs["model_xxh3"]) == 16


def test_model_loads_once_and_pickles_without_it(bigram):
    st = PerplexityScore(model=bigram).bind("pp", 1)
    st(_batch(["a"]))
    m = st._model
    st(_batch(["b"]))
    assert st._model is m
    clone = pickle.loads(pickle.dumps(st))
    assert clone._model is None and clone(_batch(["a b"])).kept.column("perplexity").to_pylist() == [1.5]


def test_bad_models(tmp_path: Path, bigram):
    with pytest.raises(StageError, match="not found"):
        PerplexityScore(model=str(tmp_path / "missing.arpa")).bind("pp", 1)(_batch(["a"]))
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00\x01garbage" * 10)
    with pytest.raises(StageError, match="cannot load"):
        PerplexityScore(model=str(junk)).bind("pp", 1)(_batch(["a"]))
    with pytest.raises(StageError, match="order is 2, expected 5"):
        PerplexityScore(model=bigram, expected_order=5).bind("pp", 1)(_batch(["a"]))
    with pytest.raises(StageError, match="SentencePiece model not found"):
        PerplexityScore(model=bigram, sentencepiece=str(tmp_path / "sp.model")).bind("pp", 1)(_batch(["a"]))
    with pytest.raises(ValidationError, match="mode"):
        PerplexityScore(model=bigram, mode="whatever")


def test_sentencepiece_pipeline(tmp_path: Path):
    spm = pytest.importorskip("sentencepiece")
    from curate.text import ccnet

    docs = textgen.prose_paragraphs(300, 4)
    norm = tmp_path / "norm.txt"
    norm.write_text("\n".join(ccnet.normalize(d) for d in docs))
    spm.SentencePieceTrainer.train(
        input=str(norm),
        model_prefix=str(tmp_path / "sp"),
        vocab_size=300,
        model_type="unigram",
        character_coverage=1.0,
    )
    sp_model = tmp_path / "sp.model"
    info = train_lm(docs, 3, tmp_path / "sp.arpa", sentencepiece=sp_model, backend="numpy")
    assert info["sentencepiece"] == str(sp_model)
    st = PerplexityScore(model=str(tmp_path / "sp.arpa"), sentencepiece=str(sp_model)).bind("pp", 1)
    pp = st(_batch([docs[0], "zzqx vvkj qqqq"])).kept.column("perplexity").to_pylist()
    assert pp[0] < pp[1]
    proc = spm.SentencePieceProcessor(model_file=str(sp_model))
    import kenlm

    m = kenlm.Model(str(tmp_path / "sp.arpa"))
    line = " ".join(proc.encode_as_pieces(ccnet.normalize(docs[0])))
    assert pp[0] == round(10 ** (-m.score(line) / (len(line.split()) + 1)), 1)


# ----------------------------------------------------------------------------------------
# perplexity_filter
# ----------------------------------------------------------------------------------------


def _fit_filter(tmp_path: Path, stage: PerplexityFilter, tables: list[pa.Table]):
    tmp_path.mkdir(parents=True, exist_ok=True)
    files = []
    for i, t in enumerate(tables):
        f = tmp_path / f"pp-{i}.parquet"
        pq.write_table(t, f)
        files.append(str(f))
    ctx = FitContext(
        runner=LocalTaskRunner(), state_dir=tmp_path / "st", scratch_dir=tmp_path / "sc", seed=1, node_id="f"
    )
    return stage.fit({"up": ShardSet(files=tuple(files))}, ctx), files


def test_percentile_from_hist_matches_numpy():
    rng = np.random.default_rng(0)
    v = np.round(rng.lognormal(5, 1, 5000), 1)
    u, c = np.unique(v, return_counts=True)
    for q in (0, 1, 30, 50, 60, 99.5, 100):
        assert percentile_from_hist(u, c, q) == pytest.approx(np.percentile(v, q), rel=1e-12)


def test_filter_learned_buckets(tmp_path: Path):
    rng = np.random.default_rng(1)
    pp = np.round(rng.lognormal(6, 0.5, 600), 1)
    pp_list: list = pp.tolist()
    pp_list[5] = None
    pp_list[6] = float("nan")
    t = pa.table({"id": [f"d{i}" for i in range(600)], "perplexity": pa.array(pp_list, pa.float64())})
    st = PerplexityFilter().bind("f", 1)
    state, files = _fit_filter(tmp_path, st, [t.slice(0, 250), t.slice(250)])
    finite = np.array([x for x in pp_list if x is not None and x == x])
    p30, p60 = np.percentile(finite, [30, 60])
    assert state["cutoffs"] == pytest.approx([p30, p60])
    s = state["stats"]
    assert s["docs"] == 598 and s["cutoffs"]["P30"] == pytest.approx(p30)
    assert sum(s["bucket_docs"].values()) == 598
    r = st.apply(t, state)
    assert r.kept.num_rows + r.rejected.num_rows == 600
    kept_pp = np.array(r.kept.column("perplexity").to_pylist())
    assert (kept_pp < p60).all() and set(r.kept.column("ccnet_bucket").to_pylist()) == {"head", "middle"}
    reasons = r.rejected.column("reason").to_pylist()
    assert reasons.count("missing_perplexity") == 2
    assert reasons.count("perplexity_bucket") == int((finite >= p60).sum())
    assert r.rejected.filter(pa.compute.equal(r.rejected.column("reason"), "perplexity_bucket")).column(
        "ccnet_bucket"
    ).to_pylist() == ["tail"] * int((finite >= p60).sum())


def test_filter_explicit_cutoffs_and_max(tmp_path: Path):
    t = pa.table({"id": ["a", "b", "c", "d"], "perplexity": [100.0, 340.0, 519.9, 520.0]})
    st = PerplexityFilter(method="cutoffs", cutoffs=(340, 520), keep_buckets=["head"]).bind("f", 1)
    state, _ = _fit_filter(tmp_path, st, [t])
    r = st.apply(t, state)
    assert r.kept.column("id").to_pylist() == ["a"]
    assert r.rejected.column("ccnet_bucket").to_pylist() == ["middle", "middle", "tail"]
    assert r.rejected.column("detail").to_pylist()[0] == "bucket=middle perplexity=340.0"
    st = PerplexityFilter(method="max", max_perplexity=400).bind("f", 1)
    state, _ = _fit_filter(tmp_path / "m", st, [t])
    r = st.apply(t, state)
    assert r.kept.column("id").to_pylist() == ["a", "b"] and r.kept.column("ccnet_bucket").to_pylist() == [
        "all",
        "all",
    ]
    assert set(r.rejected.column("reason").to_pylist()) == {"perplexity_too_high"}


def test_filter_params_and_missing_column(tmp_path: Path):
    for bad, name in (
        ({"method": "cutoffs"}, "cutoffs"),
        ({"method": "max"}, "max_perplexity"),
        ({"percentiles": (60, 30)}, "percentiles"),
        ({"keep_buckets": ["best"]}, "keep_buckets"),
        ({"max_perplexity": -1}, "max_perplexity"),
    ):
        with pytest.raises(ValidationError, match=name):
            PerplexityFilter(**bad)
    st = PerplexityFilter().bind("f", 1)
    with pytest.raises(StageError, match="run perplexity_score first"):
        _fit_filter(tmp_path, st, [pa.table({"id": ["a"], "text": ["x"]})])


# ----------------------------------------------------------------------------------------
# Quality
# ----------------------------------------------------------------------------------------


def test_domain_lm_prefers_held_out_same_domain_text(tmp_path: Path):
    prose = textgen.domain_texts("prose", 500, 11)
    train, held_out = prose[:400], prose[400:]
    train_set = set(train)
    held_out = [t for t in held_out if t not in train_set]
    train_lm(train, 3, tmp_path / "prose.arpa", backend="numpy")
    st = PerplexityScore(model=str(tmp_path / "prose.arpa")).bind("pp", 1)

    def med(texts: list[str]) -> float:
        return float(np.median(st(_batch(texts)).kept.column("perplexity").to_numpy()))

    m_prose, m_boiler, m_shuf = med(held_out), med(textgen.boilerplate(100, 3)), med(textgen.shuffled(100, 3))
    assert m_prose < m_boiler and m_prose < m_shuf, (m_prose, m_boiler, m_shuf)
    # head bucket (learned P30) is enriched in well-formed prose
    mix = held_out + textgen.boilerplate(len(held_out), 5) + textgen.shuffled(len(held_out), 6)
    kinds = ["prose"] * len(held_out) + ["junk"] * (2 * len(held_out))
    scored = st(pa.table({"id": [f"m{i}" for i in range(len(mix))], "text": mix, "kind": kinds})).kept
    filt = PerplexityFilter(keep_buckets=["head"]).bind("f", 1)
    state, _ = _fit_filter(tmp_path, filt, [scored])
    head = filt.apply(scored, state).kept
    share = head.column("kind").to_pylist().count("prose") / head.num_rows
    assert share > 0.8, share  # base rate 1/3


def test_fast_path_equals_reference_computation(tmp_path: Path):
    import random

    import kenlm

    from curate.lm import estimate
    from curate.text import ccnet

    p = tmp_path / "toy.arpa"
    estimate(["a a b a", "b a a b", "a 0 b", "c a"], 3).write_arpa(str(p))
    m = kenlm.Model(str(p))
    rng = random.Random(5)
    alphabet = [
        "a",
        "b",
        "A",
        "B",
        "c",
        " ",
        "  ",
        "\n",
        "\t",
        "1",
        "9",
        "\x01",
        "é",
        "—",
        "x",
        "\u00a0",
        "\u3000",
        "\x85",
        "٣",
        "日",
    ]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25))) for _ in range(1500)]
    st = PerplexityScore(model=str(p), on_empty="score").bind("pp", 1)
    got = st(_batch(texts)).kept.column("perplexity").to_pylist()
    assert got == [ccnet.doc_perplexity(m, t) for t in texts]
    sliced = pa.concat_tables([_batch(texts[:700]), _batch(texts[700:])]).slice(650, 300)
    assert st(sliced).kept.column("perplexity").to_pylist() == got[650:950]
