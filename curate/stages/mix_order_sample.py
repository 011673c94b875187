"""Token-budget domain mixing: which documents, and how many copies of each.

The deterministic materialization of an allocation (:mod:`curate.stages.mix_allocation`):
every document gets ⌊c⌋ whole copies (c = rate × rehydration weight, :func:`expected_copies`)
plus one more if it is in the seeded fractional sample. The fractional sample is an order
sample (sequential Poisson sampling, Ohlsson 1998): key ``u / f`` with ``u`` a uniform from
xxh3 of the seed, domain and document id (:func:`doc_uniforms`) and ``f`` the fractional
part (:func:`order_keys`); documents are taken in key order until the residual token mass
is filled. Keys depend only on the seed, the domain and the id, never on batching or
sharding. The ``mix`` stage (:mod:`curate.stages.mix`) finds the cutoff with a two-level
histogram over the key (:func:`key_bins`, :func:`fine_bins`, :func:`find_bin`) and a final
exact pass over one cell (:func:`choose_cutoff`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import xxhash

#: Bins per level of the two-level histogram over the order-sample key (fit passes 2-3).
KEY_BINS = 2048  # per level: a coarse and a fine histogram give 2048² cells


def domain_seed(seed: int, domain: str) -> int:
    """64-bit seed of one domain's sample: xxh3 of the job/stage seed and domain name."""
    return xxhash.xxh3_64_intdigest(f"mix\x00{int(seed)}\x00{domain}".encode())


def doc_uniforms(ids: Sequence[str], seed: int, domain: str) -> np.ndarray:
    """A uniform in [0, 1) per document id, from xxh3(id; domain seed). Batch-independent."""
    ds = domain_seed(seed, domain)
    h = np.fromiter(
        (xxhash.xxh3_64_intdigest(str(i).encode(), ds) for i in ids), dtype=np.uint64, count=len(ids)
    )
    return (h >> np.uint64(11)).astype(np.float64) * (1.0 / (1 << 53))


def expected_copies(rate: float, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whole copies ``⌊c⌋`` and fractional part ``c − ⌊c⌋`` of ``c = rate × weight``."""
    c = np.asarray(weights, dtype=np.float64) * float(rate)
    whole = np.floor(c)
    return whole.astype(np.int64), c - whole


def order_keys(u: np.ndarray, frac: np.ndarray) -> np.ndarray:
    """Order-sample key in [0, 1]: ``z = u/f`` mapped monotonically to ``u/(u+f)``.

    Smaller keys are taken first. Documents with no fractional part (f = 0) get 1.0
    and are never in the fractional sample.
    """
    u = np.asarray(u, dtype=np.float64)
    f = np.asarray(frac, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(f > 0, u / (u + f), 1.0)
    return z


def key_bins(keys: np.ndarray) -> np.ndarray:
    """Coarse histogram bin of each order key (``KEY_BINS`` bins over [0, 1); 1.0 -> KEY_BINS)."""
    return np.minimum(np.floor(np.asarray(keys) * KEY_BINS), KEY_BINS).astype(np.int64)


def fine_bins(keys: np.ndarray, coarse: int) -> np.ndarray:
    """Fine bin (``KEY_BINS`` sub-bins) of keys that lie in coarse bin ``coarse``."""
    f = np.floor((np.asarray(keys) * KEY_BINS - coarse) * KEY_BINS)
    return np.clip(f, 0, KEY_BINS - 1).astype(np.int64)


@dataclass
class Cutoff:
    """Where one domain's fractional sample stops (two-level histogram position + a tie).

    A document is in the sample iff its coarse bin < ``bin``; or it is in coarse ``bin``
    and its fine bin < ``fine``; or it is in that fine cell and ``(key, id)`` is at most
    the cutoff's ``(key, id)``. ``fine is None`` means nothing from coarse ``bin``;
    ``key is None`` means nothing from the fine cell.
    """

    bin: int
    fine: int | None = None
    key: float | None = None
    id: str | None = None

    def selects(self, keys: np.ndarray, ids: Sequence[str]) -> np.ndarray:
        keys = np.asarray(keys, dtype=np.float64)
        bins = key_bins(keys)
        sel = bins < self.bin
        if self.fine is None:
            return sel
        m = np.nonzero(bins == self.bin)[0]
        if m.size == 0:
            return sel
        fb = fine_bins(keys[m], self.bin)
        sel[m[fb < self.fine]] = True
        if self.key is not None:
            for j in m[fb == self.fine]:
                k = float(keys[j])
                if k < self.key or (k == self.key and str(ids[j]) <= self.id):
                    sel[j] = True
        return sel


def find_bin(hist: np.ndarray, residual: float) -> tuple[int, float]:
    """The bin where the cumulative token mass crosses ``residual``, and the mass before it.

    Only the first ``KEY_BINS`` entries count (a coarse histogram's extra last entry holds
    documents without a fractional part). Returns ``(KEY_BINS, total)`` when even every
    candidate is not enough (take all) and ``(0, 0.0)`` when nothing is needed.
    """
    if residual <= 0:
        return 0, 0.0
    cum = np.cumsum(np.asarray(hist, dtype=np.float64)[:KEY_BINS])
    b = int(np.searchsorted(cum, residual, side="left"))
    if b >= KEY_BINS:
        return KEY_BINS, float(cum[-1]) if cum.size else 0.0
    before = float(cum[b - 1]) if b > 0 else 0.0
    return b, before


def choose_cutoff(
    b: int,
    f: int | None,
    before: float,
    residual: float,
    rows: Sequence[tuple[float, str, float]],
    allow_over: bool = True,
) -> tuple[Cutoff, float]:
    """Fill the residual inside fine cell (``b``, ``f``) from ``rows`` = (key, id, tokens).

    ``before`` is the token mass of every cell before it. Rows are taken in (key, id)
    order; the document that crosses the residual is taken if that lands closer to the
    target than stopping before it (never, if ``allow_over`` is false: a capped domain
    must not exceed its cap). Returns the cutoff and the fractional sample's token mass.
    ``b >= KEY_BINS`` takes every candidate; ``f is None`` takes all of coarse bins < b.
    """
    if b >= KEY_BINS:
        return Cutoff(KEY_BINS), before
    if f is None:
        return Cutoff(b), before
    mass = before
    last: tuple[float, str] | None = None
    for key, did, tok in sorted(rows, key=lambda r: (r[0], r[1])):
        if mass >= residual:
            break
        nxt = mass + tok
        if nxt > residual and (not allow_over or (nxt - residual) > (residual - mass)):
            break
        mass = nxt
        last = (key, did)
    if last is None:
        return Cutoff(b, f), mass
    return Cutoff(b, f, float(last[0]), last[1]), mass
