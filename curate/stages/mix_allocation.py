"""Token-budget domain mixing: how many tokens each domain gets, and each document's weight.

Plain arithmetic on per-domain totals, shared by the ``mix`` stage
(:mod:`curate.stages.mix`) and the tests (the README paragraph "Domain mixing" describes
the stage):

* :func:`temperature_weights` -- q_i ∝ p_i^α with p_i the token share (temperature
  sampling, as in multilingual pretraining, e.g. mT5: Xue et al. 2021).
* :func:`unimax_weights` -- UniMax allocation with an epoch cap (Chung et al. 2023,
  "UniMax: Fairer and More Effective Language Sampling for Large-Scale Multilingual
  Pretraining").
* :func:`allocate` -- per-domain target tokens under repetition caps: water-filling
  (``redistribute``) or proportional ``shrink`` of the budget.
* :func:`rehydration_weight` -- FineWeb2 upsampling weight by dup-cluster size (Penedo et
  al. 2025, "FineWeb2: One Pipeline to Scale Them All").

Which documents realize the allocation is :mod:`curate.stages.mix_order_sample`.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

#: Default repetition cap (epochs over unique tokens): Muennighoff et al. 2023, "Scaling
#: Data-Constrained Language Models" (arXiv:2305.16264), find up to 4 epochs nearly as good as
#: fresh data.
DEFAULT_MAX_EPOCHS = 4.0

#: FineWeb2 rehydration table: lower bound of cluster size -> upsampling weight.
DEFAULT_REHYDRATION: dict[int, float] = {1: 1, 2: 2, 3: 3, 5: 5, 100: 8, 1000: 1}


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
    """Target tokens per domain: ``d_i = w_i·B`` subject to ``d_i <= E_i·n_i``.

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
