"""Interpolated modified Kneser-Ney estimation with lmplz semantics (no pruning), in numpy.

Algorithm (Chen & Goodman 1998, as lmplz does it: Heafield et al. 2013, "Scalable Modified
Kneser-Ney Language Model Estimation"): sentences are ``<s> w1 .. wn </s>``; raw n-gram counts
for orders 1..N; adjusted counts (order N: raw; lower orders: raw if the n-gram starts
with ``<s>``, else the number of distinct left extensions); per-order discounts
``D_j = j - (j+1) Y n_{j+1}/n_j`` with ``Y = n1/(n1+2 n2)`` (fallback 0.5/1/1.5 when they
are undefined or out of range); interpolation
``p(w|h) = (a(hw) - D(a(hw)))/A(h) + gamma(h) p(w|h-)`` with
``gamma(h) = sum_j D_j N_j(h) / A(h)`` and unigrams interpolated with the uniform
distribution over the vocabulary (without ``<s>``, with ``<unk>``).

n-grams are kept as sorted int64 keys ``id(prefix) * V + last_word`` per order, so every
lookup is a ``searchsorted``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

UNK, BOS, EOS = "<unk>", "<s>", "</s>"
FALLBACK = (0.5, 1.0, 1.5)


class EstimationError(ValueError):
    """The corpus cannot give a model with the requested options."""


@dataclass
class NgramModel:
    """An estimated back-off model: per order, n-grams with log10 prob and backoff."""

    order: int
    vocab: list[str]
    grams: list[np.ndarray] = field(default_factory=list)  # [n-1]: (M_n, n) word ids
    logp: list[np.ndarray] = field(default_factory=list)  # [n-1]: log10 p
    backoff: list[np.ndarray] = field(default_factory=list)  # [n-1]: log10 gamma, nan = none
    discounts: list[tuple[float, float, float]] = field(default_factory=list)
    unk_logp: float = 0.0

    def entries(self) -> dict[str, tuple[float, float]]:
        """{"w1 w2": (logp, backoff)} for every n-gram (backoff 0.0 when absent)."""
        out: dict[str, tuple[float, float]] = {UNK: (self.unk_logp, 0.0)}
        for n in range(self.order):
            for row, lp, bo in zip(self.grams[n], self.logp[n], self.backoff[n]):
                out[" ".join(self.vocab[i] for i in row)] = (float(lp), 0.0 if np.isnan(bo) else float(bo))
        return out

    def write_arpa(self, path: str) -> None:
        """Write the model as an ARPA file (kenlm and SRILM read it)."""
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n\\data\\\n")
            f.write(f"ngram 1={len(self.grams[0]) + 1}\n")
            for n in range(1, self.order):
                f.write(f"ngram {n + 1}={len(self.grams[n])}\n")
            for n in range(self.order):
                f.write(f"\n\\{n + 1}-grams:\n")
                if n == 0:
                    f.write(f"{self.unk_logp:.9g}\t{UNK}\n")
                top = n == self.order - 1
                for row, lp, bo in zip(self.grams[n], self.logp[n], self.backoff[n]):
                    words = " ".join(self.vocab[i] for i in row)
                    if top or np.isnan(bo):
                        f.write(f"{lp:.9g}\t{words}\n")
                    else:
                        f.write(f"{lp:.9g}\t{words}\t{bo:.9g}\n")
            f.write("\n\\end\\\n")


def _discounts(a: np.ndarray, n: int, fallback: bool) -> tuple[float, float, float]:
    nk = [int(np.count_nonzero(a == k)) for k in (1, 2, 3, 4)]
    n1, n2, n3, n4 = nk
    ok = n1 > 0 and n2 > 0 and n3 > 0
    d: tuple[float, float, float] = FALLBACK
    if ok:
        y = n1 / (n1 + 2.0 * n2)
        d = (1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3)
        ok = all(0 <= dj <= j for j, dj in zip((1, 2, 3), d))
    if not ok:
        if not fallback:
            raise EstimationError(
                f"order {n}: closed-form Kneser-Ney discounts are undefined or out of range "
                f"(counts of counts n1..n4 = {nk}); use more data or enable discount fallback"
            )
        d = FALLBACK
    return d


class _Index:
    """Sorted per-order key tables for n-gram lookups."""

    def __init__(self, vocab_size: int):
        self.V = np.int64(vocab_size)
        self.keys: list[np.ndarray] = []

    def lookup(self, mat: np.ndarray) -> np.ndarray:
        """Row index of each n-gram (rows of ``mat``) in its order's table, or -1."""
        n = mat.shape[1]
        if n == 0:
            return np.zeros(mat.shape[0], dtype=np.int64)
        pid = self.lookup(mat[:, :-1]) if n > 1 else np.zeros(mat.shape[0], dtype=np.int64)
        key = pid * self.V + mat[:, -1].astype(np.int64)
        table = self.keys[n - 1]
        idx = np.searchsorted(table, key)
        idx_c = np.minimum(idx, len(table) - 1)
        found = (
            (pid >= 0) & (len(table) > 0) & (table[idx_c] == key) if len(table) else np.zeros(len(key), bool)
        )
        return np.where(found, idx_c, -1)


def estimate(sentences: Iterable[Iterable[str]], order: int, discount_fallback: bool = True) -> NgramModel:
    """Estimate an order-``order`` interpolated modified Kneser-Ney model.

    ``sentences`` yields token lists (or whitespace-separated strings). Literal ``<s>``,
    ``</s>`` and ``<unk>`` tokens in the text are dropped.
    """
    if order < 1:
        raise EstimationError("order must be >= 1")
    vocab = [UNK, BOS, EOS]
    ids: dict[str, int] = {}
    stream: list[int] = []
    sent: list[int] = []
    sid = 0
    for s in sentences:
        toks = s.split() if isinstance(s, str) else list(s)
        stream.append(1)
        for t in toks:
            if t in (UNK, BOS, EOS):
                continue
            i = ids.get(t)
            if i is None:
                i = ids[t] = len(vocab)
                vocab.append(t)
            stream.append(i)
        stream.append(2)
        sent.extend([sid] * (len(stream) - len(sent)))
        sid += 1
    if sid == 0:
        raise EstimationError("the training corpus is empty")
    w = np.asarray(stream, dtype=np.int64)
    sent_id = np.asarray(sent, dtype=np.int64)
    index = _Index(len(vocab))
    grams: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    for n in range(1, order + 1):
        m = len(w) - n + 1
        if m <= 0:
            raise EstimationError(f"the corpus has no {n}-grams; use a lower order than {order}")
        valid = sent_id[:m] == sent_id[n - 1 :]
        occ = np.stack([w[j : j + m][valid] for j in range(n)], axis=1)
        if occ.shape[0] == 0:
            raise EstimationError(
                f"the corpus has no {n}-grams (sentences are too short); use a lower order than {order}"
            )
        pid = index.lookup(occ[:, :-1]) if n > 1 else np.zeros(len(occ), dtype=np.int64)
        key = pid * index.V + occ[:, -1]
        uk, c = np.unique(key, return_counts=True)
        index.keys.append(uk)
        last = (uk % index.V)[:, None]
        mat = last if n == 1 else np.concatenate([grams[n - 2][uk // index.V], last], axis=1)
        grams.append(mat)
        counts.append(c.astype(np.int64))
    # adjusted counts
    adj: list[np.ndarray] = []
    for n in range(1, order + 1):
        c = counts[n - 1]
        if n == order:
            adj.append(c.copy())
            continue
        ext = grams[n]  # (n+1)-grams
        sfx = index.lookup(ext[:, 1:])
        a = np.bincount(sfx, minlength=len(c)).astype(np.int64)
        starts_bos = grams[n - 1][:, 0] == 1
        adj.append(np.where(starts_bos, c, a))
    # unigram <s> is not part of the distribution
    uni_words = grams[0][:, 0]
    is_bos = uni_words == 1
    model = NgramModel(order=order, vocab=vocab)
    discounts = []
    for n in range(1, order + 1):
        a = adj[n - 1] if n > 1 else adj[0][~is_bos]
        discounts.append(_discounts(a, n, discount_fallback))
    model.discounts = discounts
    # context statistics: gamma(h) for every (n-1)-gram h (n >= 2) and for the empty context
    gammas: list[np.ndarray] = []  # gammas[n-1]: gamma of each n-gram as a context (nan if none)
    probs: list[np.ndarray] = []
    for n in range(1, order + 1):
        d1, d2, d3 = discounts[n - 1]
        a = adj[n - 1].astype(np.float64)
        disc = np.where(a >= 3, d3, np.where(a == 2, d2, np.where(a == 1, d1, 0.0)))
        if n == 1:
            mask = ~is_bos
            total = a[mask].sum()
            gamma_e = disc[mask].sum() / total
            vsize = int(mask.sum()) + 1  # + <unk>
            p = (a - disc) / total + gamma_e / vsize
            p[is_bos] = 1.0  # log10 -> 0, as lmplz writes it
            model.unk_logp = float(np.log10(gamma_e / vsize))
        else:
            pid = index.keys[n - 1] // index.V  # context row in order n-1
            m_ctx = len(grams[n - 2])
            A = np.bincount(pid, weights=a, minlength=m_ctx)
            G = np.bincount(pid, weights=disc, minlength=m_ctx)
            with np.errstate(invalid="ignore", divide="ignore"):
                gam = np.where(A > 0, G / A, np.nan)
            gammas.append(gam)  # gamma of (n-1)-grams
            lower = probs[n - 2][index.lookup(grams[n - 1][:, 1:])]
            p = (a - disc) / A[pid] + gam[pid] * lower
        probs.append(p)
    for n in range(1, order + 1):
        model.grams.append(grams[n - 1])
        model.logp.append(np.log10(probs[n - 1]))
        if n < order:
            g = gammas[n - 1]
            model.backoff.append(np.where(np.isnan(g), np.nan, np.log10(np.where(np.isnan(g), 1.0, g))))
        else:
            model.backoff.append(np.full(len(grams[n - 1]), np.nan))
    return model
