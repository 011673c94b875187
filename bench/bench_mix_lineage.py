"""Benchmark: `mix` (distributed fit, then apply) and `explain` lookups (predicate pushdown).

References measured in the same run:

* mix: a naive single-process implementation that loads every (id, domain, tokens) row
  into memory, sorts each domain by the same order-sample key and takes a cumulative-sum
  prefix. It computes the same selection; the ratio shows the cost of streaming in three
  passes instead of holding the corpus.
* explain: reading every rejects / output file whole and filtering in memory.

Usage: .venv/bin/python bench/bench_mix_lineage.py [--docs 200000] [--parts 16]
Prints wall times, ratios, realized-share errors and Arrow peak memory.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.fit import FitContext, LocalTaskRunner, ShardSet
from curate.lineage import explain
from curate.stages.mix import Mix
from curate.stages.mix_allocation import allocate
from curate.stages.mix_order_sample import doc_uniforms, expected_copies, order_keys

SHARES = {"web": 0.80, "code": 0.15, "books": 0.05}
WEIGHTS = {"web": 0.5, "code": 0.3, "books": 0.2}


def make_corpus(root: Path, n: int, parts: int) -> list[str]:
    rng = np.random.default_rng(0)
    vocab = np.array([f"w{i}" for i in range(2000)])
    doms = rng.choice(list(SHARES), size=n, p=list(SHARES.values()))
    lens = rng.integers(5, 200, size=n)
    files = []
    for p, idx in enumerate(np.array_split(np.arange(n), parts)):
        texts = [" ".join(vocab[rng.integers(0, 2000, size=int(lens[i]))]) for i in idx]
        t = pa.table({"id": [f"d{i:09d}" for i in idx], "text": texts, "domain": doms[idx]})
        f = root / "in" / f"part-{p:05d}.parquet"
        f.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(t, f)
        files.append(str(f))
    return files


def run_ours(files: list[str], budget: int, tmp: Path) -> tuple[float, dict[str, int], pa.Table]:
    stage = Mix(budget_tokens=budget, weights=WEIGHTS).bind("mix", seed=1)
    ctx = FitContext(
        runner=LocalTaskRunner(), state_dir=tmp / "state", scratch_dir=tmp / "scratch", seed=1, node_id="mix"
    )
    (tmp / "state").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    state = stage.fit({"in": ShardSet(files=tuple(files))}, ctx)
    kept, rej = [], []
    for f in files:
        for b in ShardSet(files=(f,)).iter_batches():
            r = stage.apply(b, state)
            kept.append(r.kept.select(["id", "text", "source_id", "mix_bucket", "mix_copy", "mix_repeat"]))
            if r.rejected is not None:
                rej.append(r.rejected.select(["id", "text", "domain", "reason"]))
    dt = time.perf_counter() - t0
    real = {d: e["realized_tokens"] for d, e in state["stats"]["mix"]["domains"].items()}
    out = tmp / "job"
    (out / "rejects" / "mix").mkdir(parents=True, exist_ok=True)
    (out / "nodes" / "mix").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.concat_tables(rej), out / "rejects" / "mix" / "part-0.parquet", row_group_size=8192)
    pq.write_table(pa.concat_tables(kept), out / "nodes" / "mix" / "part-0.parquet", row_group_size=8192)
    return dt, real, state


def run_naive(files: list[str], budget: int) -> tuple[float, dict[str, int]]:
    t0 = time.perf_counter()
    t = pa.concat_tables([pq.read_table(f, columns=["id", "text", "domain"]) for f in files])
    tok = pc.list_value_length(pc.utf8_split_whitespace(t.column("text"))).to_numpy(zero_copy_only=False)
    dom = t.column("domain").to_numpy(zero_copy_only=False)
    ids = np.array(t.column("id").to_pylist(), dtype=object)
    doms = sorted(WEIGHTS)
    n = [int(tok[dom == d].sum()) for d in doms]
    alloc = allocate([WEIGHTS[d] for d in doms], n, budget)
    seed = Mix(budget_tokens=1).bind("mix", seed=1)._seed()
    real = {}
    for i, d in enumerate(doms):
        m = dom == d
        rate = alloc.rates[i]
        whole, frac = expected_copies(rate, np.ones(int(m.sum())))
        keys = order_keys(doc_uniforms(ids[m], seed, d), frac)
        order = np.lexsort((ids[m], keys))
        residual = alloc.targets[i] - float((whole * tok[m]).sum())
        cum = np.cumsum(tok[m][order])
        k = int(np.searchsorted(cum, residual))
        real[d] = int((whole * tok[m]).sum() + (cum[k] if k < len(cum) else cum[-1]))
    return time.perf_counter() - t0, real


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=200_000)
    ap.add_argument("--parts", type=int, default=16)
    ap.add_argument("--lookups", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as td:
        tmp = Path(td)
        t0 = time.perf_counter()
        files = make_corpus(tmp, a.docs, a.parts)
        print(f"corpus: {a.docs} docs in {a.parts} parts ({time.perf_counter() - t0:.1f}s to generate)")
        total = sum(
            int(
                pc.sum(
                    pc.list_value_length(pc.utf8_split_whitespace(pq.read_table(f, columns=["text"])["text"]))
                ).as_py()
            )
            for f in files
        )
        budget = int(total * 0.6)
        pool = pa.default_memory_pool()
        dt_o, real_o, state = run_ours(files, budget, tmp)
        peak_o = pool.max_memory()
        dt_n, real_n = run_naive(files, budget)
        man = state["stats"]["mix"]["domains"]
        err_o = max(abs(real_o[d] / sum(real_o.values()) - man[d]["target_share"]) for d in man)
        err_n = max(abs(real_n[d] / sum(real_n.values()) - man[d]["target_share"]) for d in man)
        print(f"mix   ours (scan + 3 sidecar passes + apply): {dt_o:.2f}s  max share error {err_o:.2e}")
        print(f"mix   naive in-memory (fit only):  {dt_n:.2f}s  max share error {err_n:.2e}")
        print(f"mix   ratio ours/naive: {dt_o / dt_n:.2f}x   (Arrow peak: {peak_o / 1e6:.1f} MB)")
        print("mix   realized tokens ours vs naive:", {d: (real_o[d], real_n[d]) for d in sorted(real_o)})

        job = tmp / "job"
        rej = (
            pq.read_table(job / "rejects" / "mix" / "part-0.parquet", columns=["id"]).column("id").to_pylist()
        )
        rng = np.random.default_rng(1)
        sample = [rej[i] for i in rng.integers(0, len(rej), size=a.lookups)]
        t0 = time.perf_counter()
        for d in sample:
            assert explain(str(job), d)["rejected"]["reason"] == "mix_not_sampled"
        dt_e = (time.perf_counter() - t0) / len(sample)
        t0 = time.perf_counter()
        for d in sample:
            for f in [job / "rejects" / "mix" / "part-0.parquet", job / "nodes" / "mix" / "part-0.parquet"]:
                t = pq.read_table(f)
                t.filter(pc.equal(t.column("id"), d))
        dt_f = (time.perf_counter() - t0) / len(sample)
        print(
            f"explain pushdown: {dt_e * 1000:.1f} ms/lookup; full read+filter: {dt_f * 1000:.1f} ms/lookup; "
            f"ratio {dt_e / dt_f:.2f}x"
        )


if __name__ == "__main__":
    main()
