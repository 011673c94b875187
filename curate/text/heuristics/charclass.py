"""Character classes of every code point, as bit flags the numba kernels read.

The table is shipped as run-length data (``curate/data/heuristic_classes.json``) generated
by :func:`generate_class_runs` (``scripts/make_heuristic_tables.py``), so the signals never
depend on the Unicode tables of the Python that runs them.

Flags (``uint16``):

* ``SPACE``: ``str.isspace`` (what ``str.split()`` / ``str.strip()`` split and strip on);
* ``ALPHA``: ``str.isalpha``; ``LOWER``: a letter that is not uppercase (lowercase, or of a
  script without case); ``UPPER``: a letter that is not lowercase (uppercase or uncased);
* ``DIGIT``: ASCII ``0-9``;
* ``SYMBOL``: Unicode category P* (punctuation), S* (symbols) or Cc (controls): a token made
  only of these is a *symbol token*, not a word (Gopher's "non-symbol words");
* ``PUNCT``: category P* (a token made only of these is punctuation for sentence splitting);
* ``STERM``: the Unicode ``Sentence_Terminal`` property (``.``, ``!``, ``?``, ``。``, ``।`` ...);
* ``NOSPACE``: letters of scripts written without spaces between words (Han, Hiragana,
  Katakana, Thai, Lao, Khmer, Myanmar, Tibetan);
* ``AFFIX``: punctuation split off the start or end of a word (brackets, ``,;:!?``, ``#*&_``,
  CJK punctuation ...); ``QUOTE``: quotation marks; ``ICON``: category So; ``CURRENCY``:
  category Sc; ``HYPHEN``: ``- – — ~``;
* ``LINEBREAK``: the boundaries of ``str.splitlines``;
* ``INFIX``: characters a word may split at (``. … , : < > = / + - * ^``, hyphens, icons).
"""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import numpy as np

from curate.text.code_point_table import table_from_runs

SPACE, ALPHA, LOWER, UPPER, DIGIT, SYMBOL, PUNCT, STERM = 1, 2, 4, 8, 16, 32, 64, 128
NOSPACE, AFFIX, QUOTE, ICON, CURRENCY = 256, 512, 1024, 2048, 4096
HYPHEN, LINEBREAK, INFIX = 8192, 16384, 32768

FLAG_NAMES = {
    "SPACE": SPACE, "ALPHA": ALPHA, "LOWER": LOWER, "UPPER": UPPER, "DIGIT": DIGIT, "SYMBOL": SYMBOL,
    "PUNCT": PUNCT, "STERM": STERM, "NOSPACE": NOSPACE, "AFFIX": AFFIX, "QUOTE": QUOTE, "ICON": ICON,
    "CURRENCY": CURRENCY, "HYPHEN": HYPHEN, "LINEBREAK": LINEBREAK, "INFIX": INFIX,
}

# punctuation split off either end of a word (besides quotes, icons and the dot rules)
AFFIX_CHARS = "…,:;!?¿¡()[]{}<>_#*&。？！，、；：～·।،۔؛٪؟"
QUOTE_CHARS = "'\"”“`‘´’‚„»«「」『』（）〔〕【】《》〈〉⟦⟧"
HYPHEN_CHARS = "-–—~"
INFIX_CHARS = ".…,:<>=/+-*^–—~"
LINEBREAK_CHARS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"
# scripts written without spaces between words: (first, last) code point of each block
NOSPACE_BLOCKS = [
    (0x0E00, 0x0E7F),  # Thai
    (0x0E80, 0x0EFF),  # Lao
    (0x0F00, 0x0FFF),  # Tibetan
    (0x1000, 0x109F),  # Myanmar
    (0x1780, 0x17FF),  # Khmer
    (0x19E0, 0x19FF),  # Khmer symbols
    (0x2E80, 0x2FDF),  # CJK radicals
    (0x3040, 0x309F),  # Hiragana
    (0x30A0, 0x30FF),  # Katakana
    (0x3400, 0x4DBF),  # CJK extension A
    (0x4E00, 0x9FFF),  # CJK unified ideographs
    (0xF900, 0xFAFF),  # CJK compatibility ideographs
    (0xFF66, 0xFF9F),  # halfwidth Katakana
    (0x20000, 0x323AF),  # CJK extensions B-H, compatibility supplement
]

_DATA = Path(__file__).resolve().parents[2] / "data" / "heuristic_classes.json"
_TABLE: np.ndarray | None = None


def _flags_of(cp: int, sterm: set[int]) -> int:
    ch = chr(cp)
    cat = unicodedata.category(ch)
    f = 0
    if ch.isspace():
        f |= SPACE
    if ch.isalpha():
        f |= ALPHA
    if ch.isalpha() and not ch.isupper():
        f |= LOWER
    if ch.isalpha() and not ch.islower():
        f |= UPPER
    if "0" <= ch <= "9":
        f |= DIGIT
    if cat[0] in "PS" or cat == "Cc":
        f |= SYMBOL
    if cat[0] == "P":
        f |= PUNCT
    if cp in sterm:
        f |= STERM
    if (ch.isalpha() or cat[0] == "M") and any(lo <= cp <= hi for lo, hi in NOSPACE_BLOCKS):
        f |= NOSPACE
    if ch in AFFIX_CHARS:
        f |= AFFIX
    if ch in QUOTE_CHARS:
        f |= QUOTE
    if cat == "So":
        f |= ICON
    if cat == "Sc":
        f |= CURRENCY
    if ch in HYPHEN_CHARS:
        f |= HYPHEN
    if ch in LINEBREAK_CHARS:
        f |= LINEBREAK
    if ch in INFIX_CHARS or cat == "So":
        f |= INFIX
    return f


def generate_class_runs() -> dict:
    """Build the run-length flag data from this Python's ``unicodedata`` and the `regex`
    module's ``Sentence_Terminal`` property (maintenance only)."""
    import regex  # optional, maintenance only

    pat = regex.compile(r"\p{Sentence_Terminal}")
    cps = [c for c in range(sys.maxunicode + 1) if not 0xD800 <= c <= 0xDFFF]
    sterm = {c for c in cps if pat.match(chr(c))}
    runs: list[list[int]] = []
    prev = -1
    for cp in range(sys.maxunicode + 1):
        f = 0 if 0xD800 <= cp <= 0xDFFF else _flags_of(cp, sterm)
        if f != prev:
            runs.append([cp, f])
            prev = f
    return {
        "source": f"unicodedata {unicodedata.unidata_version}, regex {regex.__version__} (Sentence_Terminal)",
        "flags": FLAG_NAMES,
        "runs": runs,
    }


def class_table() -> np.ndarray:
    """``uint16`` flags per code point (0 .. sys.maxunicode)."""
    global _TABLE
    if _TABLE is None:
        _TABLE = table_from_runs(_DATA, np.uint16)
    return _TABLE
