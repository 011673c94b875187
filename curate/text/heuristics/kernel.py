"""The numba batch kernel of the heuristic quality signals.

One call computes every signal of every document of a batch from the UTF-8 bytes of the
text column. Per document it decodes the code points once, splits lines, paragraphs and
words (:mod:`curate.text.heuristics.words`), and counts duplicates with open-addressing
tables of 64-bit polynomial hashes (n-grams hash in O(1) each from prefix hashes). The
definitions are those of datatrove 0.10.1's Gopher, C4 and FineWeb filters; each signal is
documented in :mod:`curate.text.heuristics.signals` and the README.

Lengths are in code points, as Python's ``len(str)`` counts them. A ratio whose denominator
is zero is 0.0.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from curate.text.hash_mix import fmix as _fmix
from curate.text.heuristics.charclass import ALPHA, LINEBREAK, PUNCT, SPACE, STERM, SYMBOL
from curate.text.heuristics.words import HASH_BASE, PER_CHAR, _hash, sorted_find, tokenize

# column order of the kernel's output
(
    WORD_COUNT, MEAN_WORD_LENGTH, HASH_RATIO, ELLIPSIS_RATIO, BULLET_LINES, ELLIPSIS_LINES, ALPHA_WORDS,
    STOP_WORDS, DUP_LINE, DUP_PARA, DUP_LINE_CHAR, DUP_PARA_CHAR, TOP2, TOP3, TOP4,
    DUP5, DUP6, DUP7, DUP8, DUP9, DUP10,
    C4_TERMINAL_LINES, C4_SENTENCES, C4_JAVASCRIPT, C4_LOREM, C4_CURLY, C4_POLICY,
    FW_LINE_PUNCT, FW_SHORT_LINES, FW_CHAR_DUP, FW_LIST_RATIO, FW_LINES,
) = range(32)
NUM_SIGNALS = 32

POLICY_PHRASES = [
    "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies",
]
SHORT_LINE_LENGTH = 30  # FineWeb: a line of at most this many characters is short
MAX_C4_WORD_LENGTH = 1000  # C4: a line with a longer word is dropped


def phrase_table(phrases: list[str]) -> np.ndarray:
    """Lowercase ASCII phrases as a zero-padded ``(n, 1 + max_len)`` int32 array (length first)."""
    width = 1 + max(len(p) for p in phrases)
    out = np.zeros((len(phrases), width), dtype=np.int32)
    for i, p in enumerate(phrases):
        out[i, 0] = len(p)
        out[i, 1 : 1 + len(p)] = [ord(c) for c in p]
    return out


@nb.njit(cache=True)
def _decode(data, lo, hi, out):
    """UTF-8 bytes ``data[lo:hi]`` -> code points in ``out``; returns the count."""
    n = 0
    i = lo
    while i < hi:
        b0 = np.int32(data[i])
        if b0 < 0x80:
            c = b0
            i += 1
        elif b0 < 0xE0:
            c = ((b0 & 0x1F) << 6) | (np.int32(data[i + 1]) & 0x3F)
            i += 2
        elif b0 < 0xF0:
            c = ((b0 & 0x0F) << 12) | ((np.int32(data[i + 1]) & 0x3F) << 6) | (np.int32(data[i + 2]) & 0x3F)
            i += 3
        else:
            c = (
                ((b0 & 0x07) << 18)
                | ((np.int32(data[i + 1]) & 0x3F) << 12)
                | ((np.int32(data[i + 2]) & 0x3F) << 6)
                | (np.int32(data[i + 3]) & 0x3F)
            )
            i += 4
        out[n] = c
        n += 1
    return n


@nb.njit(cache=True)
def _cap_for(items):
    cap = 16
    while cap < 2 * items + 2:
        cap <<= 1
    return cap


@nb.njit(cache=True, inline="always")
def _slot(keys, cnt, cap, h):
    mask = cap - 1
    i = np.int64(_fmix(h) & np.uint64(mask))
    while cnt[i] != 0 and keys[i] != h:
        i = (i + 1) & mask
    return i


@nb.njit(cache=True)
def _seen_before(keys, cnt, cap, h):
    """Insert ``h``; True when it was already there."""
    i = _slot(keys, cnt, cap, h)
    if cnt[i] != 0:
        cnt[i] += 1
        return True
    keys[i] = h
    cnt[i] = 1
    return False


@nb.njit(cache=True, inline="always")
def _segment_key(cp, a, b):
    return _hash(cp, a, b) ^ (np.uint64(b - a) * np.uint64(0x9E3779B97F4A7C15))


@nb.njit(cache=True)
def _contains_ci(buf, a, b, phrases, p):
    """Does ``buf[a:b]`` (ASCII letters lowercased) contain phrase ``p``?"""
    m = phrases[p, 0]
    for i in range(a, b - m + 1):
        ok = True
        for k in range(m):
            c = buf[i + k]
            if 65 <= c <= 90:
                c += 32
            if c != phrases[p, 1 + k]:
                ok = False
                break
        if ok:
            return True
    return False


@nb.njit(cache=True)
def _count_sentences(cp, ts, te, k0, k1, cls):
    """Sentences among tokens ``k0..k1-1`` the way spaCy's sentencizer counts: a token that
    is a sentence terminal starts a new sentence at the next token that is not punctuation.
    Whitespace other than one space between two tokens is such a token too (spaCy keeps it
    as a whitespace token)."""
    if k1 <= k0:
        return 0
    count = 1
    seen = False
    for k in range(k0, k1):
        gap = ts[k] - te[k - 1] if k > k0 else 0
        if seen and (gap > 1 or (gap == 1 and cp[te[k - 1]] != 32)):
            count += 1
            seen = False
        single_term = te[k] - ts[k] == 1 and cls[cp[ts[k]]] & STERM
        all_punct = True
        for i in range(ts[k], te[k]):
            if not cls[cp[i]] & PUNCT:
                all_punct = False
                break
        if seen and not all_punct and not single_term:
            count += 1
            seen = False
        elif single_term:
            seen = True
    return count


EDIT = np.array([ord(c) for c in "edit"], dtype=np.int32)
CITATION_NEEDED = np.array([ord(c) for c in "citation needed"], dtype=np.int32)


@nb.njit(cache=True)
def _bracketed(cp, i, b, word):
    """Is ``[word]`` at ``cp[i:]`` (within ``b``)?"""
    m = word.shape[0]
    if i + 1 + m >= b or cp[i + 1 + m] != 93:
        return False
    for k in range(m):
        if cp[i + 1 + k] != word[k]:
            return False
    return True


@nb.njit(cache=True)
def _citation_len(cp, i, b, edit, needed):
    """Length of a Wikipedia-style citation (``[12]``, ``[]``, ``[edit]``,
    ``[citation needed]``) starting at ``i``, else 0."""
    j = i + 1
    while j < b and 48 <= cp[j] <= 57:
        j += 1
    if j < b and cp[j] == 93:
        return j + 1 - i
    if _bracketed(cp, i, b, edit):
        return edit.shape[0] + 2
    if _bracketed(cp, i, b, needed):
        return needed.shape[0] + 2
    return 0


@nb.njit(cache=True)
def _c4_lines(cp, n, mode, cls, exc, spf, units, phrases, buf, ts, te, ss, se, dts, dte, dnt, out):
    """C4 signals over ``str.splitlines()`` lines, in C4's order of checks. Sentences are
    counted on the document's words (``dts``/``dte``) of the line, or on the line's own words
    when removing a citation changed it."""
    kp = 0
    n_lines = 0
    terminal = 0
    sentences = 0
    js = 0
    lorem = 0
    curly = 0
    policy = 0
    start = 0
    i = 0
    while i <= n:
        if i < n and not cls[cp[i]] & LINEBREAK:
            i += 1
            continue
        if i == n and start == n:
            break
        s, e = start, i
        if i < n and cp[i] == 13 and i + 1 < n and cp[i + 1] == 10:
            i += 1
        i += 1
        start = i
        n_lines += 1
        while s < e and cls[cp[s]] & SPACE:
            s += 1
        while e > s and cls[cp[e - 1]] & SPACE:
            e -= 1
        words = 0
        longest = 0
        k = s
        while k < e:  # str.split(): word count and the longest word
            if cls[cp[k]] & SPACE:
                k += 1
                continue
            w0 = k
            while k < e and not cls[cp[k]] & SPACE:
                k += 1
            words += 1
            longest = max(longest, k - w0)
        if longest > MAX_C4_WORD_LENGTH:
            continue
        m = 0
        k = s
        while k < e:  # citations removed
            if cp[k] == 91:
                c = _citation_len(cp, k, e, EDIT, CITATION_NEEDED)
                if c:
                    k += c
                    continue
            buf[m] = cp[k]
            m += 1
            k += 1
        if m == 0:
            continue
        last = buf[m - 1]
        if not (last == 46 or last == 63 or last == 33 or last == 34 or last == 39):
            continue
        if m >= 3 and buf[m - 1] == 46 and buf[m - 2] == 46 and buf[m - 3] == 46:
            continue
        terminal += 1
        if words < 3:
            continue
        if _contains_ci(buf, 0, m, phrases, 0):
            lorem += 1
            continue
        if _contains_ci(buf, 0, m, phrases, 1):
            js += 1
            continue
        has_curly = False
        for k in range(m):
            if buf[k] == 123:
                has_curly = True
                break
        if has_curly:
            curly += 1
            continue
        is_policy = False
        for p in range(2, phrases.shape[0]):
            if _contains_ci(buf, 0, m, phrases, p):
                is_policy = True
                break
        if is_policy:
            policy += 1
            continue
        if m == e - s:  # unchanged: the document's words of this line
            while kp < dnt and dts[kp] < s:
                kp += 1
            k1 = kp
            while k1 < dnt and dte[k1] <= e:
                k1 += 1
            sentences += _count_sentences(cp, dts, dte, kp, k1, cls)
        else:
            lt = tokenize(buf, 0, m, mode, cls, exc, spf, units, ts, te, ss, se)
            sentences += _count_sentences(buf, ts, te, 0, lt, cls)
    out[C4_TERMINAL_LINES] = terminal / n_lines if n_lines else 0.0
    out[C4_SENTENCES] = sentences
    out[C4_JAVASCRIPT] = js
    out[C4_LOREM] = lorem
    out[C4_CURLY] = curly
    out[C4_POLICY] = policy


@nb.njit(cache=True)
def _line_stats(cp, n, cls, keys, cnt, out):
    """Gopher repetition (lines, paragraphs), Gopher quality (bullets, ellipses per line)
    and FineWeb line signals."""
    # Gopher repetition lines: re.split("\n+", text)
    cap = _cap_for(n + 1)
    cnt[:cap] = 0
    lines = 0
    dup = 0
    dup_chars = 0
    start = 0
    i = 0
    while True:
        if i < n and cp[i] != 10:
            i += 1
            continue
        lines += 1
        if _seen_before(keys, cnt, cap, _segment_key(cp, start, i)):
            dup += 1
            dup_chars += i - start
        if i >= n:
            break
        while i < n and cp[i] == 10:
            i += 1
        start = i
        if i == n:
            lines += 1
            if _seen_before(keys, cnt, cap, _segment_key(cp, n, n)):
                dup += 1
            break
    out[DUP_LINE] = dup / lines
    out[DUP_LINE_CHAR] = dup_chars / n if n else 0.0
    # paragraphs: re.split(r"\n{2,}", text.strip())
    cnt[:cap] = 0
    s0, e0 = 0, n
    while s0 < e0 and cls[cp[s0]] & SPACE:
        s0 += 1
    while e0 > s0 and cls[cp[e0 - 1]] & SPACE:
        e0 -= 1
    paras = 0
    dup = 0
    dup_chars = 0
    start = s0
    i = s0
    while True:
        if i < e0 and not (cp[i] == 10 and i + 1 < e0 and cp[i + 1] == 10):
            i += 1
            continue
        paras += 1
        if _seen_before(keys, cnt, cap, _segment_key(cp, start, min(i, e0))):
            dup += 1
            dup_chars += min(i, e0) - start
        if i >= e0:
            break
        while i < e0 and cp[i] == 10:
            i += 1
        start = i
    out[DUP_PARA] = dup / paras
    out[DUP_PARA_CHAR] = dup_chars / n if n else 0.0
    # FineWeb: text.split("\n"), lines with a non-space character
    cnt[:cap] = 0
    kept = 0
    punct = 0
    short = 0
    dup_chars = 0
    newlines = 0
    start = 0
    for i in range(n + 1):
        if i < n and cp[i] != 10:
            continue
        if i < n:
            newlines += 1
        blank = True
        for k in range(start, i):
            if not cls[cp[k]] & SPACE:
                blank = False
                break
        if not blank:
            kept += 1
            if cls[cp[i - 1]] & STERM:
                punct += 1
            if i - start <= SHORT_LINE_LENGTH:
                short += 1
            if _seen_before(keys, cnt, cap, _segment_key(cp, start, i)):
                dup_chars += i - start
        start = i + 1
    out[FW_LINES] = kept
    out[FW_LINE_PUNCT] = punct / kept if kept else 0.0
    out[FW_SHORT_LINES] = short / kept if kept else 0.0
    out[FW_CHAR_DUP] = dup_chars / (n - newlines) if n - newlines > 0 else 0.0
    # Gopher quality: str.splitlines() lines starting with a bullet / ending in an ellipsis
    n_lines = 0
    bullets = 0
    ellipses = 0
    start = 0
    i = 0
    while i <= n:
        if i < n and not cls[cp[i]] & LINEBREAK:
            i += 1
            continue
        if i == n and start == n:
            break
        s, e = start, i
        if i < n and cp[i] == 13 and i + 1 < n and cp[i + 1] == 10:
            i += 1
        i += 1
        start = i
        n_lines += 1
        while s < e and cls[cp[s]] & SPACE:
            s += 1
        while e > s and cls[cp[e - 1]] & SPACE:
            e -= 1
        if s < e and (cp[s] == 0x2022 or cp[s] == 45):
            bullets += 1
        dots = e - s >= 3 and cp[e - 1] == 46 and cp[e - 2] == 46 and cp[e - 3] == 46
        if e > s and (cp[e - 1] == 0x2026 or dots):
            ellipses += 1
    out[BULLET_LINES] = bullets / n_lines if n_lines else 0.0
    out[ELLIPSIS_LINES] = ellipses / n_lines if n_lines else 0.0
    return newlines


@nb.njit(cache=True)
def _ngram_stats(n, nt, ts, te, th, pw, pfx, pfq, cum, keys, cnt, first, out):
    """Top 2/3/4-gram and duplicate 5..10-gram character fractions over the words
    (``th``: the words' hashes)."""
    for k in range(nt):
        h = th[k]
        ln = te[k] - ts[k]
        pfx[k + 1] = pfx[k] * pw[ln] + h  # hash of the words concatenated
        pfq[k + 1] = pfq[k] * pw[ln + 1] + h * HASH_BASE + np.uint64(33)  # joined by spaces
        cum[k + 1] = cum[k] + ln
    cap = _cap_for(nt)
    for g in range(2, 5):
        out[TOP2 + g - 2] = 0.0
        if nt < g or n == 0:
            continue
        cnt[:cap] = 0
        for i in range(nt - g + 1):
            length = cum[i + g] - cum[i]
            h = pfq[i + g] - pfq[i] * pw[length + g]
            j = _slot(keys, cnt, cap, h)
            if cnt[j] == 0:
                keys[j] = h
                first[j] = i
            cnt[j] += 1
        best = 0
        best_first = 0
        for j in range(cap):
            if cnt[j] > best or (cnt[j] == best and cnt[j] > 0 and first[j] < best_first):
                best = cnt[j]
                best_first = first[j]
        chars = cum[best_first + g] - cum[best_first] + g - 1
        out[TOP2 + g - 2] = chars * best / n
    rep = 1
    for g in range(5, 11):
        if rep == 0:  # all (g-1)-grams distinct: so are all g-grams (each holds a (g-1)-gram)
            out[DUP5 + g - 5] = 0.0
            continue
        cnt[:cap] = 0
        rep = 0
        i = 0
        while i < nt - g + 1:
            length = cum[i + g] - cum[i]
            h = pfx[i + g] - pfx[i] * pw[length]
            if _seen_before(keys, cnt, cap, h):
                rep += length
                i += g
            else:
                i += 1
        out[DUP5 + g - 5] = rep / n if n else 0.0


@nb.njit(cache=True)
def _word_stats(cp, n, nt, ts, te, th, mode, lang, cls, sw_off, sw_hash, sw_cp_off, sw_cp, seen, out):
    """Gopher quality word signals; fills ``th`` with the words' hashes."""
    non_symbol = 0
    chars = 0
    alpha = 0
    for k in range(nt):
        sym = True
        has_alpha = False
        h = np.uint64(0)
        for i in range(ts[k], te[k]):
            h = h * HASH_BASE + np.uint64(cp[i] + 1)
            f = cls[cp[i]]
            if not f & SYMBOL:
                sym = False
            if f & ALPHA:
                has_alpha = True
        th[k] = h
        if not sym:
            non_symbol += 1
            chars += te[k] - ts[k]
        if has_alpha:
            alpha += 1
    hashes = 0
    ell = 0
    i = 0
    while i < n:
        c = cp[i]
        if c == 35:
            hashes += 1
        elif c == 0x2026:
            ell += 1
        if c == 46 and i + 2 < n and cp[i + 1] == 46 and cp[i + 2] == 46:
            ell += 1
            i += 3
            continue
        i += 1
    out[WORD_COUNT] = non_symbol
    out[MEAN_WORD_LENGTH] = chars / non_symbol if non_symbol else 0.0
    out[HASH_RATIO] = hashes / nt if nt else 0.0
    out[ELLIPSIS_RATIO] = ell / nt if nt else 0.0
    out[ALPHA_WORDS] = alpha / nt if nt else 0.0
    # stop words: distinct list words among the words (per-character languages: distinct
    # list words occurring anywhere in the text)
    lo, hi = sw_off[lang], sw_off[lang + 1]
    found = 0
    if mode == PER_CHAR:
        for w in range(lo, hi):
            a, b = sw_cp_off[w], sw_cp_off[w + 1]
            m = b - a
            for i in range(n - m + 1):
                ok = True
                for k in range(m):
                    if cp[i + k] != sw_cp[a + k]:
                        ok = False
                        break
                if ok:
                    found += 1
                    break
    else:
        seen[: hi - lo] = 0
        for k in range(nt):
            j = sorted_find(sw_hash[lo:hi], th[k])
            if j >= 0 and seen[j] == 0:
                seen[j] = 1
                found += 1
    out[STOP_WORDS] = found


@nb.njit(cache=True)
def batch_signals(data, offsets, modes, langs, cls, exc, spf, units, phrases, sw_off, sw_hash, sw_cp_off,
                  sw_cp):
    """Every signal of every document: a ``(n_docs, NUM_SIGNALS)`` float64 array."""
    n_docs = offsets.shape[0] - 1
    out = np.zeros((n_docs, NUM_SIGNALS), dtype=np.float64)
    longest = 1
    for d in range(n_docs):
        longest = max(longest, offsets[d + 1] - offsets[d])
    cp = np.empty(longest + 1, dtype=np.int32)
    buf = np.empty(longest + 1, dtype=np.int32)
    ts = np.empty(longest + 1, dtype=np.int32)
    te = np.empty(longest + 1, dtype=np.int32)
    th = np.empty(longest + 1, dtype=np.uint64)
    ls = np.empty(longest + 1, dtype=np.int32)
    le = np.empty(longest + 1, dtype=np.int32)
    ss = np.empty(longest + 1, dtype=np.int32)
    se = np.empty(longest + 1, dtype=np.int32)
    pw = np.empty(2 * longest + 3, dtype=np.uint64)
    pw[0] = 1
    for i in range(1, pw.shape[0]):
        pw[i] = pw[i - 1] * HASH_BASE
    pfx = np.zeros(longest + 2, dtype=np.uint64)
    pfq = np.zeros(longest + 2, dtype=np.uint64)
    cum = np.zeros(longest + 2, dtype=np.int64)
    cap = _cap_for(longest + 1)
    keys = np.empty(cap, dtype=np.uint64)
    cnt = np.zeros(cap, dtype=np.int32)
    first = np.zeros(cap, dtype=np.int32)
    max_sw = 1
    for lang in range(sw_off.shape[0] - 1):
        max_sw = max(max_sw, sw_off[lang + 1] - sw_off[lang])
    seen = np.zeros(max_sw, dtype=np.uint8)
    for d in range(n_docs):
        n = _decode(data, offsets[d], offsets[d + 1], cp)
        row = out[d]
        mode = modes[d]
        nt = tokenize(cp, 0, n, mode, cls, exc, spf, units, ts, te, ss, se)
        _word_stats(cp, n, nt, ts, te, th, mode, langs[d], cls, sw_off, sw_hash, sw_cp_off, sw_cp, seen, row)
        newlines = _line_stats(cp, n, cls, keys, cnt, row)
        row[FW_LIST_RATIO] = newlines / nt if nt else 0.0
        _ngram_stats(n, nt, ts, te, th, pw, pfx, pfq, cum, keys, cnt, first, row)
        _c4_lines(cp, n, mode, cls, exc, spf, units, phrases, buf, ls, le, ss, se, ts, te, nt, row)
    return out
