"""Token-budget domain mixing: the pure formulas (algorithms.md §5).

Everything here is plain arithmetic on per-domain totals and per-document keys, so the
``mix`` stage (:mod:`curate.stages.mix`) and the tests share one implementation.

* :func:`temperature_weights` — q_i ∝ p_i^α with p_i the token share (§5.4).
* :func:`unimax_weights` — UniMax allocation with an epoch cap (§5.4).
* :func:`allocate` — per-domain target tokens under repetition caps: water-filling
  (``redistribute``) or proportional ``shrink`` of the budget (§5.2).
* :func:`rehydration_weight` — FineWeb2 upsampling weight by dup-cluster size (§5.6).
* :func:`doc_keys` / :func:`copies_and_order` — the deterministic materialization: every
  document gets ⌊c⌋ whole copies (c = rate × rehydration weight) plus one more if it is in
  the seeded fractional sample. The sample is an order sample: key ``u`` (uniform, from
  xxh3 of the seed, domain and document id) divided by the fractional part; documents
  are taken in key order until the residual token mass is filled (§5.3). Keys depend
  only on the seed, the domain and the id, never on batching or sharding.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import asdict, dataclass, field
from typing import Literal, Mapping, Sequence

import numpy as np
import xxhash

#: Default repetition cap (epochs over unique tokens), Muennighoff et al. 2023 (§5.5).
DEFAULT_MAX_EPOCHS = 4.0

#: FineWeb2 rehydration table (§5.6): lower bound of cluster size -> upsampling weight.
DEFAULT_REHYDRATION: dict[int, float] = {1: 1, 2: 2, 3: 3, 5: 5, 100: 8, 1000: 1}

#: Bins per level of the two-level histogram over the order-sample key (fit passes 2-3).
KEY_BINS = 2048  # per level: a coarse and a fine histogram give 2048² cells

CapPolicy = Literal["redistribute", "shrink"]


def temperature_weights(tokens: Sequence[float], alpha: float) -> list[float]:
    """Temperature (α) sampling weights: ``q_i = p_i^α / Σ_j p_j^α`` with ``p_i = n_i/Σn``.

    Domains with zero tokens get weight 0. α = 0 gives uniform weights over non-empty
    domains, α = 1 the natural proportions.
    """
    n = np.asarray(tokens, dtype=np.float64)
    if n.size == 0 or n.sum() <= 0:
        return [0.0] * int(n.size)
    p = n / n.sum()
    q = np.where(p > 0, np.power(p, alpha, where=p > 0, out=np.zeros_like(p)), 0.0)
    return (q / q.sum()).tolist()


def unimax_allocation(
    tokens: Sequence[float], budget: float, max_epochs: float | Sequence[float]
) -> list[float]:
    """UniMax token allocation: uniform over domains, capped at ``max_epochs × n_i``.

    Domains are visited from the smallest to the largest (ties by index); each gets
    ``min(remaining / domains_left, E_i · n_i)``, which is then subtracted from the budget.
    """
    n = [float(x) for x in tokens]
    caps = _per_domain(max_epochs, len(n))
    order = sorted(range(len(n)), key=lambda i: (n[i], i))
    remaining = float(budget)
    out = [0.0] * len(n)
    for k, i in enumerate(order):
        u = min(remaining / (len(n) - k), caps[i] * n[i])
        out[i] = u
        remaining -= u
    return out


def unimax_weights(
    tokens: Sequence[float], budget: float, max_epochs: float | Sequence[float]
) -> list[float]:
    """UniMax weights ``q_i = U_i / B`` (they sum to < 1 when every domain is capped)."""
    return [u / budget for u in unimax_allocation(tokens, budget, max_epochs)]


def normalize_weights(weights: Sequence[float]) -> list[float]:
    """Scale non-negative weights to sum to 1 (error if they are all zero or negative)."""
    w = [float(x) for x in weights]
    if any(x < 0 or not math.isfinite(x) for x in w):
        raise ValueError(f"mix weights must be finite and >= 0, got {w}")
    s = sum(w)
    if s <= 0:
        raise ValueError("mix weights sum to 0: at least one domain needs a positive weight")
    return [x / s for x in w]


@dataclass
class Allocation:
    """Per-domain target tokens and rates under repetition caps.

    ``targets[i]`` = d_i, ``rates[i]`` = d_i / n_i (epochs), ``capped[i]`` = the cap bound,
    ``budget`` = the budget actually allocated (``Σ d``; below the requested budget after
    ``shrink`` or when every domain is capped), ``warnings`` = what the caller should surface.
    """

    targets: list[float]
    rates: list[float]
    capped: list[bool]
    budget: float
    requested_budget: float
    policy: str
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def allocate(
    weights: Sequence[float],
    tokens: Sequence[float],
    budget: float,
    max_epochs: float | Sequence[float] = DEFAULT_MAX_EPOCHS,
    policy: CapPolicy = "redistribute",
) -> Allocation:
    """Target tokens per domain: ``d_i = w_i·B`` subject to ``d_i <= E_i·n_i`` (§5.2).

    ``redistribute`` (water-filling): capped domains are fixed at their cap and the rest
    of the budget is re-split over the uncapped domains in proportion to their weights,
    until no domain is over its cap. If every weighted domain ends up capped, the budget
    becomes ``Σ cap`` (with a warning).

    ``shrink``: keep the proportions exactly and lower the budget to
    ``B' = min(B, min_i cap_i / w_i)``.
    """
    w = normalize_weights(weights)
    n = [max(0.0, float(x)) for x in tokens]
    if len(w) != len(n):
        raise ValueError("weights and tokens must have the same length")
    epochs = _per_domain(max_epochs, len(n))
    caps = [e * x for e, x in zip(epochs, n)]
    warnings: list[str] = []
    B = float(budget)
    if B <= 0:
        raise ValueError(f"budget_tokens must be > 0, got {budget}")
    k = len(w)
    if policy == "shrink":
        limits = [caps[i] / w[i] for i in range(k) if w[i] > 0]
        b2 = min([B, *limits])
        if b2 < B:
            warnings.append(
                f"repetition caps bind: budget shrunk from {B:.0f} to {b2:.0f} tokens to keep the proportions"
            )
        d = [w[i] * b2 for i in range(k)]
        capped = [w[i] > 0 and d[i] >= caps[i] * (1 - 1e-12) and b2 < B for i in range(k)]
    elif policy == "redistribute":
        fixed = [False] * k
        d = [w[i] * B for i in range(k)]
        while True:
            over = [i for i in range(k) if not fixed[i] and d[i] > caps[i]]
            if not over:
                break
            for i in over:
                fixed[i] = True
                d[i] = caps[i]
            free = [i for i in range(k) if not fixed[i] and w[i] > 0]
            rest = B - sum(d[i] for i in range(k) if fixed[i])
            if not free:
                break
            wf = sum(w[i] for i in free)
            for i in free:
                d[i] = rest * w[i] / wf
        capped = fixed
        if sum(d) < B * (1 - 1e-12):
            warnings.append(
                f"every weighted domain is at its repetition cap: only {sum(d):.0f} of {B:.0f} "
                "budget tokens can be allocated"
            )
    else:
        raise ValueError(f"unknown cap policy {policy!r} (use 'redistribute' or 'shrink')")
    for i in range(k):
        if w[i] > 0 and n[i] == 0:
            warnings.append(f"domain #{i} has weight {w[i]:.4g} but no tokens")
    rates = [d[i] / n[i] if n[i] > 0 else 0.0 for i in range(k)]
    return Allocation(d, rates, capped, float(sum(d)), B, policy, warnings)


def _per_domain(value: float | Sequence[float], k: int) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * k
    out = [float(x) for x in value]
    if len(out) != k:
        raise ValueError("per-domain values must match the number of domains")
    return out


def rehydration_weight(cluster_size: int, table: Mapping[int, float] | None = None) -> float:
    """FineWeb2 upsampling weight for a kept document whose dup cluster has ``cluster_size``.

    A floor lookup on the table's lower bounds (``bisect_right(limits, N) - 1``).
    Sizes below the smallest bound (0, missing) get weight 1.
    """
    tbl = DEFAULT_REHYDRATION if table is None else table
    limits = sorted(int(x) for x in tbl)
    i = bisect.bisect_right(limits, int(cluster_size)) - 1
    return 1.0 if i < 0 else float(tbl[limits[i]])


def rehydration_weights(sizes: np.ndarray, table: Mapping[int, float] | None = None) -> np.ndarray:
    """Vectorized :func:`rehydration_weight` (null/invalid sizes count as 1)."""
    tbl = DEFAULT_REHYDRATION if table is None else table
    limits = np.array(sorted(int(x) for x in tbl), dtype=np.int64)
    vals = np.array([float(tbl[int(x)]) for x in limits], dtype=np.float64)
    s = np.nan_to_num(np.asarray(sizes, dtype=np.float64), nan=1.0).astype(np.int64)
    idx = np.searchsorted(limits, s, side="right") - 1
    return np.where(idx >= 0, vals[np.clip(idx, 0, None)], 1.0)


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
