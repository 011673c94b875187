"""The estimator predicts a real run on this machine: the quickstart pipeline on a corpus 8x
its sample, through the local executor (``bench/estimate_accuracy.py`` prints the exact
errors; the bounds here are generous, as other work shares the machine's CPUs)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from curate.estimate_model import make_cluster
from curate.testing.sizing import quickstart_spec, train_model, write_sized_corpus
from workers.estimate import estimate

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[1]


def test_prediction_within_bounds_of_a_real_run(tmp_path):
    files, rows = 8, 500
    write_sized_corpus(tmp_path / "corpus", files, rows)
    model = train_model(tmp_path / "corpus", tmp_path / "lm.arpa")
    spec = quickstart_spec(tmp_path / "corpus", model, tmp_path / "work")
    cpus = os.cpu_count() or 1
    est = estimate(spec, make_cluster(nodes=1, cpus_per_node=cpus, executor="local"), sample_rows=files * rows // 8)
    assert est.corpus_docs == files * rows and est.sample_docs[-1] == files * (rows // 8)
    assert [b.node for b in est.barriers] == ["exact", "near", "select"]
    # the real run in a fresh process, as `curate run --executor local` would be
    (tmp_path / "spec.json").write_text(json.dumps(spec))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "workers.estimate_probe", str(tmp_path / "spec.json"),
                           str(tmp_path / "work" / "job"), str(cpus)], capture_output=True, text=True, env=env, check=True)
    real = json.loads(proc.stdout.strip().splitlines()[-1])
    assert real["ledger"]["select"]["kept"] > 0
    assert est.wall_s == pytest.approx(real["wall_s"], rel=0.6)
    assert est.scratch_bytes == pytest.approx(real["fit_written"], rel=0.5)
    assert est.output_bytes["curated"] == pytest.approx(real["outputs"]["curated"], rel=0.4)
