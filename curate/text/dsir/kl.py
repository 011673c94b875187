"""KL-reduction diagnostic of DSIR: how much closer to the target the selection is.

KL(target || raw pool) - KL(target || selection), in nats, in the hashed feature space,
with the same ``ln(q + 1e-8)`` as the weights (Xie et al. 2023, arXiv:2302.03169).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from curate.text.dsir.weights import EPS


def kl_divergence(p: np.ndarray, q_counts: np.ndarray) -> float:
    """KL(p || q) in nats, with ``q = c/sum(c)`` and ``ln(q + 1e-8)``; sums over ``p > 0``."""
    q_counts = np.asarray(q_counts, dtype=np.float64)
    total = q_counts.sum()
    q = q_counts / total if total > 0 else q_counts
    nz = p > 0
    return float(np.sum(p[nz] * (np.log(p[nz]) - np.log(q[nz] + EPS))))


def kl_reduction(targets: Iterable[np.ndarray], raw_counts: np.ndarray, selected_counts: np.ndarray) -> dict:
    """Average over targets of KL(t || raw) - KL(t || selected) (DSIR paper metric)."""
    kr, ks = [], []
    for p in targets:
        kr.append(kl_divergence(p, raw_counts))
        ks.append(kl_divergence(p, selected_counts))
    red = float(np.mean(np.array(kr) - np.array(ks))) if kr else 0.0
    return {
        "kl_target_raw": float(np.mean(kr)),
        "kl_target_selected": float(np.mean(ks)),
        "kl_reduction": red,
    }
