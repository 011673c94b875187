"""Tests for curate.testing.textgen: deterministic real-looking text."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pytest

from curate.testing import textgen as tg


def _shingles(text: str, k: int = 5) -> set[tuple[str, ...]]:
    w = text.split()
    return {tuple(w[i : i + k]) for i in range(max(0, len(w) - k + 1))}


def _jaccard(a: str, b: str) -> float:
    sa, sb = _shingles(a), _shingles(b)
    return len(sa & sb) / len(sa | sb)


GENERATORS = [tg.prose_paragraphs, tg.boilerplate, tg.spam, tg.shuffled]


@pytest.mark.parametrize("gen", GENERATORS, ids=lambda g: g.__name__)
def test_generators_deterministic_and_seed_dependent(gen):
    a = gen(20, 7)
    assert a == gen(20, 7)
    assert a != gen(20, 8)
    assert len(a) == 20
    assert all(isinstance(t, str) and t.strip() for t in a)


@pytest.mark.parametrize("domain", tg.DOMAINS)
def test_domain_texts_deterministic_non_empty(domain):
    a = tg.domain_texts(domain, 15, 3)
    assert a == tg.domain_texts(domain, 15, 3)
    assert a != tg.domain_texts(domain, 15, 4)
    assert len(a) == 15 and all(len(t.strip()) >= 150 for t in a)
    recs = tg.domain_records(domain, 15, 3)
    assert [t for _, t in recs] == a
    assert all(re.match(r"^(stdlib|site-packages|python):\S+$", s) for s, _ in recs)


def test_prose_paragraph_shape():
    paras = tg.prose_paragraphs(200, 0)
    lengths = np.array([len(p) for p in paras])
    assert lengths.min() >= 250 and lengths.max() <= 2500
    assert np.median(lengths) >= 300
    for p in paras:
        assert "\n" not in p  # one paragraph
        assert p[0].isupper() and p.endswith(".")
        assert p.count(". ") >= 1  # several sentences
        assert ">>>" not in p


def test_many_documents_beyond_source_pool_are_mostly_distinct():
    # More documents than there are source blocks: later ones are seeded compositions.
    n = 3000
    paras = tg.prose_paragraphs(n, 1)
    assert len(paras) == n
    assert len(set(paras)) >= 0.99 * n
    legal = tg.domain_texts("legal", 600, 1)
    assert len(set(legal)) >= 0.9 * 600


def test_junk_shapes():
    bp = tg.boilerplate(50, 0)
    assert any(" | " in t for t in bp)
    assert any("All rights reserved" in t or "All Rights Reserved" in t for t in bp)
    assert all(len(t) < 3000 for t in bp)
    sp = tg.spam(50, 0)
    for t in sp:
        assert 150 <= len(t) <= 1700
        words = Counter(t.lower().split())
        # keyword stuffing: the most common word is a large share of the text
        assert words.most_common(1)[0][1] / sum(words.values()) > 0.08
    # shuffled = same bag of words as the prose with the same seed, different order
    sh = tg.shuffled(30, 5)
    pr = tg.prose_paragraphs(30, 5)
    for s, p in zip(sh, pr):
        assert sorted(s.split()) == sorted(p.split())
    assert sum(s != p for s, p in zip(sh, pr)) >= 29


def _tokens(text: str) -> list[str]:
    return re.findall(r"[a-z_]+|[^\sa-z0-9]", text.lower())


def test_domains_distinguishable_by_vocabulary():
    """A nearest-centroid bag-of-words classifier trained on one seed classifies
    documents drawn with another seed with high accuracy."""
    train = {d: tg.domain_texts(d, 120, 11) for d in tg.DOMAINS}

    def vec(text: str) -> dict[str, float]:
        v = {w: float(np.log1p(c)) for w, c in Counter(_tokens(text)).items()}
        norm = float(np.sqrt(sum(x * x for x in v.values()))) or 1.0
        return {w: x / norm for w, x in v.items()}

    cent: dict[str, dict[str, float]] = {}
    for d, docs in train.items():
        acc: Counter = Counter()
        for t in docs:
            acc.update(vec(t))
        norm = float(np.sqrt(sum(x * x for x in acc.values())))
        cent[d] = {w: x / norm for w, x in acc.items()}
    correct = total = 0
    train_set = {t for docs in train.values() for t in docs}
    for d in tg.DOMAINS:
        for t in tg.domain_texts(d, 200, 99):
            if t in train_set:
                continue
            v = vec(t)
            pred = max(cent, key=lambda k: sum(x * cent[k].get(w, 0.0) for w, x in v.items()))
            correct += pred == d
            total += 1
    assert total >= 200
    assert correct / total >= 0.93, correct / total


@pytest.mark.parametrize("kind", tg.NEAR_DUP_KINDS)
def test_near_duplicate_kinds(kind):
    docs = tg.domain_texts("prose", 20, 2)
    sims = []
    for i, d in enumerate(docs):
        m = tg.near_duplicate(d, i, kind)
        assert m == tg.near_duplicate(d, i, kind)
        assert m != d
        sims.append(_jaccard(d, m))
    assert min(sims) >= 0.7
    assert float(np.median(sims)) >= 0.8
    if kind == "rewrap":
        assert all(s == 1.0 for s in sims)  # same words, different line breaks


def test_near_duplicate_bad_kind():
    with pytest.raises(ValueError, match="near-duplicate kind"):
        tg.near_duplicate("some text here", 0, "nope")
    with pytest.raises(ValueError, match="unknown domain"):
        tg.domain_texts("nope", 1, 0)


def test_wrap_with_boilerplate_keeps_text():
    doc = tg.prose_paragraphs(1, 0)[0]
    w = tg.wrap_with_boilerplate(doc, 3)
    assert doc in w and len(w) > len(doc) and " | " in w.splitlines()[0]
