"""The held-out split of classifier training, and its check for too few documents per class.

:func:`split_mask` holds out a seeded hash fraction of keys (document ids, or group names
with ``group_column``). A small or skewed corpus can leave a class nearly absent from
that split (1 negative in 495), and then ROC-AUC and accuracy mean little.
:func:`ensure_held_out_classes` checks that each class (positives, negatives) has at least
``MIN_HELD_OUT_PER_CLASS`` held-out documents; when one does not, it falls back to a
stratified split: it keeps the hash split and holds out further keys of the short class,
in the same seeded hash order (whole groups with ``group_column``), never taking more than
half of a class from training. When that cannot reach the minimum it says why, and the
hash split stays.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from curate.preselect.label import derive_seed
from curate.util import id_hashes

MIN_HELD_OUT_PER_CLASS = 20
"""Held-out documents each class needs for the report's metrics to mean something."""


def split_unit(keys: pa.Array | pa.ChunkedArray, seed: int) -> np.ndarray:
    """A seeded uniform number in [0, 1) per key (same key, same number)."""
    h = id_hashes(keys, derive_seed(seed, "preselect.split"))
    return (h >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def split_mask(keys: pa.Array | pa.ChunkedArray, valid_fraction: float, seed: int) -> np.ndarray:
    """True for held-out rows: a seeded hash of each key (a document id or a group name)."""
    return split_unit(keys, seed) < valid_fraction


def ensure_held_out_classes(
    keys: pa.Array | pa.ChunkedArray,
    y: np.ndarray,
    valid: np.ndarray,
    seed: int,
    *,
    positive_label: str,
    by_group: bool,
    min_per_class: int = MIN_HELD_OUT_PER_CLASS,
) -> tuple[np.ndarray, dict[str, Any], list[str]]:
    """Check the held-out split ``valid`` has ``min_per_class`` positives (``y == 1``) and
    negatives; fall back to a stratified split if not.

    Returns the (possibly new) mask, the check's record for the report and its warnings."""
    names = {1: f"positive ({positive_label})", 0: "negative"}
    total = {c: int((y == c).sum()) for c in (1, 0)}
    before = {c: int((y[valid] == c).sum()) for c in (1, 0)}
    record: dict[str, Any] = {"min_per_class": min_per_class,
                              "held_out": {names[c]: before[c] for c in (1, 0)}, "fallback": None}
    short = [c for c in (1, 0) if before[c] < min_per_class]
    if not valid.any() or not short:
        return valid, record, []
    unit = "groups" if by_group else "documents"
    found = ", ".join(f"{before[c]} {names[c].split(' ')[0]}" for c in short)
    first = f"the held-out split has only {found} document(s) (fewer than {min_per_class})"
    cannot = [c for c in short if total[c] // 2 < min_per_class]
    if cannot:
        c = cannot[0]
        why = (f"cannot stratify: the data has only {total[c]} {names[c]} documents, and holding out "
               f"{min_per_class} would take more than half of them from training; add data or treat its "
               "ROC-AUC and accuracy as unreliable")
        record["reason"] = why
        return valid, record, [f"{first}; {why}"]
    new = _top_up(keys, y, valid, seed, short, total, min_per_class, by_group)
    after = {c: int((y[new] == c).sum()) for c in (1, 0)}
    if any(after[c] < min_per_class for c in short):
        why = (f"cannot stratify by whole {unit}: no choice of further {unit} holds out {min_per_class} "
               f"of each class while leaving half of each for training; treat ROC-AUC and accuracy as "
               "unreliable or use another group column")
        record["reason"] = why
        return valid, record, [f"{first}; {why}"]
    record.update(fallback="stratified", held_out_after={names[c]: after[c] for c in (1, 0)})
    got = ", ".join(f"{after[c]} {names[c].split(' ')[0]}" for c in (1, 0))
    return new, record, [(f"{first}; fell back to a stratified split (further held-out {unit} of the short "
                         f"class, in seeded order): now {got}")]


def _top_up(keys: Any, y: np.ndarray, valid: np.ndarray, seed: int, short: list[int], total: dict[int, int],
            min_per_class: int, by_group: bool) -> np.ndarray:
    """``valid`` plus further keys (lowest seeded hash first) holding documents of a
    ``short`` class, until each has ``min_per_class``; a key is skipped when it would take
    more than half of any class out of training."""
    u = split_unit(keys, seed)
    if by_group:
        _, inverse = np.unique(np.array([str(k) for k in keys.to_pylist()]), return_inverse=True)
    else:
        inverse = np.arange(len(y))
    n_units = int(inverse.max()) + 1 if len(inverse) else 0
    per_unit = {c: np.bincount(inverse, weights=(y == c), minlength=n_units).astype(np.int64) for c in (1, 0)}
    unit_u = np.zeros(n_units)
    unit_u[inverse] = u
    taken = np.zeros(n_units, dtype=bool)
    taken[inverse[valid]] = True
    held = {c: int((y[valid] == c).sum()) for c in (1, 0)}
    limit = {c: total[c] // 2 for c in (1, 0)}
    candidates = np.flatnonzero(~taken & (sum(per_unit[c] for c in short) > 0))
    for g in candidates[np.argsort(unit_u[candidates], kind="stable")]:
        if all(held[c] >= min_per_class for c in short):
            break
        if not any(per_unit[c][g] and held[c] < min_per_class for c in short):
            continue
        if any(held[c] + per_unit[c][g] > limit[c] for c in (1, 0)):
            continue
        taken[g] = True
        for c in (1, 0):
            held[c] += int(per_unit[c][g])
    return taken[inverse]
