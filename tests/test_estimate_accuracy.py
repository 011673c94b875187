"""The estimator predicts a real run on this machine: the quickstart pipeline on a corpus 8x
its sample, through the local executor (``bench/estimate_accuracy.py`` prints the exact
errors; the bounds here are generous, as other work shares the machine's CPUs)."""

from __future__ import annotations

import os

import pytest

from curate.estimate_model import make_cluster
from curate.testing.sizing import quickstart_spec, train_model, write_sized_corpus
from workers.estimate import estimate
from workers.estimate_probe import MeasuredJob

pytestmark = pytest.mark.slow


def test_prediction_within_bounds_of_a_real_run(tmp_path):
    files, rows = 8, 500
    write_sized_corpus(tmp_path / "corpus", files, rows)
    model = train_model(tmp_path / "corpus", tmp_path / "lm.arpa")
    spec = quickstart_spec(tmp_path / "corpus", model, tmp_path / "work")
    cpus = os.cpu_count() or 1
    est = estimate(spec, make_cluster(nodes=1, cpus_per_node=cpus, executor="local"), sample_rows=files * rows // 8)
    assert est.corpus_docs == files * rows and est.sample_docs[-1] == files * rows // 8
    assert [b.node for b in est.barriers] == ["exact", "near", "select"]
    job = MeasuredJob(spec, job_dir=tmp_path / "work" / "job", fit_threads=cpus)
    res = job.run()
    real_scratch = sum(m.fit_written for m in job.measures.values())
    real_out = sum(p.stat().st_size for p in (tmp_path / "work" / "output").glob("part-*.parquet"))
    assert res.ledger["select"]["kept"] > 0
    assert est.wall_s == pytest.approx(job.wall_s, rel=0.6)
    assert est.scratch_bytes == pytest.approx(real_scratch, rel=0.5)
    assert est.output_bytes["curated"] == pytest.approx(real_out, rel=0.4)
