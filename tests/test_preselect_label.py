"""PreSelect predictive strength (Shum et al. 2025; :mod:`curate.preselect.label`) and label selection."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from curate.preselect import LabelError, check_loss_matrix, label_documents, predictive_strength
from curate.preselect.label import META_KEY, predictive_strength_counts


def _ps(losses, bench):
    counts, ps = predictive_strength(np.array([losses], dtype=float), bench)
    return int(counts[0]), float(ps[0])


# ----------------------------------------------------------------------------- the formula


def test_reference_vector_n6():
    bench = [75.38, 76.30, 77.27, 79.46, 80.47, 81.19]  # ascending, the order PS(d) ranks the models in
    assert _ps([2.10, 2.05, 2.00, 1.90, 1.85, 1.80], bench) == (15, 1.0)
    # swap the last two losses: one discordant pair
    assert _ps([2.10, 2.05, 2.00, 1.90, 1.80, 1.85], bench) == (14, 14 / 15)


def test_n6_hand_computed_and_reversed():
    bench = [1, 2, 3, 4, 5, 6]
    # pairs i<j with L_i > L_j in [5,1,4,2,3,0]: 5 (from 5) + 1 (1>0) + 3 (4>2,3,0) + 1 + 1 = 11
    assert _ps([5, 1, 4, 2, 3, 0], bench) == (11, 11 / 15)
    assert _ps([0, 1, 2, 3, 4, 5], bench) == (0, 0.0)  # exactly reversed ranking
    assert _ps([6, 5, 4, 3, 2, 1], bench) == (15, 1.0)  # perfect
    # ties: [3,3,2,2,1,1] -> 15 pairs minus the 3 tied pairs = 12
    assert _ps([3, 3, 2, 2, 1, 1], bench) == (12, 12 / 15)
    assert _ps([1, 1, 1, 1, 1, 1], bench) == (0, 0.0)


def test_n3_hand_computed():
    bench = [10.0, 20.0, 30.0]
    assert _ps([3.0, 2.0, 1.0], bench) == (3, 1.0)
    assert _ps([1.0, 2.0, 3.0], bench) == (0, 0.0)
    assert _ps([2.0, 3.0, 1.0], bench) == (2, 2 / 3)  # (1,3) and (2,3) concordant, (1,2) not
    assert _ps([2.0, 2.0, 1.0], bench) == (2, 2 / 3)  # tie between models 1 and 2 scores 0
    assert _ps([1.0, 1.0, 1.0], bench) == (0, 0.0)


def test_model_order_does_not_matter():
    rng = np.random.default_rng(3)
    losses = rng.normal(size=(200, 6))
    bench = np.array([5.0, 1.0, 4.0, 2.0, 6.0, 3.0])
    c1, _ = predictive_strength(losses, bench)
    perm = rng.permutation(6)
    c2, _ = predictive_strength(losses[:, perm], bench[perm])
    np.testing.assert_array_equal(c1, c2)
    # same as the explicit double loop over all ordered pairs
    brute = [
        sum(1 for i in range(6) for j in range(6) if bench[i] < bench[j] and row[i] > row[j])
        for row in losses
    ]
    np.testing.assert_array_equal(c1, brute)
    assert predictive_strength_counts(losses[:, np.argsort(bench)]).tolist() == brute


def test_bench_ties_and_sizes_are_errors():
    with pytest.raises(LabelError, match="distinct"):
        predictive_strength(np.ones((2, 3)), [1.0, 1.0, 2.0])
    with pytest.raises(LabelError, match="at least 2 models"):
        predictive_strength(np.ones((2, 1)), [1.0])
    with pytest.raises(LabelError, match="3 models but 2 benchmark"):
        predictive_strength(np.ones((2, 3)), [1.0, 2.0])


# ----------------------------------------------------------------------------- labels


def _matrix(rows: dict[str, list[float]], ids=None) -> pa.Table:
    n = len(next(iter(rows.values())))
    cols = {"id": ids or [f"d{i}" for i in range(n)], "text": [f"text {i}" for i in range(n)]}
    cols.update({f"bpc_{k}": v for k, v in rows.items()})
    return pa.table(cols)


BENCH = {"s": 1.0, "m": 2.0, "l": 3.0}


def _losses() -> pa.Table:
    # counts per doc (models s < m < l): d0 3, d1 3, d2 0, d3 2, d4 1, d5 2, d6 0, d7 3
    return _matrix(
        {
            "s": [3, 3, 1, 3, 1, 2, 1, 9],
            "m": [2, 2, 2, 1, 3, 3, 1, 8],
            "l": [1, 1, 3, 2, 2, 1, 1, 7],
        }
    )


def test_lowest_negatives_are_balanced_and_lowest():
    res = label_documents(_losses(), BENCH, negatives="lowest", seed=0)
    t = res.table
    lab = dict(zip(t.column("id").to_pylist(), t.column("label").to_pylist()))
    assert [k for k, v in lab.items() if v == 1] == ["d0", "d1", "d7"]
    neg = [k for k, v in lab.items() if v == 0]
    # three lowest: d2 (0), d6 (0), d4 (1)
    assert sorted(neg) == ["d2", "d4", "d6"]
    assert t.column("ps_count").to_pylist() == [3, 3, 0, 1, 0, 3]
    assert res.summary["score_histogram"] == {"0": 2, "1": 1, "2": 2, "3": 3}
    assert res.summary["positives"] == res.summary["negatives_chosen"] == 3
    assert set(t.column_names) >= {"id", "text", "bpc_s", "ps", "ps_count", "label"}


def test_hard_negatives_take_best_imperfect_with_seeded_ties():
    res = label_documents(_losses(), BENCH, negatives="hard", seed=0)
    t = res.table
    neg = sorted(i for i, v in zip(t.column("id").to_pylist(), t.column("label").to_pylist()) if v == 0)
    # best imperfect first: d3 and d5 score 2, then d4 scores 1
    assert neg == ["d3", "d4", "d5"]
    # ties broken by a seeded id hash: deterministic, and can change with the seed
    many = _matrix({"s": [2, 2, 2, 2, 2, 9], "m": [1, 1, 1, 1, 1, 8], "l": [3, 3, 3, 3, 3, 7]})
    a = label_documents(many, BENCH, seed=1).table.column("id").to_pylist()
    assert a == label_documents(many, BENCH, seed=1).table.column("id").to_pylist()
    picks = {tuple(label_documents(many, BENCH, seed=s).table.column("id").to_pylist()) for s in range(10)}
    assert len(picks) > 1


def test_max_positives_and_unbalanced_warning():
    res = label_documents(_losses(), BENCH, max_positives=2)
    assert res.summary["positives"] == 2 and res.summary["negatives_chosen"] == 2
    all_perfect_but_one = _matrix({"s": [3, 3, 3, 1], "m": [2, 2, 2, 2], "l": [1, 1, 1, 3]})
    res = label_documents(all_perfect_but_one, BENCH)
    assert res.summary["positives"] == 3 and res.summary["negatives_chosen"] == 1
    assert "unbalanced" in res.summary["warnings"][0]


# ----------------------------------------------------------------------------- bad input


def test_no_positive_is_a_clear_error():
    with pytest.raises(LabelError, match="no document has a perfect predictive-strength score"):
        label_documents(_matrix({"s": [1, 1], "m": [2, 2], "l": [3, 3]}), BENCH)


def test_bench_not_matching_loss_columns():
    with pytest.raises(LabelError, match=r"no benchmark score for models \['l'\]"):
        label_documents(_losses(), {"s": 1.0, "m": 2.0})
    with pytest.raises(LabelError, match=r"benchmark scores for models not in the loss matrix \['xl'\]"):
        label_documents(_losses(), {**BENCH, "xl": 4.0})
    with pytest.raises(LabelError, match="not a finite number"):
        label_documents(_losses(), {**BENCH, "l": float("nan")})
    with pytest.raises(LabelError, match="distinct"):
        label_documents(_losses(), {"s": 1.0, "m": 1.0, "l": 3.0})


def test_nan_or_missing_losses_are_named():
    t = _matrix({"s": [3.0, float("nan")], "m": [2.0, 2.0], "l": [1.0, 1.0]}, ids=["ok", "broken"])
    with pytest.raises(LabelError, match=r"loss column 'bpc_s' has 1 missing/NaN.*id 'broken'"):
        label_documents(t, BENCH)
    t = pa.table({"id": ["a"], "bpc_s": pa.array([None], pa.float64()), "bpc_m": [1.0], "bpc_l": [1.0]})
    with pytest.raises(LabelError, match="bpc_s"):
        check_loss_matrix(t, BENCH)


def test_missing_model_columns_are_named():
    t = _losses().drop_columns(["bpc_l"])
    declared = {"models": [{"name": n} for n in ("s", "m", "l")]}
    t = t.replace_schema_metadata({META_KEY: json.dumps(declared).encode()})
    with pytest.raises(LabelError, match=r"missing the loss columns of models \['l'\]"):
        label_documents(t, BENCH)
    with pytest.raises(LabelError, match="need 'bpc_<model>' columns for at least 2 models"):
        label_documents(_losses().select(["id", "bpc_s"]), {"s": 1.0})
