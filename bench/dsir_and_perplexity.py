#!/usr/bin/env python
"""DSIR scoring and KenLM perplexity throughput on one CPU, against references in the same run.

* DSIR: docs/s/core of hashed uni+bigram scoring (``log w``) on ~2 KB documents -- the
  numba kernel alone and the full ``dsir_resample`` apply (Gumbel keys, rejects). Target:
  >= 20k docs/s/core. If ``data-selection`` is importable (``pip install data-selection``
  into the venv; bench only), its featurizer + dot product is timed on the same documents
  and features / weights are checked for equality.
* Perplexity: the ``perplexity_score`` stage (CCNet normalization + scoring + rounding)
  against a bare loop of ``kenlm.Model.score`` on the same pre-normalized text. Target:
  >= 0.8x.

CPU seconds (process time) are the primary measure, so other load on the machine matters
less; wall seconds are printed too. The process pins itself to one CPU.

usage: python bench/dsir_and_perplexity.py [--data PARQUET_OR_GLOB] [--docs 20000] [--order 5]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("NUMBA_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def _pin_one_cpu() -> str:
    try:
        cpu = sorted(os.sched_getaffinity(0))[0]
        os.sched_setaffinity(0, {cpu})
        return f"pinned to cpu {cpu}"
    except (AttributeError, OSError):  # pragma: no cover - non-Linux
        return "not pinned"


def _timed(fn, *args, **kw):
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn(*args, **kw)
    return out, time.process_time() - c0, time.perf_counter() - w0


def _docs(data: str | None, n: int, size: int = 2048) -> list[str]:
    """~``size``-byte documents: real text from --data, else curate.testing.textgen."""
    if data:
        texts: list[str] = []
        for f in sorted(glob.glob(data)) or [data]:
            t = pq.read_table(f)
            col = "text" if "text" in t.column_names else t.column_names[0]
            texts += [x for x in t.column(col).to_pylist() if x]
    else:
        from curate.testing import textgen

        texts = []
        for i, d in enumerate(textgen.DOMAINS):
            texts += textgen.domain_texts(d, 1500, i)
    out, buf = [], ""
    i = 0
    while len(out) < n:
        buf += texts[i % len(texts)] + "\n"
        i += 1
        while len(buf.encode()) >= size and len(out) < n:
            cut = buf.encode()[:size].decode("utf-8", errors="ignore")
            out.append(cut)
            buf = buf[len(cut) :]
    return out


def bench_dsir(docs: list[str], ref_docs: int) -> dict:
    from curate.fit import FitContext, LocalTaskRunner, ShardSet
    from curate.stages.dsir_resample import DsirResample
    from curate.text.dsir.featurizer import HashedNgramFeaturizer

    res: dict = {"docs": len(docs), "mean_bytes": float(np.mean([len(d.encode()) for d in docs]))}
    arr = pa.array(docs)
    fz = HashedNgramFeaturizer()
    fz.counts(arr[:8])  # JIT load/compile outside the timing
    rng = np.random.default_rng(0)
    ld = rng.normal(size=10000)
    _, c, w = _timed(fz.score, arr, ld)
    res["kernel_cold_docs_per_cpu_s"] = len(docs) / c
    _, c, w = _timed(fz.score, arr, ld)
    res["kernel_warm_docs_per_cpu_s"] = len(docs) / c
    res["kernel_warm_wall_s"] = w
    # full stage: fit on a pool + apply over batches
    with tempfile.TemporaryDirectory() as tmp:
        ids = [f"doc{i:08d}" for i in range(len(docs))]
        pool = Path(tmp) / "pool.parquet"
        pq.write_table(pa.table({"id": ids, "text": docs}), pool)
        tgt = Path(tmp) / "tgt.parquet"
        pq.write_table(pa.table({"text": docs[: len(docs) // 10]}), tgt)
        st = DsirResample(target=str(tgt), budget=0.1, budget_unit="fraction", min_tokens=100).bind("dsir", 1)
        ctx = FitContext(
            runner=LocalTaskRunner(),
            state_dir=Path(tmp) / "st",
            scratch_dir=Path(tmp) / "sc",
            seed=1,
            node_id="dsir",
        )
        state, c, w = _timed(st.fit, {"pool": ShardSet(files=(str(pool),))}, ctx)
        res["stage_fit_cpu_s"] = c
        res["stage_fit_passes"] = "target + raw counts + Gumbel candidates + KL counts"
        table = pq.read_table(pool)

        def apply_all() -> int:
            n = 0
            for off in range(0, table.num_rows, 4096):
                r = st.apply(table.slice(off, 4096), state)
                n += r.kept.num_rows + r.num_rejected
            return n

        apply_all()
        _, c, w = _timed(apply_all)
        res["stage_apply_docs_per_cpu_s"] = len(docs) / c
        res["kl_reduction"] = state["stats"].get("kl_reduction")
    # reference: data-selection 1.0.3 (featurizer + dot product per doc, as compute_importance_weights)
    try:
        from data_selection.hashed_ngram_dsir import get_ngram_counts, wpt
    except ImportError:
        res["reference"] = "data-selection not installed (pip install data-selection==1.0.3 to compare)"
        return res
    sub = docs[:ref_docs]

    def ref() -> list[float]:
        return [
            float(np.dot(get_ngram_counts(d, n=2, num_buckets=10000, tokenizer=wpt.tokenize), ld))
            for d in sub
        ]

    ref_w, c, w = _timed(ref)
    res["reference"] = "data-selection 1.0.3 get_ngram_counts + dot"
    res["reference_docs"] = len(sub)
    res["reference_docs_per_cpu_s"] = len(sub) / c
    ours = HashedNgramFeaturizer().score(pa.array(sub), ld)[0]
    res["max_abs_logw_diff_vs_reference"] = float(np.max(np.abs(np.array(ref_w) - ours)))
    feats_equal = all(
        (get_ngram_counts(d, n=2, num_buckets=10000, tokenizer=wpt.tokenize) == fz.dense(d)).all()
        for d in sub[:300]
    )
    res["features_identical_first_300"] = bool(feats_equal)
    res["speedup_kernel_vs_reference"] = res["kernel_warm_docs_per_cpu_s"] / res["reference_docs_per_cpu_s"]
    res["speedup_stage_apply_vs_reference"] = (
        res["stage_apply_docs_per_cpu_s"] / res["reference_docs_per_cpu_s"]
    )
    return res


def bench_perplexity(docs: list[str], order: int) -> dict:
    import kenlm

    from curate.lm import train_lm
    from curate.stages.perplexity import PerplexityScore
    from curate.text import ccnet

    res: dict = {"docs": len(docs), "order": order}
    with tempfile.TemporaryDirectory() as tmp:
        model = Path(tmp) / "lm.arpa"
        info, c, w = _timed(train_lm, docs[: max(500, len(docs) // 4)], order, model)
        res["train"] = {k: info[k] for k in ("backend", "sentences", "tokens", "ngrams")} | {
            "cpu_s": round(c, 2)
        }
        normalized = [ccnet.normalize(d) for d in docs]
        m = kenlm.Model(str(model))
        batch = pa.table({"id": [str(i) for i in range(len(docs))], "text": normalized})

        def raw() -> float:
            s = 0.0
            for t in normalized:
                s += m.score(t)
            return s

        st = PerplexityScore(model=str(model)).bind("pp", 1)
        st(batch.slice(0, 10))
        st_nonorm = PerplexityScore(model=str(model), normalize=False).bind("pp", 1)
        st_nonorm(batch.slice(0, 10))

        def stage(s: PerplexityScore) -> int:
            n = 0
            for off in range(0, batch.num_rows, 2048):
                n += s(batch.slice(off, 2048)).kept.num_rows
            return n

        raw()
        best = {}
        for name, fn in (
            ("raw", raw),
            ("stage", lambda: stage(st)),
            ("stage_no_norm", lambda: stage(st_nonorm)),
        ):
            best[name] = min(_timed(fn)[1] for _ in range(3))
        res["raw_kenlm_docs_per_cpu_s"] = len(docs) / best["raw"]
        res["stage_docs_per_cpu_s"] = len(docs) / best["stage"]
        res["stage_no_norm_docs_per_cpu_s"] = len(docs) / best["stage_no_norm"]
        res["stage_vs_raw"] = best["raw"] / best["stage"]
        res["stage_no_norm_vs_raw"] = best["raw"] / best["stage_no_norm"]
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", help="Parquet file or glob with a text column (default: generated text)")
    ap.add_argument("--docs", type=int, default=20000, help="number of ~2 KB documents")
    ap.add_argument("--ref-docs", type=int, default=1500, help="documents for the data-selection reference")
    ap.add_argument("--order", type=int, default=5, help="LM order for the perplexity bench")
    ap.add_argument("--pp-docs", type=int, default=5000, help="documents for the perplexity bench")
    a = ap.parse_args()
    pin = _pin_one_cpu()
    docs = _docs(a.data, a.docs)
    out = {
        "cpu": pin,
        "dsir": bench_dsir(docs, a.ref_docs),
        "perplexity": bench_perplexity(docs[: a.pp_docs], a.order),
    }
    d, p = out["dsir"], out["perplexity"]
    print(json.dumps(out, indent=2, default=float))
    print(
        f"\nDSIR scoring, one CPU, {d['mean_bytes']:.0f}-byte docs: "
        f"kernel {d['kernel_warm_docs_per_cpu_s']:,.0f} docs/s/core "
        f"(cold cache {d['kernel_cold_docs_per_cpu_s']:,.0f}), "
        f"full stage apply {d['stage_apply_docs_per_cpu_s']:,.0f} docs/s/core (target >= 20,000)"
    )
    if "reference_docs_per_cpu_s" in d:
        print(
            f"  data-selection 1.0.3: {d['reference_docs_per_cpu_s']:,.0f} docs/s/core -> kernel "
            f"{d['speedup_kernel_vs_reference']:.1f}x, stage {d['speedup_stage_apply_vs_reference']:.1f}x; "
            f"identical features: {d['features_identical_first_300']}, "
            f"max |dlogw| {d['max_abs_logw_diff_vs_reference']:.2e}"
        )
    print(
        f"Perplexity (order {p['order']}): stage {p['stage_docs_per_cpu_s']:,.0f} docs/s vs raw kenlm.score "
        f"{p['raw_kenlm_docs_per_cpu_s']:,.0f} docs/s -> {p['stage_vs_raw']:.2f}x (target >= 0.8x); "
        f"without normalization {p['stage_no_norm_vs_raw']:.2f}x"
    )


if __name__ == "__main__":
    main()
