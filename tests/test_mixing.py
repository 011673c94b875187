"""Mixing formulas (allocation and order sample) against hand-computed vectors."""

from __future__ import annotations

import numpy as np
import pytest

from curate.stages.mix_allocation import (
    allocate,
    normalize_weights,
    rehydration_weight,
    rehydration_weights,
    temperature_weights,
    unimax_allocation,
    unimax_weights,
)
from curate.stages.mix_order_sample import (
    KEY_BINS,
    choose_cutoff,
    doc_uniforms,
    find_bin,
    fine_bins,
    key_bins,
    order_keys,
)

N = (1000, 100, 10)


def test_water_filling_redistribute_vector():
    a = allocate((0.5, 0.3, 0.2), N, 500, (1, 4, 4), "redistribute")
    assert a.targets == pytest.approx([287.5, 172.5, 40.0])
    assert a.rates == pytest.approx([0.2875, 1.725, 4.0])
    assert a.capped == [False, False, True]
    shares = np.array(a.targets) / sum(a.targets)
    assert shares == pytest.approx([0.575, 0.345, 0.08])
    assert a.budget == pytest.approx(500)
    assert not a.warnings


def test_shrink_budget_vector():
    a = allocate((0.5, 0.3, 0.2), N, 500, (1, 4, 4), "shrink")
    assert a.budget == pytest.approx(200)
    assert a.targets == pytest.approx([100, 60, 40])
    assert a.capped == [False, False, True]
    assert any("shrunk" in w for w in a.warnings)


def test_no_cap_binding_keeps_weights():
    for policy in ("redistribute", "shrink"):
        a = allocate((0.5, 0.3, 0.2), N, 100, 4, policy)
        assert a.targets == pytest.approx([50, 30, 20])
        assert a.capped == [False, False, False]


def test_cascading_water_filling():
    # first pass caps domain 2 (40 > 4*5=20); the redistribution then caps domain 1 too
    a = allocate((0.4, 0.4, 0.2), (1000, 30, 5), 200, 4, "redistribute")
    # d2 = 20 fixed -> R=180 split 0.5/0.5 -> d1 = 90 < 120 ok
    assert a.targets == pytest.approx([90, 90, 20])
    a = allocate((0.4, 0.4, 0.2), (1000, 20, 5), 200, 4, "redistribute")
    # d2 = 20 -> d1 = 90 > 80 -> fixed at 80 -> d0 = 200-20-80 = 100
    assert a.targets == pytest.approx([100, 80, 20])
    assert a.capped == [False, True, True]


def test_all_capped_is_reported():
    a = allocate((0.5, 0.5), (10, 10), 1000, 4, "redistribute")
    assert a.targets == pytest.approx([40, 40])
    assert a.budget == pytest.approx(80)
    assert a.warnings and "cap" in a.warnings[0]


@pytest.mark.parametrize(
    "alpha,expected",
    [
        (1.0, (0.900901, 0.090090, 0.009009)),
        (0.7, (0.806883, 0.160994, 0.032123)),
        (0.5, (0.706101, 0.223289, 0.070610)),
        (0.3, (0.570654, 0.286004, 0.143342)),
        (0.0, (1 / 3, 1 / 3, 1 / 3)),
    ],
)
def test_temperature_vectors(alpha, expected):
    assert temperature_weights(N, alpha) == pytest.approx(expected, abs=1e-6)


def test_unimax_vector():
    assert unimax_allocation(N, 600, 4) == pytest.approx([280, 280, 40])
    assert unimax_weights(N, 600, 4) == pytest.approx([0.4666667, 0.4666667, 0.0666667], abs=1e-6)


@pytest.mark.parametrize(
    "size,weight", [(1, 1), (2, 2), (3, 3), (4, 3), (5, 5), (99, 5), (100, 8), (999, 8), (1000, 1), (0, 1)]
)
def test_rehydration_mapping(size, weight):
    assert rehydration_weight(size) == weight
    assert rehydration_weights(np.array([size]))[0] == weight


def test_bad_weights_are_rejected():
    with pytest.raises(ValueError, match="sum to 0"):
        allocate((0, 0), (1, 1), 10)
    with pytest.raises(ValueError, match=">= 0"):
        normalize_weights((-1, 2))
    with pytest.raises(ValueError, match="policy"):
        allocate((1,), (1,), 10, 4, "nope")  # type: ignore[arg-type]


def test_uniforms_depend_only_on_seed_domain_id():
    ids = [f"d{i}" for i in range(1000)]
    u = doc_uniforms(ids, 7, "web")
    assert np.array_equal(u[10:20], doc_uniforms(ids[10:20], 7, "web"))
    assert not np.array_equal(u, doc_uniforms(ids, 8, "web"))
    assert not np.array_equal(u, doc_uniforms(ids, 7, "code"))
    assert 0.45 < u.mean() < 0.55 and u.min() >= 0 and u.max() < 1


def test_cutoff_fills_residual_token_accurately():
    """Two-level histogram + sorted final cell = the (key, id)-prefix closest to the residual."""
    rng = np.random.default_rng(0)
    n = 200_000
    ids = [f"x{i}" for i in range(n)]
    tok = rng.integers(10, 500, size=n).astype(float)
    frac = np.full(n, 0.3)
    keys = order_keys(doc_uniforms(ids, 1, "a"), frac)
    bins = key_bins(keys)
    residual = 0.3 * tok.sum()
    hist = np.bincount(bins, weights=tok, minlength=KEY_BINS + 1)
    b, mass_b = find_bin(hist, residual)
    inb = np.nonzero(bins == b)[0]
    fb = fine_bins(keys[inb], b)
    f, mass_f = find_bin(
        np.bincount(fb, weights=tok[inb], minlength=KEY_BINS), residual - mass_b
    )
    cell = inb[fb == f]
    assert len(cell) < 10  # the driver only ever sorts a handful of rows
    rows = [(keys[j], ids[j], tok[j]) for j in cell]
    cut, mass = choose_cutoff(b, f, mass_b + mass_f, residual, rows)
    sel = cut.selects(keys, ids)
    assert tok[sel].sum() == pytest.approx(mass)
    assert abs(mass - residual) <= tok.max() / 2
    # the sample is exactly the lowest keys: a prefix in (key, id) order
    order = np.lexsort((np.array(ids), keys))
    k = int(sel.sum())
    assert set(order[:k].tolist()) == set(np.nonzero(sel)[0].tolist())
    cum = np.cumsum(tok[order])
    best = min(range(k - 2, k + 3), key=lambda i: abs(cum[i - 1] - residual) if i > 0 else residual)
    assert best == k  # no other prefix length lands closer to the target
    # a capped domain never overshoots
    cut2, mass2 = choose_cutoff(b, f, mass_b + mass_f, residual, rows, allow_over=False)
    assert mass2 <= residual and tok[cut2.selects(keys, ids)].sum() == pytest.approx(mass2)


def test_find_bin_edges():
    h = np.zeros(KEY_BINS + 1)
    h[5] = 10
    assert find_bin(h, 0) == (0, 0.0)
    assert find_bin(h, 4) == (5, 0.0)
    assert find_bin(h, 100) == (KEY_BINS, 10.0)
