"""select_top: exact global thresholds (PreSelect top-x% by characters, budgets, ties)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

import curate.stages.select_top as st
from curate.fit import FitContext, LocalTaskRunner, ShardSet
from curate.stage import StageError
from curate.stages.select_top import SelectTop, best_first_keys, float_order_keys, key_to_score
from curate.util import id_hashes


def _write(tmp: Path, table: pa.Table, n_files: int) -> ShardSet:
    tmp.mkdir(parents=True, exist_ok=True)
    bounds = np.linspace(0, table.num_rows, n_files + 1).astype(int)
    files = []
    for i in range(n_files):
        p = tmp / f"part-{i}.parquet"
        pq.write_table(table.slice(bounds[i], bounds[i + 1] - bounds[i]), p)
        files.append(str(p))
    return ShardSet(files=tuple(files))


def _fit_apply(tmp: Path, table: pa.Table, n_files: int = 2, **params):
    stage = SelectTop(**params).bind("top", 7)
    ctx = FitContext(
        runner=LocalTaskRunner(), state_dir=tmp / "state", scratch_dir=tmp / "scratch", seed=7, node_id="top"
    )
    state = stage.fit({"up": _write(tmp / "in", table, n_files)}, ctx)
    res = stage.apply(table, state)
    return state, res, ctx


def _vector_table() -> pa.Table:
    # hand-computed: scores [0.9, 0.8, 0.7, 0.1], lengths [50, 100, 100, 750], 10 % -> 0.8
    return pa.table(
        {
            "id": ["a", "b", "c", "d"],
            "text": ["x" * 50, "y" * 100, "z" * 100, "w" * 750],
            "quality": [0.9, 0.8, 0.7, 0.1],
        }
    )


@pytest.mark.parametrize("n_files", [1, 2, 4])
def test_fraction_chars_reference_vector(tmp_path, n_files):
    state, res, _ = _fit_apply(tmp_path, _vector_table(), n_files=n_files, fraction_chars=0.1)
    assert state["threshold"] == 0.8
    assert res.kept.column("id").to_pylist() == ["a", "b"]
    assert res.rejected.column("id").to_pylist() == ["c", "d"]
    assert set(res.rejected.column("reason").to_pylist()) == {"below_threshold"}
    assert res.rejected.column("detail").to_pylist() == [
        "quality=0.7 < threshold 0.8",
        "quality=0.1 < threshold 0.8",
    ]
    s = state["stats"]
    assert (s["pool_docs"], s["pool_chars"], s["kept_docs"], s["kept_chars"]) == (4, 1000, 2, 150)
    assert s["realized_fraction_chars"] == 0.15 and s["mode"] == "fraction_chars" and s["exact"]


def test_ties_at_threshold_are_kept_by_default(tmp_path):
    t = _vector_table()
    t = pa.concat_tables([t, pa.table({"id": ["e"], "text": ["v" * 10], "quality": [0.8]})])
    state, res, _ = _fit_apply(tmp_path, t, fraction_chars=0.1)
    assert state["threshold"] == 0.8 and sorted(res.kept.column("id").to_pylist()) == ["a", "b", "e"]


def test_hand_checked_fraction_chars_example(tmp_path):
    # chars 40+60+30+70+100+200 = 500; 10 % = 50. Best first: f(0.95,40) cum 40 <= 50,
    # e(0.9,60) cum 100 > 50 -> threshold 0.9, keep f, e (100 chars).
    t = pa.table(
        {
            "id": list("abcdef"),
            "text": ["a" * 100, "b" * 200, "c" * 30, "d" * 70, "e" * 60, "f" * 40],
            "quality": [0.2, 0.5, 0.85, 0.1, 0.9, 0.95],
        }
    )
    state, res, _ = _fit_apply(tmp_path, t, n_files=3, fraction_chars=0.1)
    assert state["threshold"] == 0.9
    assert sorted(res.kept.column("id").to_pylist()) == ["e", "f"]
    # 30 % = 150: best first 0.95, 0.9, 0.85, 0.5 -> cum 40, 100, 130, 330 > 150 -> threshold 0.5
    state, res, _ = _fit_apply(tmp_path / "b", t, n_files=3, fraction_chars=0.3)
    assert state["threshold"] == 0.5 and sorted(res.kept.column("id").to_pylist()) == ["b", "c", "e", "f"]


def test_fraction_one_keeps_everything(tmp_path):
    state, res, _ = _fit_apply(tmp_path, _vector_table(), fraction_chars=1.0)
    assert res.rejected is None and state["threshold"] == 0.1


def test_other_modes(tmp_path):
    t = _vector_table()
    # fraction_docs 0.5 -> 2 docs
    _, res, _ = _fit_apply(tmp_path / "fd", t, fraction_docs=0.5)
    assert res.kept.column("id").to_pylist() == ["a", "b"]
    # budget_docs 3
    state, res, _ = _fit_apply(tmp_path / "bd", t, budget_docs=3)
    assert res.kept.column("id").to_pylist() == ["a", "b", "c"] and state["threshold"] == 0.7
    # budget_tokens: one token per doc (no spaces) -> 2 tokens = 2 docs
    _, res, _ = _fit_apply(tmp_path / "bt", t, budget_tokens=2)
    assert res.kept.column("id").to_pylist() == ["a", "b"]
    # token_column
    tt = t.append_column("ntok", pa.array([10, 10, 10, 10]))
    state, res, _ = _fit_apply(tmp_path / "tc", tt, budget_tokens=15, token_column="ntok")
    assert res.kept.column("id").to_pylist() == ["a", "b"] and state["stats"]["kept_tokens"] == 20
    # fixed threshold
    state, res, _ = _fit_apply(tmp_path / "th", t, threshold=0.75)
    assert res.kept.column("id").to_pylist() == ["a", "b"] and state["threshold"] == 0.75
    # keep lowest (e.g. perplexity): 10 % of chars from the low end -> d alone is 750 > 100
    state, res, _ = _fit_apply(tmp_path / "lo", t, fraction_chars=0.1, keep="lowest")
    assert res.kept.column("id").to_pylist() == ["d"] and state["threshold"] == 0.1
    assert set(res.rejected.column("reason").to_pylist()) == {"above_threshold"}
    assert res.rejected.column("detail")[0].as_py() == "quality=0.9 > threshold 0.1"


def test_budget_over_pool_keeps_all_with_warning(tmp_path):
    state, res, ctx = _fit_apply(tmp_path, _vector_table(), budget_docs=10)
    assert res.rejected is None and state["stats"]["kept_docs"] == 4
    assert any("exceeds the pool" in w for w in ctx.warnings)


def test_ties_by_id_cut_exactly_and_deterministically(tmp_path):
    n = 50
    t = pa.table({"id": [f"doc{i}" for i in range(n)], "text": ["t"] * n, "quality": [0.5] * n})
    state, res, _ = _fit_apply(tmp_path / "x", t, n_files=3, budget_docs=7, ties="by_id")
    assert res.kept.num_rows == 7
    h = id_hashes(t.column("id"), state["id_seed"])
    expect = sorted(np.array(t.column("id").to_pylist())[np.argsort(h, kind="stable")[:7]].tolist())
    assert sorted(res.kept.column("id").to_pylist()) == expect
    assert "tie cut by id" in res.rejected.column("detail")[0].as_py()
    # same result with another sharding and batching
    _, res2, _ = _fit_apply(tmp_path / "y", t, n_files=5, budget_docs=7, ties="by_id")
    parts = [
        st.SelectTop(budget_docs=7, ties="by_id").bind("top", 7).apply(t.slice(i, 10), state)
        for i in range(0, n, 10)
    ]
    assert sorted(res2.kept.column("id").to_pylist()) == expect
    assert sorted(x for p in parts for x in p.kept.column("id").to_pylist()) == expect
    # ties=keep keeps the whole tie group
    _, res3, _ = _fit_apply(tmp_path / "z", t, budget_docs=7)
    assert res3.kept.num_rows == n


def test_missing_scores_rejected_and_conserved(tmp_path):
    t = pa.table(
        {
            "id": ["a", "b", "c", "d", "e"],
            "text": ["x" * 50, "y" * 100, "z" * 100, "w" * 750, "n" * 500],
            "quality": [0.9, 0.8, None, 0.1, float("nan")],
        }
    )
    state, res, ctx = _fit_apply(tmp_path, t, fraction_chars=0.1)
    # pool = a, b, d (900 chars) -> 90: a 50, b 150 > 90 -> 0.8
    assert state["threshold"] == 0.8 and state["stats"]["missing_score_docs"] == 2
    assert res.kept.num_rows + res.rejected.num_rows == 5
    reasons = dict(zip(res.rejected.column("id").to_pylist(), res.rejected.column("reason").to_pylist()))
    assert reasons == {"c": "missing_score", "d": "below_threshold", "e": "missing_score"}
    assert any("null/NaN" in w for w in ctx.warnings)


def test_order_keys_roundtrip_and_order():
    vals = np.array([-np.inf, -1e300, -2.5, -0.0, 0.0, 1e-320, 0.3, 7.0, np.inf])
    k = float_order_keys(vals)
    assert np.all(np.diff(k.astype(object)) >= 0) and k[3] == k[4]
    for keep in ("highest", "lowest"):
        bk = best_first_keys(vals, keep)
        assert [key_to_score(int(x), keep) for x in bk] == [v + 0.0 for v in vals]


def _brute(scores, weights, frac, keep):
    order = np.argsort(-scores if keep == "highest" else scores, kind="stable")
    cum = np.cumsum(weights[order])
    target = frac * weights.sum()
    if cum[-1] <= target:
        return scores[order][-1]
    return scores[order][int(np.argmax(cum > target))]


@pytest.mark.parametrize("collect_max", [0, 3, 65536])
def test_distributed_radix_select_matches_brute_force(tmp_path, monkeypatch, collect_max):
    monkeypatch.setattr(st, "COLLECT_MAX", collect_max)
    rng = np.random.default_rng(collect_max)
    for trial in range(12):
        n = int(rng.integers(1, 300))
        scores = np.round(rng.normal(size=n) * 10.0 ** rng.integers(-3, 4), int(rng.integers(0, 3)))
        if trial % 3 == 0:
            scores = rng.integers(-3, 3, size=n).astype(float)  # heavy ties, negatives, zeros
        lens = rng.integers(0, 60, size=n)
        t = pa.table(
            {"id": [f"i{j}" for j in range(n)], "text": ["a" * int(x) for x in lens], "quality": scores}
        )
        keep = ["highest", "lowest"][trial % 2]
        frac = float(rng.uniform(0.01, 1.0))
        state, res, _ = _fit_apply(
            tmp_path / f"t{trial}", t, n_files=int(rng.integers(1, 5)), fraction_chars=frac, keep=keep
        )
        if lens.sum() == 0:
            continue
        exp = _brute(scores, lens, frac, keep)
        assert state["threshold"] == exp, (trial, frac, keep)
        kept = scores >= exp if keep == "highest" else scores <= exp
        assert res.kept.num_rows == int(kept.sum()) == state["stats"]["kept_docs"]
        # exact budgets with id tie-breaking
        k = int(rng.integers(1, n + 1))
        state, res, _ = _fit_apply(
            tmp_path / f"b{trial}", t, n_files=3, budget_docs=k, keep=keep, ties="by_id"
        )
        assert res.kept.num_rows == k == state["stats"]["kept_docs"]


def test_fraction_docs_rounding():
    # ceil(0.1 * 1000) = 100 even though 0.1 * 1000 is not exactly representable
    assert math.ceil(0.1 * 1000 - 1e-9) == 100


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("bad", [0, -0.1, 1.5, 2])
@pytest.mark.parametrize("param", ["fraction_chars", "fraction_docs"])
def test_fraction_outside_unit_interval_is_a_validation_error(param, bad):
    with pytest.raises(ValidationError, match=param):
        SelectTop(**{param: bad})


def test_params_validation():
    assert SelectTop().params.fraction_chars == 0.1  # PreSelect default
    with pytest.raises(ValidationError, match="set only one of"):
        SelectTop(fraction_chars=0.1, budget_docs=5)
    with pytest.raises(ValidationError, match="budget_docs"):
        SelectTop(budget_docs=0)
    with pytest.raises(ValidationError, match="token_column"):
        SelectTop(fraction_chars=0.1, token_column="n")
    with pytest.raises(ValidationError, match="threshold"):
        SelectTop(threshold=float("nan"))
    with pytest.raises(ValidationError, match="keep"):
        SelectTop(keep="best")


def test_missing_or_non_numeric_column_is_a_clear_error(tmp_path):
    t = _vector_table()
    with pytest.raises(StageError, match=r"column 'score' not found in .*part-0\.parquet"):
        _fit_apply(tmp_path / "a", t, column="score")
    with pytest.raises(StageError, match="column 'text' is not numeric"):
        _fit_apply(tmp_path / "b", t, column="text")


# ----------------------------------------------------------------------------- executors


def _spec(inp: str, out: str) -> dict:
    return {
        "name": "top10",
        "seed": 5,
        "settings": {"batch_size": 2, "rows_per_shard": 2},
        "inputs": {"docs": {"path": inp}},
        "nodes": [
            {"id": "top", "stage": "select_top", "inputs": ["docs"], "params": {"fraction_chars": 0.1}}
        ],
        "outputs": {"kept": {"node": "top", "path": out}},
    }


def _hand_checked_input(root: Path) -> None:
    # 10 % of 1000 chars = 100. Best first: 0.99 (40) cum 40, 0.95 (50) cum 90, 0.9 (30) cum 120 > 100
    # -> threshold 0.9; kept: the three best plus the tie at 0.9 (chars 20) = 140 chars.
    rows = [
        ("x" * 40, 0.99),
        ("y" * 300, 0.2),
        ("z" * 50, 0.95),
        ("w" * 30, 0.9),
        ("v" * 400, 0.5),
        ("u" * 20, 0.9),
        ("t" * 160, 0.89),
    ]
    root.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(rows), 3):
        chunk = rows[i : i + 3]
        pq.write_table(
            pa.table({"text": [r[0] for r in chunk], "quality": [r[1] for r in chunk]}),
            root / f"p{i}.parquet",
        )


def _check_job(res, out: Path) -> list[tuple[str, float]]:
    from workers import read_output

    node = res.stats["nodes"]["top"]
    fs = node["fit_stats"]
    assert (
        fs["threshold"] == 0.9
        and fs["kept_docs"] == 4
        and fs["kept_chars"] == 140
        and fs["pool_chars"] == 1000
    )
    assert node["in"] == 7 and node["kept"] == 4 and node["rejected"] == 3
    assert node["rejects_by_reason"] == {"below_threshold": 3}
    kept = read_output(out)
    return sorted(zip(kept.column("text").to_pylist(), kept.column("quality").to_pylist()))


def test_select_top_local_executor_hand_checked(tmp_path):
    from workers import run_pipeline

    _hand_checked_input(tmp_path / "in")
    res = run_pipeline(
        _spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out")),
        executor="local",
        job_dir=tmp_path / "job",
    )
    kept = _check_job(res, tmp_path / "out")
    assert sorted(q for _, q in kept) == [0.9, 0.9, 0.95, 0.99]
    assert sorted(len(t) for t, _ in kept) == [20, 30, 40, 50]


@pytest.mark.ray
def test_select_top_same_on_ray_and_local(tmp_path, ray_local):
    from workers import run_pipeline

    _hand_checked_input(tmp_path / "in")
    r1 = run_pipeline(
        _spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out_l")),
        executor="local",
        job_dir=tmp_path / "jl",
    )
    r2 = run_pipeline(
        _spec(str(tmp_path / "in/*.parquet"), str(tmp_path / "out_r")),
        executor="ray",
        job_dir=tmp_path / "jr",
    )
    assert _check_job(r1, tmp_path / "out_l") == _check_job(r2, tmp_path / "out_r")
    assert r1.stats["nodes"]["top"]["fit_stats"] == r2.stats["nodes"]["top"]["fit_stats"]
    la = {p.name: p.read_bytes() for p in (tmp_path / "out_l").glob("part-*")}
    lb = {p.name: p.read_bytes() for p in (tmp_path / "out_r").glob("part-*")}
    assert la == lb


def test_large_pool_uses_histogram_passes_and_stays_exact(tmp_path):
    n = 200_000
    rng = np.random.default_rng(11)
    scores = np.round(rng.random(n), 4)  # many ties
    lens = rng.integers(1, 30, size=n)
    text = pa.array(["x" * int(k) for k in lens])
    t = pa.table({"id": pa.array([f"d{i}" for i in range(n)]), "text": text, "quality": scores})
    state, res, _ = _fit_apply(tmp_path, t, n_files=4, fraction_chars=0.1)
    exp = _brute(scores, lens, 0.1, "highest")
    assert state["threshold"] == exp and state["stats"]["passes"] > 3  # histogram rounds were needed
    assert res.kept.num_rows == int((scores >= exp).sum()) == state["stats"]["kept_docs"]
    assert state["stats"]["kept_chars"] == int(lens[scores >= exp].sum())


@pytest.mark.parametrize("n_files", [1, 3])
def test_fraction_chars_cumulative_exactly_at_the_target(tmp_path, n_files):
    """The cut is at the first document whose cumulative characters *exceed* the target:
    lengths [50, 50, 100, 800], 10 % of 1000 = 100 chars; after 'b' the sum is exactly 100,
    which does not exceed it, so the threshold is c's score and a, b and c are kept."""
    t = pa.table({"id": ["a", "b", "c", "d"], "text": ["x" * 50, "y" * 50, "z" * 100, "w" * 800],
                  "quality": [0.9, 0.8, 0.7, 0.1]})
    state, res, _ = _fit_apply(tmp_path, t, n_files=n_files, fraction_chars=0.1)
    assert state["threshold"] == 0.7
    assert res.kept.column("id").to_pylist() == ["a", "b", "c"]
    assert res.rejected.column("id").to_pylist() == ["d"]
