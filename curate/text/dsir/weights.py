"""DSIR importance weights: target and raw n-gram distributions and their log ratio.

A document's log importance weight is ``f(x) . log_diff`` with ``f(x)`` its bucket counts;
the featurizer (:meth:`~curate.text.dsir.featurizer.HashedNgramFeaturizer.score`) takes
the dot product.
"""

from __future__ import annotations

import numpy as np

EPS = 1e-8  # the reference's epsilon inside the logs (also used for the KL metric)


def target_distribution(counts: np.ndarray, smoothing: float = 0.0) -> np.ndarray:
    """``(c + lambda) / sum(c + lambda)`` (Laplace smoothing over all buckets)."""
    c = np.asarray(counts, dtype=np.float64) + float(smoothing)
    total = c.sum()
    if total <= 0:
        raise ValueError("target distribution is empty (no n-grams in the target set)")
    return c / total


def raw_distribution(counts: np.ndarray) -> np.ndarray:
    """Unsmoothed ``c / sum(c)``."""
    c = np.asarray(counts, dtype=np.float64)
    total = c.sum()
    if total <= 0:
        raise ValueError("raw distribution is empty (no n-grams in the raw pool)")
    return c / total


def log_diff(target_probs: np.ndarray, raw_probs: np.ndarray) -> np.ndarray:
    """Per-bucket log importance ratio ``log(t + 1e-8) - log(r + 1e-8)``."""
    return np.log(target_probs + EPS) - np.log(raw_probs + EPS)
