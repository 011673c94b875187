"""Language-aware word splitting, in numba, over code point arrays.

Three modes, picked per document from its language (:func:`split_mode`):

* **spaced** (every language written with spaces): whitespace separates chunks; each chunk
  is split the way datatrove's English word tokenizer (a blank spaCy pipeline) splits it:
  punctuation, quotes, symbols and currency signs come off either end one at a time (a run
  of dots as one token), ``'s`` and a final ``.`` after a lowercase letter, a digit,
  punctuation or two capitals come off the end, contractions split (``do`` + ``n't``,
  ``we`` + ``'ll``), and a chunk splits inside at dot runs, symbols, hyphens between
  letters, ``,`` between letters, ``.`` between a lowercase and an uppercase letter, ``+-*^``
  between digits and ``:<>=/`` between a letter or digit and a letter. URLs, e-mail
  addresses, domain-like names (``example.com``, ``setup.py``) and emoticons stay whole.
* **English** is spaced mode plus spaCy's English special cases: contractions split
  (``do`` + ``n't``, ``we`` + ``'ll``, ``cannot`` -> ``can`` + ``not``) and English
  abbreviations (``e.g.``, ``Mr.``, ``Jan.``, single letters with a dot) stay whole. Other
  spaced languages keep only the language-neutral ones (emoticons, ``''``).
* **per-character** (Chinese, Japanese, Thai, Lao, Khmer, Myanmar, Tibetan: scripts without
  spaces between words): every letter (or mark) of those scripts is a token of its own; runs
  of other characters (Latin words, numbers, punctuation) are split as in spaced mode. This
  is a documented fallback: it needs no dictionary segmenter (datatrove uses spaCy with
  jieba / SudachiPy, or pythainlp), so word counts and word lengths of these languages are
  character counts, and calibrated thresholds (``curate calibrate``) absorb the difference.

Tokens never contain whitespace; every non-space character is in exactly one token.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from curate.text.heuristics.charclass import (
    AFFIX,
    ALPHA,
    CURRENCY,
    DIGIT,
    HYPHEN,
    ICON,
    INFIX,
    LOWER,
    NOSPACE,
    QUOTE,
    SPACE,
    UPPER,
)

SPACED, PER_CHAR, ENGLISH = 0, 1, 2

# ISO 639 codes (as lid.176 emits them) of languages split per character
PER_CHAR_LANGUAGES = frozenset({"zh", "ja", "th", "lo", "km", "my", "bo", "wuu", "yue"})

# Chunks spaCy's tokenizer treats as special cases: kept whole (emoticons in every language;
# in English also abbreviations that end in a dot) or, in English, split in two at a fixed
# place (contractions without an apostrophe). Contractions with one (do|n't, we|'ll) follow
# the rule in _contraction.
def _ws(s: str) -> list[str]:
    return s.split()


EMOTICONS = _ws(
    "'' ’’ :) :-) :)) :( :-( :(( ): )-: (: (-: ;) ;-) (; :D :P :p xD :* :-* :] :-] [: [-: :} :-} "
    ":/ :-/ =/ :| :-| =| :> :-> :') :'( =) =( (= =] =[ [= ]= <3 ^_^ ^__^ -_- -__- @_@ >.< <.< >.> "
    "._. ;_; 8)"
)
ABBREVIATIONS = [f"{c}." for c in "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"] + _ws(
    "e.g. i.e. E.g. I.e. a.m. p.m. Mr. Mrs. Ms. Dr. St. vs. v. Inc. Ltd. Co. Corp. Jr. Mt. Prof. Gen. "
    "Gov. Rep. Sen. Rev. Bros. Messrs. Adm. Jan. Feb. Mar. Apr. Jun. Jul. Aug. Sep. Sept. Oct. Nov. "
    "Dec. Ala. Ariz. Ark. Calif. Colo. Conn. Del. Fla. Ga. Ill. Ind. Kan. Ky. La. Md. Mass. Mich. "
    "Minn. Miss. Mo. Neb. Nev. Okla. Ore. Pa. Tenn. Va. Wash. Wis. and/or 's 'S ’s ’S 'd 'm 'll 're "
    "'ve n't"
)
SPLIT_SPECIALS = {  # English only: chunk -> length of its first token
    "cannot": 3, "gonna": 3, "gotta": 3, "cant": 2, "wont": 2, "aint": 2, "dont": 2, "didnt": 3,
    "doesnt": 4, "isnt": 2, "wasnt": 3, "arent": 3, "werent": 4, "couldnt": 5, "wouldnt": 5,
    "shouldnt": 6, "havent": 4, "hasnt": 3, "hadnt": 3, "mustnt": 4, "im": 1, "id": 1, "ive": 1,
    "youre": 3, "youve": 3, "youll": 3, "youd": 3, "theyre": 4, "theyve": 4, "theyll": 4, "theyd": 4,
    "weve": 2, "wed": 2, "itll": 2, "itd": 2, "thats": 4, "whats": 4, "hes": 2, "shes": 3, "yall": 1,
    "couldve": 5, "wouldve": 5, "shouldve": 6, "theres": 5, "whos": 3, "wheres": 5,
}

# unit symbols split off a number ("10km" -> "10" "km"), longest match first
UNITS = _ws(
    "km m dm cm mm ha nm yd in ft kg g mg t lb oz m/s km/h kmh mph hPa Pa mbar mb MB kb KB gb GB tb TB "
    "T G M K %"
)

HASH_BASE = np.uint64(0x100000001B3 * 2 + 1)  # odd 64-bit multiplier of the polynomial hashes


PER_CHAR_SCRIPTS = frozenset({"Hani", "Hans", "Hant", "Jpan", "Hira", "Kana", "Thai", "Laoo", "Khmr", "Mymr",
                              "Tibt"})
PER_CHAR_ISO3 = frozenset({"cmn", "zho", "jpn", "tha", "lao", "khm", "mya", "bod", "yue", "wuu", "lzh"})


def split_mode(language: str | None) -> int:
    """``PER_CHAR`` for languages written without spaces (lid.176 codes, or GlotLID
    ``xxx_Scrp`` codes by language or script), ``ENGLISH`` for English, else ``SPACED``."""
    if not language:
        return SPACED
    code, _, script = language.partition("_")
    if code in PER_CHAR_LANGUAGES or code in PER_CHAR_ISO3 or script in PER_CHAR_SCRIPTS:
        return PER_CHAR
    return ENGLISH if code in ("en", "eng") else SPACED


def poly_hash(cps: np.ndarray | list[int]) -> int:
    """The kernels' polynomial hash of a code point sequence (for tables built in Python)."""
    h = 0
    base = int(HASH_BASE)
    for c in cps:
        h = (h * base + int(c) + 1) & 0xFFFFFFFFFFFFFFFF
    return h


def unit_table() -> np.ndarray:
    """:data:`UNITS` as a ``(n, 5)`` int32 array: length, then code points (zero padded)."""
    out = np.zeros((len(UNITS), 5), dtype=np.int32)
    for i, u in enumerate(sorted(UNITS, key=len, reverse=True)):
        out[i, 0] = len(u)
        out[i, 1 : 1 + len(u)] = [ord(c) for c in u]
    return out


def special_table() -> tuple[np.ndarray, np.ndarray]:
    """The special cases: a sorted ``(2, n)`` uint64 array (chunk hash; length of the first
    token, 0 = kept whole, plus 256 for English-only cases; title-case forms of the split
    specials included), and a filter of the (length, first, last character) triples they
    have (characters folded to 7 bits)."""
    words = {w: ENGLISH_ONLY for w in ABBREVIATIONS}
    words.update({w: 0 for w in EMOTICONS})
    for w, k in SPLIT_SPECIALS.items():
        for form in (w, w[0].upper() + w[1:]):
            words[form] = k | ENGLISH_ONLY
    rows = {poly_hash([ord(c) for c in w]): k for w, k in words.items()}
    keys = sorted(rows)
    spf = np.zeros((MAX_SPECIAL + 1) * 128 * 128, dtype=np.uint8)
    for w in words:
        spf[_filter_slot(len(w), ord(w[0]), ord(w[-1]))] = 1
    return np.array([keys, [rows[h] for h in keys]], dtype=np.uint64), spf


MAX_SPECIAL = 10  # the longest special case
ENGLISH_ONLY = 256


@nb.njit(cache=True, inline="always")
def _filter_slot(n, first, last):
    return (n * 128 + (first & 127)) * 128 + (last & 127)


@nb.njit(cache=True, inline="always")
def _hash(cp, a, b):
    h = np.uint64(0)
    for i in range(a, b):
        h = h * HASH_BASE + np.uint64(cp[i] + 1)
    return h


@nb.njit(cache=True)
def sorted_find(arr, h):
    """Index of ``h`` in the sorted array ``arr``, or -1."""
    lo, hi = 0, arr.shape[0]
    while lo < hi:
        mid = (lo + hi) >> 1
        if arr[mid] < h:
            lo = mid + 1
        else:
            hi = mid
    return lo if lo < arr.shape[0] and arr[lo] == h else -1


@nb.njit(cache=True)
def _contraction(cp, a, b, cls):
    """Length of a contraction ending ``[a, b)`` (n't, 'll, 're, 've, 'd, 'm after letters
    only), else 0."""
    n = b - a
    k = 0
    if n >= 4 and cp[b - 1] == 116 and (cp[b - 2] == 39 or cp[b - 2] == 0x2019) and cp[b - 3] == 110:
        k = 3  # n't
    elif n >= 4 and (cp[b - 3] == 39 or cp[b - 3] == 0x2019) and (
        (cp[b - 2] == 108 and cp[b - 1] == 108)
        or (cp[b - 2] == 114 and cp[b - 1] == 101)
        or (cp[b - 2] == 118 and cp[b - 1] == 101)
    ):
        k = 3  # 'll 're 've
    elif n >= 3 and (cp[b - 2] == 39 or cp[b - 2] == 0x2019) and (cp[b - 1] == 100 or cp[b - 1] == 109):
        k = 2  # 'd 'm
    if k == 0:
        return 0
    for i in range(a, b - k):
        if not cls[cp[i]] & ALPHA:
            return 0
    return k


@nb.njit(cache=True, inline="always")
def _special(cp, a, b, cls, exc, spf, mode):
    """0: not special; 1: keep whole (abbreviation, emoticon); k + 1: split in two, the
    second token ``k`` long."""
    if b - a <= MAX_SPECIAL and spf[_filter_slot(b - a, cp[a], cp[b - 1])]:
        j = sorted_find(exc[0], _hash(cp, a, b))
        if j >= 0:
            v = np.int64(exc[1, j])
            if v < ENGLISH_ONLY or mode == ENGLISH:
                first = v & (ENGLISH_ONLY - 1)
                return 1 if first == 0 else (b - a - first) + 1
    if mode != ENGLISH:
        return 0
    k = _contraction(cp, a, b, cls)
    return k + 1 if k else 0


@nb.njit(cache=True)
def _prefix_len(cp, a, b, cls):
    c = cp[a]
    f = cls[c]
    if c == 46:  # '.'
        j = a
        while j < b and cp[j] == 46:
            j += 1
        return j - a if j - a >= 2 else 0
    if f & (AFFIX | QUOTE | CURRENCY | ICON):
        return 1
    if c == 0xA7 or c == 37 or c == 61 or c == 0x2014 or c == 0x2013:  # § % = — –
        return 1
    if c == 43 and not (a + 1 < b and cls[cp[a + 1]] & DIGIT):  # '+' not before a digit
        return 1
    return 0


@nb.njit(cache=True)
def _suffix_len(cp, a, b, cls, units):
    c = cp[b - 1]
    f = cls[c]
    if c == 46:  # '.'
        j = b - 1
        while j > a and cp[j - 1] == 46:
            j -= 1
        if b - j >= 2:
            return b - j
        if b - 2 >= a:
            p = cp[b - 2]
            pf = cls[p]
            if pf & (DIGIT | LOWER | QUOTE | AFFIX) or p == 37 or p == 0xB2 or p == 45 or p == 43:
                return 1
            if b - 3 >= a and pf & UPPER and cls[cp[b - 3]] & UPPER:
                return 1
        return 0
    if (c == 115 or c == 83) and b - 2 >= a and (cp[b - 2] == 39 or cp[b - 2] == 0x2019):
        return 2  # 's
    if f & (AFFIX | QUOTE | ICON) or c == 0x2014 or c == 0x2013:
        return 1
    if b - 2 >= a and cls[cp[b - 2]] & DIGIT and (c == 43 or f & CURRENCY):
        return 1
    j = b - 1  # a unit needs a digit before it: letters, '/' or '%' back to a digit
    while j >= a and b - j <= 5 and (cls[cp[j]] & ALPHA or cp[j] == 47 or cp[j] == 37):
        j -= 1
    if j < a or b - j > 5 or not cls[cp[j]] & DIGIT:
        return 0
    for u in range(units.shape[0]):  # a unit right after a digit
        n = units[u, 0]
        if b - n - 1 < a or not cls[cp[b - n - 1]] & DIGIT:
            continue
        ok = True
        for k in range(n):
            if cp[b - n + k] != units[u, 1 + k]:
                ok = False
                break
        if ok:
            return n
    return 0


@nb.njit(cache=True, inline="always")
def _host_char(c):
    return (48 <= c <= 57) or (65 <= c <= 90) or (97 <= c <= 122) or (0xA1 <= c <= 0xFFFF)


@nb.njit(cache=True)
def _domain_rest(cp, p, b, cls):
    """Does ``cp[p:b]`` read as ``label.label...tld[:port][/path]`` (spaCy's URL shape)?"""
    q = p
    while q < b and (_host_char(cp[q]) or cp[q] == 95 or cp[q] == 45 or cp[q] == 46):
        q += 1
    last_dot = -1
    for i in range(p, q):
        if cp[i] == 46:
            last_dot = i
    if last_dot < 0:
        return False
    tld = q - last_dot - 1
    if tld < 2 or tld > 63:
        return False
    for i in range(last_dot + 1, q):
        if not cls[cp[i]] & LOWER:
            return False
    start = p
    for i in range(p, last_dot + 1):
        if cp[i] == 46:  # a label [start, i): host chars at both ends, <= 64 long
            if i == start or i - start > 64 or not _host_char(cp[start]) or not _host_char(cp[i - 1]):
                return False
            start = i + 1
    if q == b:
        return True
    if cp[q] == 58:  # port
        r = q + 1
        while r < b and cls[cp[r]] & DIGIT:
            r += 1
        if r - q - 1 < 2 or r - q - 1 > 5:
            return False
        q = r
        if q == b:
            return True
    return cp[q] == 47 or cp[q] == 63 or cp[q] == 35  # / ? #: a path follows


@nb.njit(cache=True)
def _url_like(cp, a, b, cls):
    """A URL, e-mail address or domain name (``example.com``, ``file.py``) the way spaCy's
    URL pattern accepts them (without its IP-address branch)."""
    dot = False
    for i in range(a, b):
        if cp[i] == 46:
            dot = True
            break
    if not dot:
        return False
    p = a
    for i in range(a + 2, b - 2):  # scheme://
        if cp[i] == 58 and cp[i + 1] == 47 and cp[i + 2] == 47:
            ok = True
            for j in range(a, i):
                c = cp[j]
                if not (cls[c] & (ALPHA | DIGIT) or c == 95 or c == 43 or c == 45 or c == 46):
                    ok = False
            if ok:
                p = i + 3
            break
    for i in range(b - 1, p, -1):  # user@ (the last '@')
        if cp[i] == 64:
            if _domain_rest(cp, i + 1, b, cls):
                return True
            break
    return _domain_rest(cp, p, b, cls)


@nb.njit(cache=True)
def _infix_len(cp, a, b, i, cls):
    """Length of an infix match starting at ``i`` inside ``[a, b)`` (0: none)."""
    c = cp[i]
    f = cls[c]
    if c == 46 and i + 1 < b and cp[i + 1] == 46:
        j = i
        while j < b and cp[j] == 46:
            j += 1
        return j - i
    if c == 0x2026 or f & ICON:
        return 1
    if i == a or i + 1 >= b:
        return 0
    pf = cls[cp[i - 1]]
    nf = cls[cp[i + 1]]
    if (c == 43 or c == 45 or c == 42 or c == 94) and pf & DIGIT and (nf & DIGIT or cp[i + 1] == 45):
        return 1
    if c == 46 and pf & (LOWER | QUOTE) and nf & (UPPER | QUOTE):
        return 1
    if c == 44 and pf & ALPHA and nf & ALPHA:
        return 1
    if f & HYPHEN and pf & (ALPHA | DIGIT):
        if c == 45:  # '-', '--', '---' before a letter
            j = i
            while j < b and j - i < 3 and cp[j] == 45:
                j += 1
                if j < b and cls[cp[j]] & ALPHA:
                    return j - i
            return 0
        if c == 0x2014 and cp[i + 1] == 0x2014 and i + 2 < b and cls[cp[i + 2]] & ALPHA:
            return 2
        if nf & ALPHA:
            return 1
        return 0
    if (c == 58 or c == 60 or c == 62 or c == 61 or c == 47) and pf & (ALPHA | DIGIT) and nf & ALPHA:
        return 1
    return 0


@nb.njit(cache=True, inline="always")
def _emit(out_s, out_e, nt, a, b):
    out_s[nt] = a
    out_e[nt] = b
    return nt + 1


@nb.njit(cache=True)
def _middle(cp, a, b, cls, exc, spf, mode, out_s, out_e, nt):
    sp = _special(cp, a, b, cls, exc, spf, mode)
    if sp == 1 or _url_like(cp, a, b, cls):
        return _emit(out_s, out_e, nt, a, b)
    if sp > 1:
        k = sp - 1
        nt = _emit(out_s, out_e, nt, a, b - k)
        return _emit(out_s, out_e, nt, b - k, b)
    start = a
    i = a
    while i < b:
        if not cls[cp[i]] & INFIX:
            i += 1
            continue
        k = _infix_len(cp, a, b, i, cls)
        if k == 0:
            i += 1
            continue
        if i > start:
            nt = _emit(out_s, out_e, nt, start, i)
        nt = _emit(out_s, out_e, nt, i, i + k)
        i += k
        start = i
    if start < b:
        nt = _emit(out_s, out_e, nt, start, b)
    return nt


@nb.njit(cache=True, inline="always")
def _plain_word(cp, a, b, cls, exc, spf, mode):
    """The common cases, decided without the affix loop: one character, or letters only, or
    digits only (1: one token), possibly followed by one of ``, ; : ! ? .`` that comes off
    (2); 0: take the general path."""
    if b - a == 1:
        return 1
    last = cp[b - 1]
    body = b
    if last == 44 or last == 59 or last == 58 or last == 33 or last == 63 or last == 46:
        body = b - 1
    kind = cls[cp[a]] & (ALPHA | DIGIT)
    if kind == 0 or kind == ALPHA | DIGIT:
        return 0
    for i in range(a + 1, body):
        if not cls[cp[i]] & kind:
            return 0
    if kind == ALPHA and (_special(cp, a, b, cls, exc, spf, mode)
                          or (body < b and _special(cp, a, body, cls, exc, spf, mode))):
        return 0
    if body == b:
        return 1
    if last != 46:
        return 2
    p = cls[cp[b - 2]]  # a final '.' comes off after a digit, a lowercase letter or two capitals
    if p & (LOWER | DIGIT) or (b - 3 >= a and p & UPPER and cls[cp[b - 3]] & UPPER):
        return 2
    return 1


@nb.njit(cache=True)
def _chunk(cp, a, b, cls, exc, spf, mode, units, out_s, out_e, nt, suf_s, suf_e):
    """Tokens of one whitespace-free chunk ``[a, b)`` (affixes, specials, infixes), then
    adjacent tokens that spell a kept-whole special (``):``, ``''``) merged."""
    fast = _plain_word(cp, a, b, cls, exc, spf, mode)
    if fast == 1:
        return _emit(out_s, out_e, nt, a, b)
    if fast == 2:
        nt = _emit(out_s, out_e, nt, a, b - 1)
        return _emit(out_s, out_e, nt, b - 1, b)
    nt0 = nt
    ns = 0
    while a < b:
        if _special(cp, a, b, cls, exc, spf, mode):
            break
        pre = _prefix_len(cp, a, b, cls)
        suf = _suffix_len(cp, a + pre, b, cls, units) if a + pre < b else 0
        if pre and a + pre < b and _special(cp, a + pre, b, cls, exc, spf, mode):
            nt = _emit(out_s, out_e, nt, a, a + pre)
            a += pre
            break
        if suf and a < b - suf and _special(cp, a, b - suf, cls, exc, spf, mode):
            suf_s[ns] = b - suf
            suf_e[ns] = b
            ns += 1
            b -= suf
            break
        if pre and suf and pre + suf <= b - a:
            nt = _emit(out_s, out_e, nt, a, a + pre)
            suf_s[ns] = b - suf
            suf_e[ns] = b
            ns += 1
            a += pre
            b -= suf
        elif pre:
            nt = _emit(out_s, out_e, nt, a, a + pre)
            a += pre
        elif suf:
            suf_s[ns] = b - suf
            suf_e[ns] = b
            ns += 1
            b -= suf
        else:
            break
    if a < b:
        nt = _middle(cp, a, b, cls, exc, spf, mode, out_s, out_e, nt)
    for j in range(ns - 1, -1, -1):
        nt = _emit(out_s, out_e, nt, suf_s[j], suf_e[j])
    return _merge_specials(cp, cls, exc, spf, mode, out_s, out_e, nt0, nt)


@nb.njit(cache=True)
def _merge_specials(cp, cls, exc, spf, mode, out_s, out_e, lo, nt):
    """Merge runs of 2-4 adjacent tokens of one chunk that spell a kept-whole special."""
    if nt - lo < 2:
        return nt
    w = lo
    i = lo
    while i < nt:
        took = 1
        for j in range(min(nt, i + 4), i + 1, -1):
            end = out_e[j - 1]
            if end - out_s[i] <= MAX_SPECIAL and _special(cp, out_s[i], end, cls, exc, spf, mode) == 1:
                took = j - i
                break
        out_s[w] = out_s[i]
        out_e[w] = out_e[i + took - 1]
        w += 1
        i += took
    return w


@nb.njit(cache=True)
def tokenize(cp, lo, hi, mode, cls, exc, spf, units, out_s, out_e, suf_s, suf_e):
    """Tokens of ``cp[lo:hi]`` as ``[out_s[i], out_e[i])`` code point spans; returns the
    count. ``out_*`` and ``suf_*`` need room for ``hi - lo`` entries."""
    nt = 0
    i = lo
    while i < hi:
        if cls[cp[i]] & SPACE:
            i += 1
            continue
        j = i
        while j < hi and not cls[cp[j]] & SPACE:
            j += 1
        if mode == PER_CHAR:
            k = i
            while k < j:
                if cls[cp[k]] & NOSPACE:
                    nt = _emit(out_s, out_e, nt, k, k + 1)
                    k += 1
                    continue
                m = k
                while m < j and not cls[cp[m]] & NOSPACE:
                    m += 1
                nt = _chunk(cp, k, m, cls, exc, spf, mode, units, out_s, out_e, nt, suf_s, suf_e)
                k = m
        else:
            fast = _plain_word(cp, i, j, cls, exc, spf, mode)
            if fast == 1:
                nt = _emit(out_s, out_e, nt, i, j)
            elif fast == 2:
                nt = _emit(out_s, out_e, nt, i, j - 1)
                nt = _emit(out_s, out_e, nt, j - 1, j)
            else:
                nt = _chunk(cp, i, j, cls, exc, spf, mode, units, out_s, out_e, nt, suf_s, suf_e)
        i = j
    return nt


def split_words(text: str, language: str | None = "en") -> list[str]:
    """The words of ``text`` as the signal kernels see them (for tests and inspection)."""
    from curate.text.heuristics.charclass import class_table

    cp = np.array([ord(c) for c in text], dtype=np.int32)
    n = len(cp)
    bufs = [np.empty(max(n, 1), dtype=np.int32) for _ in range(4)]
    nt = tokenize(cp, 0, n, split_mode(language), class_table(), *special_table(), unit_table(), *bufs)
    return [text[a:b] for a, b in zip(bufs[0][:nt], bufs[1][:nt])]
