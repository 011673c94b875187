"""CCNet normalization and document perplexity (:mod:`curate.text.ccnet`, Wenzek et al. 2019)."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pytest

from curate.text import ccnet

# A hand-made bigram ARPA model.
BIGRAM_ARPA = """
\\data\\
ngram 1=5
ngram 2=3

\\1-grams:
-1.0\t<unk>
-99\t<s>\t-0.30103
-0.69897\t</s>
-0.52288\ta\t-0.17609
-0.52288\tb\t-0.17609

\\2-grams:
-0.09691\t<s> a
-0.30103\ta b
-0.15490\tb </s>

\\end\\
"""

TOY0_CORPUS = ["a a b a", "b a a b"]


def _reference_normalize(line: str) -> str:
    """Straightforward per-character transcription of :func:`ccnet.normalize`'s rules (the oracle for the
    fast path)."""
    import re

    line = line.strip()
    if not line:
        return line
    line = line.lower()
    line = "".join(c for c in unicodedata.normalize("NFD", line) if unicodedata.category(c) != "Mn")
    line = re.sub(r"\d", "0", line)
    line = "".join(ccnet.UNICODE_PUNCT.get(c, c) for c in line)
    return "".join(c for c in line if not (ord(c) < 32 or 127 <= ord(c) < 160))


def test_normalizer_reference_vectors():
    assert ccnet.replace_unicode_punct("，。、„”“«»１」「《》´∶：？！（）；–—．～’…━〈〉【】％") == (
        ',.,""""""""""\'::?!();- - . ~\'...-<>[]%'
    )
    assert ccnet.normalize("０２３４５６７８９ | 0123456789", numbers=True) == "000000000 | 0000000000"
    assert ccnet.normalize_for_dedup("０２３´∶：\x10 | ;012 hèllo") == "000 | ;000 hèllo"
    assert ccnet.normalize("Hello World!\nThe year 2019 — café “quoted”.\tTab") == (
        'hello world!the year 0000  -  cafe "quoted".tab'
    )
    assert ccnet.normalize("  Ünïcödé 123 ，。 ") == "unicode 000 ,."
    assert ccnet.normalize("   \n\t ") == ""
    assert len(ccnet.UNICODE_PUNCT) == 34


def test_fast_paths_match_straightforward_transcription():
    rng = random.Random(3)
    alphabet = list("aBc Z09\t\n\x00\x7f\x85.,!") + [
        "é",
        "Ü",
        "٣",
        "—",
        "“",
        "，",
        "…",
        "\u0301",
        "ß",
        "İ",
        "Ⅻ",
        "²",
        "日",
    ]
    texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(2000)]
    for s in texts:
        assert ccnet.normalize(s) == _reference_normalize(s), repr(s)
    assert ccnet.normalize_bytes_many(texts) == [_reference_normalize(s).encode() for s in texts]


def test_kenlm_scoring_semantics_on_hand_made_bigram(tmp_path: Path):
    import kenlm

    p = tmp_path / "bigram.arpa"
    p.write_text(BIGRAM_ARPA)
    m = kenlm.Model(str(p))
    assert m.score("a b") == pytest.approx(-0.55284, abs=1e-5)
    assert m.perplexity("a b") == pytest.approx(1.52855, abs=1e-4)
    assert m.score("b a") == pytest.approx(-2.39794, abs=1e-5)
    assert m.score("c") == pytest.approx(-2.0, abs=1e-5)
    # CCNet rounding of the same quantities
    assert ccnet.doc_perplexity(m, "A B") == 1.5
    assert ccnet.doc_perplexity(m, "c") == 10.0
    assert ccnet.doc_perplexity(m, "B  a") == 6.3


def test_ccnet_doc_perplexity_on_toy0(tmp_path: Path):
    from curate.lm import estimate

    p = tmp_path / "toy0.arpa"
    estimate(TOY0_CORPUS, 3).write_arpa(str(p))
    import kenlm

    m = kenlm.Model(str(p))
    assert m.score("a b") == pytest.approx(-1.662587, abs=1e-5)
    assert m.score("b b b") == pytest.approx(-2.985051, abs=1e-5)
    assert m.score("c a") == pytest.approx(-2.260375, abs=1e-5)
    s, n = ccnet.lines_log10(m, ["a b", "a a b a"])
    assert s == pytest.approx(-3.1101556, abs=1e-5) and n == 8
    assert 10 ** (-s / n) == pytest.approx(2.447763, abs=1e-5)
    assert ccnet.doc_perplexity(m, "a b\na a b a", mode="per_line") == 2.4
    assert ccnet.doc_perplexity(m, "a b a a b a") == 2.5
    # faithful mode deletes the newline (words glue together), exactly like CCNet
    assert ccnet.prepare_lines("a b\na a b a") == ["a ba a b a"]
