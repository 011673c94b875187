"""DSIR: features, distributions and weights against the data-selection 1.0.3 vectors
(the reference package of Xie et al. 2023, arXiv:2302.03169), plus selection semantics of
`dsir_resample`."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from curate.fit import FitContext, LocalTaskRunner, ShardSet
from curate.stage import StageError
from curate.stages.dsir_resample import DsirResample, target_is_path
from curate.text.dsir.featurizer import (
    HashedNgramFeaturizer,
    example_length,
    get_ngram_counts,
    get_ngram_counts_py,
    hash_buckets,
)
from curate.text.dsir.gumbel_topk import gumbel_noise
from curate.text.dsir.kl import kl_divergence, kl_reduction
from curate.text.dsir.sha256_kernel import sha256_mod_bytes
from curate.text.dsir.weights import log_diff, raw_distribution, target_distribution
from curate.text.dsir.wordpunct import wordpunct_tokenize

RAW = ["the cat sat on the mat", "the dog sat on the log", "buy cheap pills now", "click here to subscribe"]


# ----------------------------------------------------------------------------------------
# Features
# ----------------------------------------------------------------------------------------


def test_hash_bucket_vectors():
    assert hash_buckets("alice") == 6720
    assert hash_buckets("alice went") == 114
    expect = {"alice": 6720, "went": 5816, "to": 2441, "the": 8288, "store": 9879,
              "alice went": 114, "went to": 4126, "to the": 1087, "the store": 3440}  # fmt: skip
    for s, b in expect.items():
        assert hash_buckets(s) == b
        buf = np.frombuffer(s.encode(), dtype=np.uint8)
        assert sha256_mod_bytes(buf, 10000) == b


def test_ngram_counts_vector():
    c = get_ngram_counts("Alice went to the store", ngrams=2, num_buckets=10000)
    assert c.shape == (10000,)
    assert c.sum() == 9
    assert sorted(np.nonzero(c)[0].tolist()) == [114, 1087, 2441, 3440, 4126, 5816, 6720, 8288, 9879]
    assert set(c[c > 0].tolist()) == {1}


def test_wordpunct_and_length_metadata():
    text = "Alice walked into the store\n\n()()($#%@?)@(#(*"
    toks = wordpunct_tokenize(text)
    assert toks == ["Alice", "walked", "into", "the", "store", "()()($#%@?)@(#(*"]
    fz = HashedNgramFeaturizer()
    assert example_length(fz.dense(text)) == len(toks) == 6
    _, ntok = fz.counts([text, "", None, "a b"])
    assert ntok.tolist() == [6, 0, 0, 2]


def test_numba_kernel_matches_python_reference_on_unicode():
    rng = random.Random(7)
    alphabet = list("abcxyz ABC_09\t\n.,;!?()-—“”'") + [
        "é",
        "ü",
        "ß",
        "İ",
        "Σ",
        "日本",
        "語",
        "\u0301",
        "ﬁ",
        "١٢",
        "😀",
        "\u00a0",
        "\u2003",
    ]
    docs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80))) for _ in range(300)]
    docs.append("x" * 300 + " " + "y" * 200)  # n-grams longer than one SHA block
    for n, b in ((1, 10000), (2, 10000), (3, 997)):
        fz = HashedNgramFeaturizer(b, n)
        for d in docs:
            assert (fz.dense(d) == get_ngram_counts_py(d, n, b)).all(), repr(d)
        # whole-batch counts equal the sum of per-document reference vectors
        total = sum(get_ngram_counts_py(d, n, b) for d in docs)
        assert (fz.counts(docs)[0] == total).all()


def test_wordpunct_classes_follow_nltk_3_10():
    # nltk >= 3.10 runs WordPunct's pattern on the `regex` engine: marks (U+0301, U+FE0F) are
    # word characters, '₁' (No) and '❤' (So) are not, and \x1c-\x1f are not spaces.
    text = "t₁ \u2764\ufe0f e\u0301x a\x1cb"
    assert wordpunct_tokenize(text) == ["t", "₁", "\u2764", "\ufe0f", "e\u0301x", "a", "\x1c", "b"]
    fz = HashedNgramFeaturizer()
    assert fz.counts([text])[1].tolist() == [8]


def test_matches_installed_reference_package_when_available():
    hd = pytest.importorskip("data_selection.hashed_ngram_dsir")
    rng = random.Random(11)
    alphabet = list("ab AB 1_.,;\t\n\x1c") + ["é", "e\u0301", "₁", "❤️", "日本", "٣", "\u00a0", "Ⅻ", "😀"]
    docs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40))) for _ in range(300)]
    fz = HashedNgramFeaturizer()
    for d in docs:
        ref = hd.get_ngram_counts(d, n=2, num_buckets=10000, tokenizer=hd.wpt.tokenize)
        assert (fz.dense(d) == ref).all(), repr(d)


def test_cache_eviction_does_not_change_results():
    docs = [" ".join(f"w{i * 7 + j}" for j in range(50)) for i in range(200)]
    small = HashedNgramFeaturizer(10000, 2, max_cache=1 << 14)
    big = HashedNgramFeaturizer(10000, 2)
    ld = np.random.default_rng(0).normal(size=10000)
    a = small.score(docs, ld)[0]
    b = big.score(docs, ld)[0]
    assert np.array_equal(a, b)
    assert np.array_equal(small.score(docs[::-1], ld)[0], b[::-1])


# ----------------------------------------------------------------------------------------
# Distributions and weights
# ----------------------------------------------------------------------------------------


def _logw(smoothing: float) -> np.ndarray:
    fz = HashedNgramFeaturizer()
    raw_c, _ = fz.counts(RAW)
    tgt_c, _ = fz.counts(RAW[:2])
    assert raw_c.sum() == 36 and tgt_c.sum() == 22
    t = target_distribution(tgt_c, smoothing)
    r = raw_distribution(raw_c)
    assert t.sum() == pytest.approx(1.0) and r.sum() == pytest.approx(1.0)
    ld = log_diff(t, r)
    assert np.allclose(ld, np.log(t + 1e-8) - np.log(r + 1e-8))
    if smoothing:
        p1 = tgt_c / tgt_c.sum()
        T, B = tgt_c.sum(), 10000
        assert np.allclose(t, (p1 * T + smoothing) / (T + smoothing * B))
    return fz.score(RAW, ld)[0]


def test_end_to_end_log_weights_match_reference():
    assert np.allclose(_logw(0.0), [5.417240, 5.417240, -103.860135, -103.860135], atol=1e-6)
    assert _logw(0.0)[0] == pytest.approx(11 * np.log(36 / 22), abs=1e-5)  # up to the 1e-8 epsilon
    assert np.allclose(_logw(1.0), [-56.384904, -56.384904, -39.402434, -39.402434], atol=1e-6)


def test_kl_divergence_and_reduction():
    p = np.array([0.5, 0.5, 0.0])
    assert kl_divergence(p, np.array([1, 1, 0])) == pytest.approx(0.0, abs=1e-7)
    r = kl_reduction([p], np.array([1, 1, 2]), np.array([1, 1, 0]))
    assert r["kl_target_raw"] == pytest.approx(np.log(2), abs=1e-6)
    assert r["kl_reduction"] == pytest.approx(np.log(2), abs=1e-6)


def test_gumbel_noise_is_seeded_and_standard():
    ids = [f"doc{i}" for i in range(20000)]
    g1 = gumbel_noise(ids, 3)
    assert np.array_equal(g1, gumbel_noise(ids, 3))
    assert not np.array_equal(g1, gumbel_noise(ids, 4))
    assert g1.mean() == pytest.approx(0.5772, abs=0.03)  # Euler-Mascheroni
    assert g1.std() == pytest.approx(np.pi / np.sqrt(6), abs=0.03)


# ----------------------------------------------------------------------------------------
# dsir_resample (in-process fit/apply)
# ----------------------------------------------------------------------------------------


def _write(path: Path, texts: list, ids: list[str] | None = None, col: str = "text") -> str:
    ids = ids or [f"{path.stem}-{i}" for i in range(len(texts))]
    pq.write_table(pa.table({"id": ids, col: texts}), path)
    return str(path)


def _fit(tmp: Path, stage: DsirResample, files: list[str], extra: dict | None = None) -> dict:
    ctx = FitContext(
        runner=LocalTaskRunner(),
        state_dir=tmp / "state",
        scratch_dir=tmp / "scr",
        seed=11,
        node_id="d",
        batch_size=7,
    )
    return stage.fit({"pool": ShardSet(files=tuple(files)), **(extra or {})}, ctx)


def _run(stage: DsirResample, files: list[str], state: dict, batch: int = 5):
    kept, rej = [], []
    for f in files:
        t = pq.read_table(f)
        for off in range(0, t.num_rows, batch):
            r = stage.apply(t.slice(off, batch), state)
            kept.append(r.kept)
            if r.rejected is not None:
                rej.append(r.rejected)
    kept_t = pa.concat_tables(kept)
    rej_t = pa.concat_tables(rej) if rej else None
    return kept_t, rej_t


def test_stage_reproduces_reference_weights_and_rejects(tmp_path):
    raw = _write(tmp_path / "raw.parquet", RAW)
    tgt = _write(tmp_path / "tgt.parquet", RAW[:2])
    st = DsirResample(target=tgt, min_tokens=0, budget=2).bind("d", 11)
    state = _fit(tmp_path, st, [raw])
    kept, rej = _run(st, [raw], state, batch=4)
    assert sorted(kept.column("text").to_pylist()) == sorted(RAW[:2])
    assert np.allclose(kept.column("dsir_logw").to_numpy(), 5.417240, atol=1e-6)
    assert set(rej.column("reason").to_pylist()) == {"dsir_not_selected"}
    assert rej.column("detail").to_pylist() == ["dsir_logw=-103.860135"] * 2
    s = state["stats"]
    assert (
        s["selected_docs"] == 2 and s["pool_docs"] == 4 and s["target_ngrams"] == 22 and s["raw_ngrams"] == 36
    )
    assert s["kl_reduction"] > 0


def _pool(tmp_path: Path, n_files: int = 1):
    rng = np.random.default_rng(0)
    words_a = [f"alpha{i}" for i in range(50)]
    words_b = [f"beta{i}" for i in range(50)]
    texts, ids = [], []
    for i in range(120):
        pool = words_a if i % 3 == 0 else words_b
        k = 5 if i % 10 == 9 else 30  # every 10th doc is short
        texts.append(" ".join(rng.choice(pool, size=k)))
        ids.append(f"id{i:04d}")
    step = len(texts) // n_files + 1
    return (
        [
            _write(
                tmp_path / f"pool{n_files}-{j}.parquet",
                texts[j * step : (j + 1) * step],
                ids[j * step : (j + 1) * step],
            )
            for j in range(n_files)
            if texts[j * step : (j + 1) * step]
        ],
        texts,
        ids,
    )


@pytest.mark.parametrize("unit,budget", [("docs", 25), ("tokens", 400), ("fraction", 0.25)])
def test_selection_is_independent_of_files_and_batches(tmp_path, unit, budget):
    tgt = _write(tmp_path / "tgt.parquet", [" ".join(f"alpha{i}" for i in range(50))])
    results = []
    for n_files, batch in ((1, 1000), (4, 3)):
        files, texts, _ = _pool(tmp_path, n_files)
        st = DsirResample(target=tgt, min_tokens=10, budget=budget, budget_unit=unit).bind("d", 11)
        state = _fit(tmp_path / f"s{n_files}", st, files)
        kept, rej = _run(st, files, state, batch=batch)
        assert kept.num_rows + rej.num_rows == len(texts)
        reasons = rej.column("reason").to_pylist()
        assert reasons.count("too_few_tokens") == 12
        results.append((sorted(kept.column("id").to_pylist()), state["stats"]))
    assert results[0][0] == results[1][0]
    sel, stats = results[0]
    if unit == "docs":
        assert len(sel) == 25
    elif unit == "fraction":
        assert len(sel) == int(0.25 * 108)
    else:
        assert stats["selected_tokens"] >= 400 and stats["selected_tokens"] - 30 < 400
    assert stats["selected_docs"] == len(sel)
    # the target looks like the alpha docs (every third doc)
    assert sum(int(i[2:]) % 3 == 0 for i in sel) / len(sel) > 0.9
    assert stats["kl_reduction"] > 0


def test_seed_changes_selection_and_top_k_is_deterministic(tmp_path):
    files, texts, ids = _pool(tmp_path)
    tgt = _write(tmp_path / "tgt.parquet", [" ".join(f"alpha{i}" for i in range(25))])
    sels = []
    for seed in (1, 2):
        st = DsirResample(target=tgt, min_tokens=10, budget=60, seed=seed).bind("d", 11)
        state = _fit(tmp_path / f"s{seed}", st, files)
        sels.append(set(_run(st, files, state)[0].column("id").to_pylist()))
    assert sels[0] != sels[1] and len(sels[0]) == len(sels[1]) == 60
    st = DsirResample(target=tgt, min_tokens=10, budget=20, top_k=True).bind("d", 11)
    state = _fit(tmp_path / "tk", st, files)
    kept, rej = _run(st, files, state)
    lw_kept = kept.column("dsir_logw").to_numpy()
    lw_rej = np.array(
        [
            w
            for w, r in zip(rej.column("dsir_logw").to_pylist(), rej.column("reason").to_pylist())
            if r == "dsir_not_selected"
        ]
    )
    assert lw_kept.min() >= lw_rej.max()


def test_budget_larger_than_pool_keeps_all_with_warning(tmp_path):
    files, texts, _ = _pool(tmp_path)
    tgt = _write(tmp_path / "tgt.parquet", ["alpha1 alpha2"])
    st = DsirResample(target=tgt, min_tokens=10, budget=10_000, short_docs="keep").bind("d", 11)
    ctx = FitContext(
        runner=LocalTaskRunner(), state_dir=tmp_path / "st", scratch_dir=tmp_path / "sc", seed=1, node_id="d"
    )
    state = st.fit({"pool": ShardSet(files=tuple(files))}, ctx)
    assert "keeping every eligible document" in state["stats"]["warning"]
    assert ctx.warnings and "budget" in ctx.warnings[0]
    kept, rej = _run(st, files, state)
    assert kept.num_rows == len(texts) and rej is None  # short docs pass through (short_docs=keep)


def test_target_as_dag_node(tmp_path):
    files, texts, _ = _pool(tmp_path)
    tgt = _write(tmp_path / "t.parquet", ["alpha1 alpha2 alpha3"], col="body")
    st = DsirResample(target="tgt_node", min_tokens=10, budget=10).bind("d", 11)
    assert st.extra_inputs() == ["tgt_node"]
    assert st.data_inputs(["pool", "tgt_node"]) == ["pool"]
    state = _fit(tmp_path, st, files, {"tgt_node": ShardSet(files=(tgt,), text_column="body")})
    assert state["stats"]["selected_docs"] == 10 and state["stats"]["target_docs"] == 1


def test_bad_targets_and_params(tmp_path):
    files, _, _ = _pool(tmp_path)
    with pytest.raises(StageError, match="matches no Parquet files"):
        _fit(tmp_path, DsirResample(target=str(tmp_path / "nope/*.parquet"), budget=5).bind("d", 1), files)
    nocol = _write(tmp_path / "nocol.parquet", ["x"], col="body")
    with pytest.raises(StageError, match="no text column 'text'"):
        _fit(tmp_path, DsirResample(target=nocol, budget=5).bind("d", 1), files)
    empty = _write(tmp_path / "empty.parquet", [])
    with pytest.raises(StageError, match="is empty"):
        _fit(tmp_path, DsirResample(target=empty, budget=5).bind("d", 1), files)
    blank = _write(tmp_path / "blank.parquet", ["", "   "])
    with pytest.raises(StageError, match="no tokens"):
        _fit(tmp_path, DsirResample(target=blank, budget=5).bind("d", 1), files)
    with pytest.raises(StageError, match="not among the node's inputs"):
        _fit(tmp_path, DsirResample(target="ghost", budget=5).bind("d", 1), files)
    for bad, name in (
        ({"budget": 1.5, "budget_unit": "fraction"}, "budget"),
        ({"budget": 2.5}, "budget"),
        ({"budget": 5, "replacement": True}, "replacement"),
        ({"budget": 0}, "budget"),
        ({"budget": 5, "num_buckets": 0}, "num_buckets"),
        ({"budget": 5, "bogus": 1}, "bogus"),
    ):
        with pytest.raises(ValidationError, match=name):
            DsirResample(target="x.parquet", **bad)
    assert target_is_path("data/x/*.parquet") and target_is_path("t.parquet") and not target_is_path("tgt")


def test_sliced_and_chunked_arrow_inputs():
    texts = ["Alpha beta", "Ünïcode café — “x”", None, "", "a.b,c"] * 4
    col = pa.chunked_array([pa.array(texts[:7]), pa.array(texts[7:])])
    fz = HashedNgramFeaturizer()
    for a, b in ((0, 20), (3, 5), (6, 9), (11, 2)):
        part = col.slice(a, b)
        expect = [len(wordpunct_tokenize((t or "").lower())) for t in part.to_pylist()]
        assert fz.counts(part)[1].tolist() == expect
        assert (fz.counts(part)[0] == sum(get_ngram_counts_py(t or "") for t in part.to_pylist())).all()


def test_tiny_fraction_selects_nothing_with_warning(tmp_path):
    files, texts, _ = _pool(tmp_path)
    tgt = _write(tmp_path / "tgt.parquet", ["alpha1 alpha2"])
    st = DsirResample(target=tgt, min_tokens=10, budget=0.001, budget_unit="fraction").bind("d", 11)
    ctx = FitContext(
        runner=LocalTaskRunner(), state_dir=tmp_path / "st", scratch_dir=tmp_path / "sc", seed=1, node_id="d"
    )
    state = st.fit({"pool": ShardSet(files=tuple(files))}, ctx)
    assert any("rounds to 0" in w for w in ctx.warnings)
    kept, rej = _run(st, files, state)
    assert kept.num_rows == 0 and rej.num_rows == len(texts)
    import json

    json.dumps(state, allow_nan=False)  # strict JSON


def test_offline_target_counts_cli_and_stage(tmp_path):
    import json

    from typer.testing import CliRunner

    from cli.main import app

    files, _, _ = _pool(tmp_path)
    tgt = _write(tmp_path / "tgt.parquet", [" ".join(f"alpha{i}" for i in range(50))])
    r = CliRunner().invoke(app, ["dsir", "fit", tgt, "--out", str(tmp_path / "t.npz")])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["docs"] == 1
    a = DsirResample(target=tgt, min_tokens=10, budget=20).bind("d", 11)
    b = DsirResample(target=str(tmp_path / "t.npz"), min_tokens=10, budget=20).bind("d", 11)
    sa, sb = _fit(tmp_path / "a", a, files), _fit(tmp_path / "b", b, files)
    assert (
        sa["threshold_key"] == sb["threshold_key"]
        and sa["stats"]["kl_reduction"] == sb["stats"]["kl_reduction"]
    )
    with pytest.raises(StageError, match="num_buckets=10000"):
        _fit(
            tmp_path / "c",
            DsirResample(target=str(tmp_path / "t.npz"), num_buckets=500, budget=5).bind("d", 1),
            files,
        )
    with pytest.raises(StageError, match="not found"):
        _fit(tmp_path / "d", DsirResample(target=str(tmp_path / "none.npz"), budget=5).bind("d", 1), files)


def test_very_long_document():
    doc = " ".join(f"w{i % 5000}" for i in range(80_000)) + " end."
    fz = HashedNgramFeaturizer()
    counts, ntok = fz.counts(["short one", doc])
    assert ntok.tolist() == [2, 80_002]
    assert (counts == get_ngram_counts_py("short one") + get_ngram_counts_py(doc)).all()


def test_featurizer_is_safe_across_threads():
    """One featurizer shared by fit threads: its n-gram cache is per thread (the kernel
    runs without the GIL and mutates it), so concurrent counts equal sequential ones."""
    import concurrent.futures as cf

    rng = random.Random(5)
    words = [f"w{i}" for i in range(3000)]
    batches = [[" ".join(rng.choice(words) for _ in range(200)) for _ in range(50)] for _ in range(8)]
    ref = [HashedNgramFeaturizer(4096, 2).counts(b)[0] for b in batches]
    shared = HashedNgramFeaturizer(4096, 2, max_cache=1 << 12)  # small cache: it grows and resets under load
    with cf.ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda b: shared.counts(b)[0], batches * 3))
    for i, g in enumerate(got):
        assert np.array_equal(g, ref[i % len(batches)])
