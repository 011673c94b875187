"""Classifier metrics for scorer validation reports (no scikit-learn needed)."""

from __future__ import annotations

import numpy as np


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney U with average ranks for tied scores).

    ``labels`` are 1 for positives and 0 for negatives. Returns None when one class is absent.
    """
    y = np.asarray(labels).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    from scipy.stats import rankdata

    ranks = rankdata(s)  # average ranks for ties
    u = ranks[y].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def accuracy(labels: np.ndarray, predicted: np.ndarray) -> float | None:
    """Share of equal entries; None for an empty set."""
    y = np.asarray(labels)
    return float((y == np.asarray(predicted)).mean()) if len(y) else None
