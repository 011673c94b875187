"""Heuristic quality signals of a batch of documents: names, definitions, computation.

:data:`SIGNALS` names every column ``quality_signals`` adds, with its definition (the
README's table is generated from the same text). The definitions follow datatrove 0.10.1's
``GopherQualityFilter``, ``GopherRepetitionFilter``, ``C4QualityFilter`` and
``FineWebQualityFilter``; "words" are the tokens of :mod:`curate.text.heuristics.words`
(punctuation tokens included), lengths are in characters (code points), and a ratio whose
denominator is zero is 0.0 (so an empty document has every signal 0).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curate.text.heuristics import kernel as K
from curate.text.heuristics.charclass import class_table
from curate.text.heuristics.stopwords import StopwordTables
from curate.text.heuristics.words import special_table, split_mode, unit_table


@dataclass(frozen=True)
class Signal:
    name: str
    index: int
    family: str
    definition: str
    integer: bool = False


_DEFS: list[tuple[str, int, str, str, bool]] = [
    ("qs_gopher_word_count", K.WORD_COUNT, "gopher_quality",
     "words with at least one character that is not punctuation, a symbol or a control character", True),
    ("qs_gopher_mean_word_length", K.MEAN_WORD_LENGTH, "gopher_quality",
     "mean length of those words (characters)", False),
    ("qs_gopher_hash_word_ratio", K.HASH_RATIO, "gopher_quality",
     "count of `#` / all words (punctuation tokens included)", False),
    ("qs_gopher_ellipsis_word_ratio", K.ELLIPSIS_RATIO, "gopher_quality",
     "(count of `...` + count of `…`) / all words", False),
    ("qs_gopher_bullet_line_frac", K.BULLET_LINES, "gopher_quality",
     "fraction of lines (`str.splitlines`) whose first non-space character is `•` or `-`", False),
    ("qs_gopher_ellipsis_line_frac", K.ELLIPSIS_LINES, "gopher_quality",
     "fraction of lines that end (before trailing spaces) in `...` or `…`", False),
    ("qs_gopher_alpha_word_frac", K.ALPHA_WORDS, "gopher_quality",
     "fraction of all words that contain an alphabetic character", False),
    ("qs_gopher_stop_word_count", K.STOP_WORDS, "gopher_quality",
     ("distinct stop words of the document's language among its words (case-sensitive; for languages "
      "split per character: distinct stop words occurring anywhere in the text)"), True),
    ("qs_gopher_dup_line_frac", K.DUP_LINE, "gopher_repetition",
     "lines (split on runs of `\\n`) equal to an earlier line / lines", False),
    ("qs_gopher_dup_para_frac", K.DUP_PARA, "gopher_repetition",
     "paragraphs (the stripped text split on 2+ `\\n`) equal to an earlier one / paragraphs", False),
    ("qs_gopher_dup_line_char_frac", K.DUP_LINE_CHAR, "gopher_repetition",
     "characters in those duplicate lines / characters of the text", False),
    ("qs_gopher_dup_para_char_frac", K.DUP_PARA_CHAR, "gopher_repetition",
     "characters in those duplicate paragraphs / characters of the text", False),
]
for _g in (2, 3, 4):
    _DEFS.append((f"qs_gopher_top_{_g}gram_char_frac", K.TOP2 + _g - 2, "gopher_repetition",
                  (f"characters of the most frequent word {_g}-gram (words joined by spaces; the first "
                   f"seen among equally frequent ones) x its count / characters of the text"), False))
for _g in range(5, 11):
    _DEFS.append((f"qs_gopher_dup_{_g}gram_char_frac", K.DUP5 + _g - 5, "gopher_repetition",
                  (f"characters (words concatenated) of word {_g}-grams seen before, scanning left to right "
                   f"and jumping past each repeat / characters of the text"), False))
_DEFS += [
    ("qs_c4_terminal_punct_line_frac", K.C4_TERMINAL_LINES, "c4",
     ("fraction of lines (`str.splitlines`) that, stripped and without citations like `[1]`, end in "
      "`. ? ! \" '` but not `...` (lines with a word over 1000 characters count as not ending so)"), False),
    ("qs_c4_sentence_count", K.C4_SENTENCES, "c4",
     ("sentences (spaCy sentencizer rule) in the lines C4 keeps: terminal punctuation, 3+ words, no "
      "`javascript`, no policy phrase"), True),
    ("qs_c4_javascript_lines", K.C4_JAVASCRIPT, "c4",
     "lines C4 would keep otherwise that contain `javascript` (any case)", True),
    ("qs_c4_lorem_ipsum_lines", K.C4_LOREM, "c4",
     "lines C4 would keep otherwise that contain `lorem ipsum` (any case)", True),
    ("qs_c4_curly_brace_lines", K.C4_CURLY, "c4",
     "lines C4 would keep otherwise (no lorem ipsum, no javascript) that contain `{`", True),
    ("qs_c4_policy_lines", K.C4_POLICY, "c4",
     ("lines C4 would keep otherwise that contain a policy phrase (`terms of use`, `privacy policy`, "
      "`cookie policy`, `uses cookies`, `use of cookies`, `use cookies`)"), True),
    ("qs_fineweb_line_punct_ratio", K.FW_LINE_PUNCT, "fineweb",
     ("fraction of non-blank lines (split on `\\n`) whose last character is a sentence terminal "
      "(Unicode Sentence_Terminal)"), False),
    ("qs_fineweb_short_line_ratio", K.FW_SHORT_LINES, "fineweb",
     "fraction of non-blank lines of at most 30 characters", False),
    ("qs_fineweb_char_dup_ratio", K.FW_CHAR_DUP, "fineweb",
     "characters of non-blank lines equal to an earlier one / characters of the text without `\\n`", False),
    ("qs_fineweb_list_ratio", K.FW_LIST_RATIO, "fineweb", "count of `\\n` / all words", False),
    ("qs_fineweb_nonempty_lines", K.FW_LINES, "fineweb", "non-blank lines (split on `\\n`)", True),
]

SIGNALS: dict[str, Signal] = {n: Signal(n, i, fam, d, integer) for n, i, fam, d, integer in _DEFS}
FAMILIES = ("gopher_quality", "gopher_repetition", "c4", "fineweb")
assert sorted(s.index for s in SIGNALS.values()) == list(range(K.NUM_SIGNALS))

_PHRASES = K.phrase_table(["lorem ipsum", "javascript"] + K.POLICY_PHRASES)


def text_buffers(texts: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """UTF-8 bytes and int64 offsets of a string column (nulls as empty strings)."""
    arr = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    if not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.large_string())
    if arr.null_count:
        arr = pc.fill_null(arr, "")
    bufs = arr.buffers()
    offs = np.frombuffer(bufs[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    base = int(offs[0]) if len(offs) else 0
    return data[base : int(offs[-1]) if len(offs) else 0], (offs - base).astype(np.int64)


@dataclass
class SignalBatch:
    values: np.ndarray  # (n_docs, NUM_SIGNALS)
    stopword_language: list[str]  # per document: the list used ("" for none)
    fallback: np.ndarray  # bool per document: its language had no list of its own

    def column(self, name: str) -> np.ndarray:
        sig = SIGNALS[name]
        col = self.values[:, sig.index]
        return col.astype(np.int64) if sig.integer else col


def compute_signals(
    texts: pa.Array | pa.ChunkedArray,
    languages: pa.Array | pa.ChunkedArray | None,
    stopwords: StopwordTables,
) -> SignalBatch:
    """Every signal of every document. ``languages`` (or None: all the default language)
    picks each document's word splitter and stop-word list."""
    n = len(texts)
    if languages is None:
        langs = pa.array([None] * n, pa.string())
    else:
        langs = languages.combine_chunks() if isinstance(languages, pa.ChunkedArray) else languages
        langs = langs.cast(pa.string())
    enc = pc.dictionary_encode(langs)
    values = enc.dictionary.to_pylist()
    idx = pc.fill_null(enc.indices, len(values)).to_numpy(zero_copy_only=False).astype(np.int64)
    values = values + [None]
    table_of = [stopwords.index(v) for v in values]
    used = [stopwords.names[t] for t in table_of]
    falls = np.array([stopwords.is_fallback(v) for v in values], dtype=bool)
    mode_of = np.array([split_mode(v or stopwords.default) for v in values], dtype=np.uint8)
    data, offsets = text_buffers(texts)
    out = K.batch_signals(
        data, offsets, mode_of[idx], np.array(table_of, dtype=np.int64)[idx], class_table(), _SPECIALS,
        _SPECIAL_FILTER, _UNITS, _PHRASES, stopwords.offsets, stopwords.hashes, stopwords.cp_offsets, stopwords.cps,
    )
    return SignalBatch(out, [used[i] for i in idx], falls[idx])


_SPECIALS, _SPECIAL_FILTER = special_table()
_UNITS = unit_table()
