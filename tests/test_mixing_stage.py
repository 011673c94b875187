"""The `mix` barrier stage in-process: shares, caps, determinism, copies and the ledger."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError

from curate.fit import FitContext, LocalTaskRunner, ShardSet
from curate.stages.mix import MIX_NOT_SAMPLED, Mix

SIZES = {"web": 4000, "code": 600, "books": 60}  # very different domain sizes


def _write_domain(root: Path, domain: str, n: int, parts: int = 3, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(sum(map(ord, domain)) + seed)
    lens = rng.integers(5, 120, size=n)
    files = []
    for p, idx in enumerate(np.array_split(np.arange(n), parts)):
        t = pa.table(
            {
                "id": [f"{domain}-{i:05d}" for i in idx],
                "text": [" ".join(["w"] * int(lens[i])) for i in idx],
                "domain": [domain] * len(idx),
            }
        )
        f = root / domain / f"part-{p:05d}.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, f)
        files.append(str(f))
    return files


@pytest.fixture
def corpus(tmp_path: Path) -> dict[str, ShardSet]:
    return {d: ShardSet(files=tuple(_write_domain(tmp_path / "in", d, n))) for d, n in SIZES.items()}


def _tokens(files) -> dict[str, int]:
    out: dict[str, int] = {}
    for f in files:
        t = pq.read_table(f)
        for d, txt in zip(t.column("domain").to_pylist(), t.column("text").to_pylist()):
            out[d] = out.get(d, 0) + len(txt.split())
    return out


def _run(stage: Mix, inputs: dict[str, ShardSet], tmp: Path, batch_size: int = 500):
    stage.bind("mix", seed=11)
    ctx = FitContext(
        runner=LocalTaskRunner(),
        state_dir=tmp / "state",
        scratch_dir=tmp / "scratch",
        seed=11,
        node_id="mix",
        batch_size=batch_size,
    )
    (tmp / "state").mkdir(parents=True, exist_ok=True)
    state = json.loads(json.dumps(stage.fit(inputs, ctx)))  # state must be JSON-able
    kept, rej = [], []
    for name, ss in inputs.items():
        for b in ss.iter_batches(batch_size=batch_size):
            r = stage.apply(b, state)
            kept.append(r.kept)
            if r.rejected is not None:
                rej.append(r.rejected)
    return state, pa.concat_tables(kept), (pa.concat_tables(rej) if rej else None), ctx


def _realized(kept: pa.Table) -> dict[str, int]:
    out: dict[str, int] = {}
    for d, txt in zip(kept.column("mix_bucket").to_pylist(), kept.column("text").to_pylist()):
        out[d] = out.get(d, 0) + len(txt.split())
    return out


def test_explicit_weights_shares_caps_and_ledger(corpus, tmp_path):
    avail = _tokens([f for s in corpus.values() for f in s.files])
    budget = 150_000
    stage = Mix(budget_tokens=budget, weights={"web": 0.5, "code": 0.3, "books": 0.2})
    state, kept, rej, ctx = _run(stage, corpus, tmp_path)
    man = state["stats"]["mix"]
    real = _realized(kept)
    for d, e in man["domains"].items():
        assert e["available_tokens"] == avail[d]
        assert real[d] == e["realized_tokens"]  # manifest matches what apply emitted
        assert real[d] <= e["max_epochs"] * avail[d]  # no domain over its cap
        assert abs(e["realized_share"] - e["target_share"]) < 0.005
    # books is capped at 4 epochs; the excess went to web and code (water-filling)
    assert man["domains"]["books"]["cap_bound"] is True
    assert man["domains"]["books"]["epochs_used"] == pytest.approx(4.0)
    # hand-computed water-filling: books fixed at 4·n, the rest split 0.5 : 0.3
    rest = budget - 4 * avail["books"]
    assert man["domains"]["books"]["target_tokens"] == pytest.approx(4 * avail["books"])
    assert man["domains"]["web"]["target_tokens"] == pytest.approx(rest * 0.5 / 0.8)
    assert man["domains"]["code"]["target_tokens"] == pytest.approx(rest * 0.3 / 0.8)
    assert sum(real.values()) == pytest.approx(budget, rel=0.005)
    # ledger: every input doc is kept once (mix_copy == 0) or rejected
    n_in = sum(SIZES.values())
    copy0 = int(np.sum(kept.column("mix_copy").to_numpy() == 0))
    assert copy0 + (0 if rej is None else rej.num_rows) == n_in
    if rej is not None:
        assert set(rej.column("reason").to_pylist()) == {MIX_NOT_SAMPLED}
    # ids are unique; copies point back to their source
    ids = kept.column("id").to_pylist()
    assert len(set(ids)) == len(ids)
    for i, s, c in zip(ids, kept.column("source_id").to_pylist(), kept.column("mix_copy").to_pylist()):
        assert (i == s) if c == 0 else (i == f"{s}#r{c}")
    assert (tmp_path / "state" / "manifest.json").exists()
    assert json.loads((tmp_path / "state" / "manifest.json").read_text())["domains"]["books"]["cap_bound"]


def test_rerun_and_batching_give_identical_selection(corpus, tmp_path):
    stage = Mix(budget_tokens=80_000, temperature=0.5)
    _, k1, _, _ = _run(stage, corpus, tmp_path / "a", batch_size=500)
    _, k2, _, _ = _run(Mix(budget_tokens=80_000, temperature=0.5), corpus, tmp_path / "b", batch_size=500)
    assert k1.equals(k2)
    _, k3, _, _ = _run(Mix(budget_tokens=80_000, temperature=0.5), corpus, tmp_path / "c", batch_size=97)
    assert sorted(k1.column("id").to_pylist()) == sorted(k3.column("id").to_pylist())
    _, k4, _, _ = _run(Mix(budget_tokens=80_000, temperature=0.5, seed=5), corpus, tmp_path / "d")
    assert sorted(k1.column("id").to_pylist()) != sorted(k4.column("id").to_pylist())


def test_shrink_keeps_proportions(corpus, tmp_path):
    avail = _tokens([f for s in corpus.values() for f in s.files])
    w = {"web": 0.5, "code": 0.3, "books": 0.2}
    state, kept, _, ctx = _run(Mix(budget_tokens=150_000, weights=w, on_cap="shrink"), corpus, tmp_path)
    man = state["stats"]["mix"]
    b2 = min(150_000, *(4 * avail[d] / w[d] for d in w))  # hand formula B' = min cap_i / w_i
    assert man["allocated_tokens"] == pytest.approx(b2)
    real = _realized(kept)
    total = sum(real.values())
    assert total == pytest.approx(b2, rel=0.005)
    for d in w:
        assert abs(real[d] / total - w[d]) < 0.005
        assert real[d] <= 4 * avail[d]
    assert any("shrunk" in x for x in ctx.warnings)


def test_unimax_and_single_input_without_domain(tmp_path):
    files = _write_domain(tmp_path / "in", "solo", 300)
    for f in files:  # drop the domain column: one input = one domain named after the input
        pq.write_table(pq.read_table(f).drop_columns(["domain"]), f)
    state, kept, rej, _ = _run(
        Mix(budget_tokens=5_000, unimax=True), {"solo": ShardSet(files=tuple(files))}, tmp_path
    )
    assert set(state["stats"]["mix"]["domains"]) == {"solo"}
    assert set(kept.column("mix_bucket").to_pylist()) == {"solo"}
    assert abs(sum(_realized(kept).values()) - 5_000) < 120


def test_rehydration_upweights_big_clusters(tmp_path):
    n = 2000
    t = pa.table(
        {
            "id": [f"r{i:05d}" for i in range(n)],
            "text": ["a b c d e f g h i j"] * n,
            "domain": ["web"] * n,
            "dup_cluster_size": [1 if i % 2 else 150 for i in range(n)],  # weight 1 vs 8
        }
    )
    f = tmp_path / "in.parquet"
    pq.write_table(t, f)
    state, kept, _, _ = _run(
        Mix(budget_tokens=20_000, rehydrate=True), {"in": ShardSet(files=(str(f),))}, tmp_path
    )
    src = kept.filter(pa.compute.equal(kept.column("mix_copy"), 0))
    rep = dict(zip(src.column("id").to_pylist(), src.column("mix_repeat").to_pylist()))
    big = np.mean([rep.get(f"r{i:05d}", 0) for i in range(0, n, 2)])
    small = np.mean([rep.get(f"r{i:05d}", 0) for i in range(1, n, 2)])
    assert big / small == pytest.approx(8, rel=0.1)
    assert sum(_realized(kept).values()) == pytest.approx(20_000, abs=10)


def test_params_validation_names_parameter():
    with pytest.raises(ValidationError, match="budget_tokens"):
        Mix(weights={"a": 1.0})
    with pytest.raises(ValidationError, match="choose one"):
        Mix(budget_tokens=10, weights={"a": 1.0}, unimax=True)
    with pytest.raises(ValidationError, match="max_epochs"):
        Mix(budget_tokens=10, max_epochs=0)


def test_multiple_inputs_without_domain_column_is_a_clear_error(tmp_path):
    from curate.stage import StageError

    ins = {}
    for d in ("a", "b"):
        files = _write_domain(tmp_path / "in", d, 20, parts=1)
        pq.write_table(pq.read_table(files[0]).drop_columns(["domain"]), files[0])
        ins[d] = ShardSet(files=tuple(files))
    with pytest.raises(StageError, match="domain"):
        _run(Mix(budget_tokens=100), ins, tmp_path)


def test_token_column_counts_instead_of_words(tmp_path):
    from curate.stage import StageError

    t = pa.table(
        {
            "id": [f"t{i:04d}" for i in range(400)],
            "text": ["x"] * 400,  # 1 word each; the count column says otherwise
            "domain": ["a"] * 200 + ["b"] * 200,
            "ntok": [10] * 200 + [30] * 200,
        }
    )
    f = tmp_path / "in.parquet"
    pq.write_table(t, f)
    ins = {"in": ShardSet(files=(str(f),))}
    state, kept, _, _ = _run(
        Mix(budget_tokens=3000, weights={"a": 0.5, "b": 0.5}, token_column="ntok"), ins, tmp_path
    )
    man = state["stats"]["mix"]["domains"]
    assert man["a"]["available_tokens"] == 2000 and man["b"]["available_tokens"] == 6000
    assert (
        man["a"]["realized_tokens"] == 1500 and man["b"]["realized_tokens"] == 1500
    )  # exact: 150 and 50 docs
    n_a = sum(1 for d in kept.column("mix_bucket").to_pylist() if d == "a")
    assert n_a == 150
    with pytest.raises(StageError, match="token_column 'nope'"):
        _run(Mix(budget_tokens=100, token_column="nope"), ins, tmp_path / "x")
