"""LSH banding for MinHash signatures: band keys, the S-curve and parameter choice.

A signature of ``bands * rows`` values is cut into ``bands`` bands of ``rows`` values.
Two documents are candidates iff at least one band is identical, so for true Jaccard
``s`` the candidate probability is ``1 - (1 - s**rows)**bands`` (the S-curve) with its
inflection near ``(1/bands)**(1/rows)``.
"""

from __future__ import annotations

import numpy as np

_M = np.uint64(0x9E3779B97F4A7C15)


def _fmix64(h: np.ndarray) -> np.ndarray:
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xFF51AFD7ED558CCD)
    h = h ^ (h >> np.uint64(33))
    h = h * np.uint64(0xC4CEB9FE1A85EC53)
    return h ^ (h >> np.uint64(33))


def band_keys(sig: np.ndarray, bands: int, rows: int, seed: int = 0) -> np.ndarray:
    """64-bit key of every band of every signature, shape ``(n, bands)`` (int64 view).

    Equal keys mean equal bands (up to 64-bit collisions); the band index is mixed in, so
    equal values in different bands give different keys.
    """
    n, k = sig.shape
    if bands * rows > k:
        raise ValueError(f"bands*rows={bands * rows} exceeds the signature length {k}")
    s = sig.astype(np.uint64, copy=False)
    out = np.empty((n, bands), dtype=np.uint64)
    with np.errstate(over="ignore"):
        for j in range(bands):
            h = np.full(n, np.uint64(seed & 0xFFFFFFFFFFFFFFFF) ^ (np.uint64(j + 1) * _M), dtype=np.uint64)
            for i in range(rows):
                h = _fmix64(h * _M + s[:, j * rows + i])
            out[:, j] = h
    return out.view(np.int64)


def candidate_probability(s: float | np.ndarray, bands: int, rows: int) -> float | np.ndarray:
    """``P(candidate | J = s) = 1 - (1 - s**rows)**bands``."""
    return 1.0 - (1.0 - np.asarray(s, dtype=np.float64) ** rows) ** bands


def threshold(bands: int, rows: int) -> float:
    """Approximate S-curve threshold (inflection) ``(1/bands)**(1/rows)``."""
    return (1.0 / bands) ** (1.0 / rows)


def _integrate(f, a: float, b: float) -> float:
    from scipy.integrate import quad

    return quad(f, a, b)[0]


def false_positive_area(t: float, bands: int, rows: int) -> float:
    """Integral of the candidate probability over ``[0, t]``."""
    return _integrate(lambda s: 1 - (1 - s ** float(rows)) ** float(bands), 0.0, t)


def false_negative_area(t: float, bands: int, rows: int) -> float:
    """Integral of the miss probability over ``[t, 1]``."""
    return _integrate(lambda s: 1 - (1 - (1 - s ** float(rows)) ** float(bands)), t, 1.0)


def optimal_params(t: float, num_perm: int, fp_weight: float = 0.5, fn_weight: float = 0.5) -> tuple[int, int]:
    """``(bands, rows)`` minimizing the weighted FP+FN areas of the S-curve around ``t``.

    Grid search over ``bands in [1, num_perm]``, ``rows <= num_perm // bands``; gives the
    same choice as datasketch's ``MinHashLSH`` for the same weights.
    """
    best, best_err = (1, num_perm), float("inf")
    for b in range(1, num_perm + 1):
        for r in range(1, num_perm // b + 1):
            err = fp_weight * false_positive_area(t, b, r) + fn_weight * false_negative_area(t, b, r)
            if err < best_err:
                best, best_err = (b, r), err
    return best


def s_curve_table(settings: list[tuple[int, int]], points=(0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)) -> str:
    """A markdown table of candidate probabilities for ``(bands, rows)`` settings."""
    head = "| bands×rows | threshold | " + " | ".join(f"P({p:g})" for p in points) + " |"
    sep = "|" + "---|" * (len(points) + 2)
    lines = [head, sep]
    for b, r in settings:
        vals = " | ".join(f"{candidate_probability(p, b, r):.3f}" for p in points)
        lines.append(f"| {b}×{r} ({b * r}) | {threshold(b, r):.3f} | {vals} |")
    return "\n".join(lines)
