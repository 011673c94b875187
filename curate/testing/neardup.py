"""Near-duplicate corpora with exact word-5-gram Jaccard ground truth (tests and benches).

:func:`make_corpus` draws real-looking base documents from :mod:`curate.testing.textgen`
and adds mutated copies of some of them: exact copies, formatting-only copies (re-wrap,
case, spacing), word edits at a controlled per-word rate (deletions, insertions,
substitutions), paragraph moves and web boilerplate. Some copies mutate an earlier copy,
which makes chains (A~B, B~C, not A~C).

The ground truth is exact: :func:`exact_pairs` finds **every** pair of documents with
shingle-set Jaccard >= ``min_jaccard`` by a prefix-filtered self-join (no MinHash) with
exact verification on 64-bit shingle hashes. :func:`score_removals` computes the dedup
metric of ``shared/tools/eval_dedup.py`` (precision / recall / F1 at a threshold T).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from curate.text.minhash import MinHasher, _unique_sets, sorted_jaccard

MUTATION_KINDS = ("exact", "format", "edit", "move", "boilerplate")


@dataclass
class NearDupCorpus:
    """Documents plus exact ground truth: all pairs with Jaccard >= ``min_jaccard``."""

    ids: list[str]
    texts: list[str]
    parent: list[str | None]
    kind: list[str]
    pair_a: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_b: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    pair_j: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float64))

    def table(self) -> pa.Table:
        """The corpus as a table with ``id``, ``text`` and ``source`` columns."""
        return pa.table({"id": self.ids, "text": self.texts,
                         "source": ["copy" if p else "base" for p in self.parent]})

    def pairs_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """Index pairs with exact Jaccard >= ``t``."""
        m = self.pair_j >= t - 1e-12
        return self.pair_a[m], self.pair_b[m]


def mutate(text: str, rate: float, rng: np.random.Generator, vocab: list[str]) -> str:
    """Edit each word with probability ``rate``: delete, insert a word, or substitute."""
    out: list[str] = []
    for w in text.split(" "):
        if rng.random() >= rate:
            out.append(w)
            continue
        op = int(rng.integers(3))
        if op == 1:
            out.extend([w, vocab[int(rng.integers(len(vocab)))]])
        elif op == 2:
            out.append(vocab[int(rng.integers(len(vocab)))])
    return " ".join(out)


def _format_only(text: str, rng: np.random.Generator) -> str:
    words = text.split()
    width = int(rng.integers(40, 100))
    lines, cur = [], ""
    for w in words:
        if rng.random() < 0.05:
            w = w.upper()
        if len(cur) + len(w) + 1 > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur}  {w}" if cur and rng.random() < 0.1 else (f"{cur} {w}" if cur else w)
    lines.append(cur)
    return "\n".join(lines)


def _move(text: str, rng: np.random.Generator) -> str:
    pars = [p for p in text.split("\n\n") if p.strip()]
    if len(pars) < 2:
        words = text.split(" ")
        cut = int(rng.integers(1, max(2, len(words))))
        return " ".join(words[cut:] + words[:cut])
    i, j = rng.choice(len(pars), 2, replace=False)
    pars[i], pars[j] = pars[j], pars[i]
    return "\n\n".join(pars)


def _base_texts(n: int, seed: int) -> list[str]:
    from curate.testing import textgen

    rng = np.random.default_rng(seed)
    doms = ("prose", "code_docs", "readme")  # license texts are one giant natural near-dup family
    share = rng.dirichlet(np.ones(len(doms)) * 8) * n
    counts = np.floor(share).astype(int)
    counts[0] += n - counts.sum()
    texts: list[str] = []
    for k, (d, c) in enumerate(zip(doms, counts)):
        if c:
            texts.extend(textgen.domain_texts(d, int(c), seed * 31 + k))
    return texts


def make_corpus(n_docs: int, seed: int = 0, dup_fraction: float = 0.3, max_rate: float = 0.12,
                chain_prob: float = 0.3, min_jaccard: float = 0.7, ngram: int = 5) -> NearDupCorpus:
    """A shuffled corpus of ``n_docs`` documents, ``dup_fraction`` of them mutated copies.

    Copies are 5% exact, 10% formatting-only, 70% word edits at a per-word rate drawn
    uniformly from ``[0, max_rate]`` (sometimes plus a paragraph move), 15% boilerplate
    wrapped. With probability ``chain_prob`` a copy mutates an earlier copy.
    """
    from curate.testing import textgen

    rng = np.random.default_rng(seed)
    n_dup = round(n_docs * dup_fraction)
    n_base = n_docs - n_dup
    base = _base_texts(n_base, seed)
    texts = list(base)
    parent: list[int | None] = [None] * n_base
    kind = ["base"] * n_base
    vocab = sorted({w for t in base[:200] for w in t.split()})[:5000] or ["word"]
    for _ in range(n_dup):
        if len(texts) > n_base and rng.random() < chain_prob:
            p = int(rng.integers(n_base, len(texts)))
        else:
            p = int(rng.integers(n_base))
        src = texts[p]
        u = rng.random()
        if u < 0.05:
            k, t = "exact", src
        elif u < 0.15:
            k, t = "format", _format_only(src, rng)
        elif u < 0.85:
            k = "edit"
            t = mutate(src, float(rng.uniform(0, max_rate)), rng, vocab)
            if rng.random() < 0.2:
                k, t = "move", _move(t, rng)
        else:
            k, t = "boilerplate", textgen.wrap_with_boilerplate(src, int(rng.integers(2**31)))
        texts.append(t)
        parent.append(p)
        kind.append(k)
    order = rng.permutation(len(texts))
    inv = np.empty_like(order)
    inv[order] = np.arange(len(order))
    ids = [f"nd{seed:03d}-{i:07d}" for i in range(len(texts))]
    out_texts = [texts[o] for o in order]
    out_parent = [None if parent[o] is None else ids[inv[parent[o]]] for o in order]
    out_kind = [kind[o] for o in order]
    corpus = NearDupCorpus(ids, out_texts, out_parent, out_kind)
    corpus.pair_a, corpus.pair_b, corpus.pair_j = exact_pairs(out_texts, ngram=ngram, min_jaccard=min_jaccard)
    return corpus


def shingle_sets(texts: list[str], ngram: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique 64-bit shingle hashes per document (flat values + offsets)."""
    hv, off = MinHasher(num_perm=1, ngram=ngram, seed=12345).fast_shingle_hashes(texts)
    return _unique_sets(hv, off)


def exact_pairs(texts: list[str], ngram: int = 5, min_jaccard: float = 0.5,
                max_group: int = 2000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every pair ``(i < j)`` with exact shingle Jaccard >= ``min_jaccard``.

    Prefix filtering: order shingles by document frequency; two sets with Jaccard >= t
    share a token among the first ``|A| - ceil(t*|A|) + 1`` of each. Candidates are
    verified exactly. Shingles in more than ``max_group`` prefixes are verified in bulk
    too (quadratic only in that group).
    """
    vals, off = shingle_sets(texts, ngram)
    n = len(off) - 1
    sizes = np.diff(off)
    doc = np.repeat(np.arange(n), sizes)
    uniq, inv, df = np.unique(vals, return_inverse=True, return_counts=True)
    rank = np.argsort(np.lexsort((uniq, df)))  # rank of each unique token by (df, value)
    tok_rank = rank[inv]
    order = np.lexsort((tok_rank, doc))  # by doc, then token rank
    doc_s, tok_s = doc[order], tok_rank[order]
    pos = np.arange(len(doc_s)) - off[doc_s]
    plen = sizes - np.ceil(min_jaccard * sizes - 1e-9).astype(np.int64) + 1
    sel = pos < plen[doc_s]
    pd, pt = doc_s[sel], tok_s[sel]
    o = np.lexsort((pd, pt))
    pd, pt = pd[o], pt[o]
    starts = np.flatnonzero(np.r_[True, pt[1:] != pt[:-1]])
    ends = np.r_[starts[1:], len(pt)]
    gsize = ends - starts
    grp_end = np.repeat(ends, gsize)
    ra, rb, rj = [], [], []
    maxg = int(gsize.max()) if len(gsize) else 0
    cur = np.arange(len(pd))
    for k in range(1, min(maxg, max_group)):
        cur = cur[cur + k < grp_end[cur]]
        if len(cur) == 0:
            break
        a, b = pd[cur], pd[cur + k]
        a, b = np.minimum(a, b), np.maximum(a, b)
        key = np.unique(a * n + b)
        a, b = key // n, key % n
        j = sorted_jaccard(vals, off, a, vals, off, b)
        m = j >= min_jaccard - 1e-12
        ra.append(a[m])
        rb.append(b[m])
        rj.append(j[m])
    if not ra:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0)
    a, b, j = np.concatenate(ra), np.concatenate(rb), np.concatenate(rj)
    key, first = np.unique(a * n + b, return_index=True)
    return key // n, key % n, j[first]


def score_removals(corpus: NearDupCorpus, removed: set[str] | list[str], t: float = 0.8) -> dict:
    """The ``eval_dedup`` metric: precision, recall and F1 of a removed-id set at ``t``."""
    idx = {d: i for i, d in enumerate(corpus.ids)}
    n = len(corpus.ids)
    rem = np.zeros(n, dtype=bool)
    for d in removed:
        rem[idx[d]] = True
    ea, eb = corpus.pairs_at(t)
    has_kept_nb = np.zeros(n, dtype=bool)
    has_kept_nb[ea[~rem[eb]]] = True
    has_kept_nb[eb[~rem[ea]]] = True
    tp = int((rem & has_kept_nb).sum())
    r = int(rem.sum())
    ncomp, _ = connected_components(coo_matrix((np.ones(len(ea)), (ea, eb)), shape=(n, n)), directed=False)
    removable = n - ncomp
    p = tp / r if r else 1.0
    rc = tp / removable if removable else 1.0
    f1 = 2 * p * rc / (p + rc) if p + rc else 0.0
    return {"threshold": t, "removed": r, "TP": tp, "FP": r - tp, "removable": removable,
            "precision": p, "recall": rc, "f1": f1}


def jaccard_bins(corpus: NearDupCorpus) -> dict[str, int]:
    """Number of ground-truth pairs per Jaccard band (for reports)."""
    edges = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0 + 1e-9]
    h, _ = np.histogram(corpus.pair_j, bins=edges)
    return {f"[{lo:.2f},{min(hi, 1.0):.2f}{')' if hi < 1 else ']'}": int(c) for lo, hi, c in zip(edges, edges[1:], h)}


__all__ = [
    "MUTATION_KINDS",
    "NearDupCorpus",
    "exact_pairs",
    "jaccard_bins",
    "make_corpus",
    "mutate",
    "score_removals",
    "shingle_sets",
]
