"""MinHash signatures, shingling and LSH math (against datasketch's vectors)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from datasketch import MinHash

from curate.text.lsh import band_keys, candidate_probability, optimal_params, threshold
from curate.text.minhash import MinHasher, exact_jaccard, shingle_strings, words

TEXTS = [
    "The quick brown fox jumps over the lazy dog and runs into the dark forest to find food.",
    "Ünïcödé text: Straße, ﬁne CAFÉ — and numbers 3.14, 42; under_score words!",
    "short",
    "",
    "   ... !!! ",
    "one two three four",
    "A " * 300 + "end",
]


def test_datasketch_test_vectors():
    # datasketch: MinHash(4, 1).update(b"Hello")
    legacy = MinHasher(4, 1, 1, "datasketch", "legacy").signatures_of_shingles([[b"Hello"]])[0]
    assert legacy.tolist() == [734825475, 960773806, 359816889, 342714745]
    affine = MinHasher(4, 1, 1, "datasketch", "affine32").signatures_of_shingles([[b"Hello"]])[0]
    assert affine.tolist() == [3231258861, 1388533999, 831950533, 1845606703]


@pytest.mark.parametrize("variant", ["affine32", "legacy", "affine64"])
@pytest.mark.parametrize("seed,num_perm", [(1, 128), (42, 112)])
def test_bit_identical_to_datasketch(variant, seed, num_perm):
    mh = MinHasher(num_perm, 5, seed, "datasketch", variant)
    sigs = mh.signatures(TEXTS).sig
    for text, row in zip(TEXTS, sigs):
        ref = MinHash(num_perm=num_perm, seed=seed, scheme=variant)
        ref.update_batch([s.encode("utf-8") for s in shingle_strings(text, 5)])
        assert np.array_equal(np.asarray(ref.hashvalues, dtype=np.uint64), row)
    # Jaccard estimates agree too (two sentences differing in one word)
    a = "we walked for hours along the river and then went into the dark forest before night came down on us"
    b = a.replace("dark", "deep")
    s = mh.signatures([a, b]).sig
    ra, rb = (MinHash(num_perm=num_perm, seed=seed, scheme=variant) for _ in range(2))
    ra.update_batch([x.encode() for x in shingle_strings(a)])
    rb.update_batch([x.encode() for x in shingle_strings(b)])
    assert float((s[0] == s[1]).mean()) == pytest.approx(ra.jaccard(rb), abs=1e-12)
    assert exact_jaccard(a, b) == pytest.approx(11 / 21)  # 16 shingles each, 5 differ


def test_normalization_and_shingles():
    assert words("Hello, WORLD! under_score ﬁne Straße 3.14") == ["hello", "world", "under", "score", "fine",
                                                                  "straße", "3", "14"]
    assert shingle_strings("") == set() and shingle_strings(" .. !") == set()
    assert shingle_strings("one two three") == {"one two three"}  # < ngram words: one shingle
    assert len(shingle_strings("a b c d e f g")) == 3
    mh = MinHasher(16, 5, 1)
    bs = mh.signatures(TEXTS, with_sets=True)
    expect = [len(shingle_strings(t)) for t in TEXTS]
    assert bs.n_shingles.tolist() == expect
    assert bs.has_shingles.tolist() == [e > 0 for e in expect]
    # formatting-only differences give identical signatures
    s = mh.signatures(["Hello   World, this is IT.", "hello world\nthis is it"]).sig
    assert np.array_equal(s[0], s[1])


def test_fast_signatures_batch_invariant():
    mh = MinHasher(112, 5, 7)
    full = mh.signatures(TEXTS).sig
    one_by_one = np.vstack([mh.signatures([t]).sig for t in TEXTS])
    assert np.array_equal(full, one_by_one)
    assert not np.array_equal(full, MinHasher(112, 5, 8).signatures(TEXTS).sig)


def test_optimal_params_and_s_curve():
    # datasketch _optimal_param vectors
    assert optimal_params(0.8, 128) == (9, 13)
    assert optimal_params(0.7, 128) == (14, 9)
    assert optimal_params(0.9, 128) == (5, 25)
    assert optimal_params(0.8, 112) == (9, 12)
    got = [round(float(candidate_probability(s, 14, 8)), 3) for s in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85)]
    assert got == [0.053, 0.211, 0.565, 0.772, 0.924, 0.988]
    assert round(threshold(14, 8), 3) == 0.719
    assert round(float(candidate_probability(0.8, 20, 13)), 3) == 0.677


def _pair_texts(rng, n_sh: int, inter: int, tag: int) -> tuple[str, str]:
    common = [f"t{tag}c{i}" for i in range(inter)]
    a = common + [f"t{tag}a{i}" for i in range(n_sh - inter)]
    b = common + [f"t{tag}b{i}" for i in range(n_sh - inter)]
    rng.shuffle(a)
    rng.shuffle(b)
    return " ".join(a), " ".join(b)


@pytest.mark.parametrize("scheme", ["fast", "datasketch"])
def test_candidate_probability_matches_s_curve(scheme):
    """Empirical P(candidate) at several Jaccard values vs 1-(1-s^r)^b (binomial 4.5 sigma)."""
    rng = np.random.default_rng(0)
    b, r, n_sh, trials = 14, 8, 60, 300
    mh = MinHasher(b * r, 1, 3, scheme)
    for inter in (40, 46, 50, 54):  # s = 0.5, 0.62, 0.71, 0.82
        s = inter / (2 * n_sh - inter)
        texts = []
        for k in range(trials):
            texts.extend(_pair_texts(rng, n_sh, inter, k))
        keys = band_keys(mh.signatures(texts).sig, b, r)
        cand = (keys[0::2] == keys[1::2]).any(axis=1)
        p = float(candidate_probability(s, b, r))
        sd = np.sqrt(p * (1 - p) / trials)
        assert abs(cand.mean() - p) <= 4.5 * sd + 1e-3, (s, cand.mean(), p)
        # the MinHash estimate itself is unbiased
        sig = mh.signatures(texts).sig
        est = (sig[0::2] == sig[1::2]).mean()
        assert abs(est - s) < 0.02


def test_arrow_input_matches_python_strings():
    """Signatures of an Arrow string column (no Python string per ASCII document) equal
    those of the same texts as Python strings: nulls, non-ASCII, slices, chunks."""
    import pyarrow as pa

    from curate.text.minhash import MinHasher

    texts = ["Hello World, this is a test of the thing here", None, "", "Ünïcode ﬁne text Straße İstanbul word",
             "ascii again with some more words in it ok", "x", "ΑΒΓ δέλτα — ελληνικά κείμενα εδώ πάνω"]
    for scheme in ("fast", "datasketch"):
        mh = MinHasher(64, 5, 3, scheme)
        ref = mh.signatures(texts, with_sets=True)
        arrays = [pa.array(texts), pa.array(texts, pa.large_string()),
                  pa.chunked_array([pa.array(texts[:2]), pa.array(texts[2:])])]
        for arr in arrays:
            got = mh.signatures(arr, with_sets=True)
            assert np.array_equal(ref.sig, got.sig) and np.array_equal(ref.has_shingles, got.has_shingles)
            assert np.array_equal(ref.set_values, got.set_values)
            assert np.array_equal(ref.set_offsets, got.set_offsets)
        part = mh.signatures(pa.array(texts).slice(2, 3), with_sets=True)
        assert np.array_equal(part.sig, mh.signatures(texts[2:5]).sig)


def test_permutation_kernel_matches_a_plain_reference():
    """The kernel takes shingles four at a time: every remainder (0-3 left over, empty
    documents included) gives the plain per-shingle minimum of ``a*h + b mod 2^64``."""
    from curate.text.minhash import _minhash_affine64

    rng = np.random.default_rng(7)
    lens = np.array([0, 1, 2, 3, 4, 5, 7, 8, 9, 31, 0, 64])
    off = np.zeros(len(lens) + 1, np.int64)
    np.cumsum(lens, out=off[1:])
    hv = rng.integers(0, 2**64, off[-1], dtype=np.uint64, endpoint=False)
    mh = MinHasher(112, 5, 3)
    got = _minhash_affine64(hv, off, mh.a, mh.b)
    for d in range(len(lens)):
        seg = hv[off[d]:off[d + 1]]
        want = (np.full(112, 2**64 - 1, np.uint64) if len(seg) == 0 else
                (mh.a[None, :] * seg[:, None] + mh.b[None, :]).min(axis=0))
        assert np.array_equal(got[d], want), d


@pytest.mark.parametrize("scheme", ["fast", "datasketch"])
def test_distinct_shingle_counts_equal_the_set_sizes(scheme):
    texts = ["a b c d e a b c d e a b c d e", "", "one two", "x y z w v u " * 40, "punct !! only ..", None]
    mh = MinHasher(16, 5, 2, scheme)
    counted = mh.signatures(texts, count_unique=True).n_shingles
    sets = mh.signatures(texts, with_sets=True)
    assert counted.tolist() == np.diff(sets.set_offsets).tolist() == [5, 0, 1, 6, 1, 0]


def test_kernel_lowercase_equals_python_lower():
    """The kernel lowercases code points through a table; texts with a context-dependent
    lowercase (capital sigma, dotted capital I) are lowercased by Python first. Either way
    the shingle hashes are those of ``NFKC(text).lower()``."""
    import unicodedata

    from curate.text.minhash import _shingle_hashes, word_table

    texts = ["ΣΊΣΥΦΟΣ ΟΔΟΣ Σ a b c", "İstanbul İİ iİ x y z w", "Straße STRASSE ß ẞ one two three",
             "ǅemal Ǆ ǆ ＡＢＣ ﬁne ①② x", "Привет МИР Ёж и ещё раз", "Ⅻ ⅻ ℌ 𝐀𝐁𝐂 𐐀𐐨 É é a\u0301",
             "mixed ASCII and Ünïcödé words here", "", None]
    mh = MinHasher(8, 2, 1)
    parts = [b"" if t is None else unicodedata.normalize("NFKC", t).lower().encode("utf-8", "surrogatepass")
             for t in texts]
    off = np.zeros(len(parts) + 1, np.int64)
    np.cumsum([len(p) for p in parts], out=off[1:])
    identity = np.arange(0x110000, dtype=np.int32)
    want = _shingle_hashes(np.frombuffer(b"".join(parts), np.uint8), off, 2, mh.hash_seed, word_table(), identity)
    for got in (mh.fast_shingle_hashes(texts), mh.fast_shingle_hashes(pa.array(texts, pa.string()))):
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert len(want[0]) > 30
