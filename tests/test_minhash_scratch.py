"""minhash_dedup's defaults (verified, coverage split) and what its fit writes to scratch.

Scratch bytes are measured as every byte this process writes (``/proc/self/io`` wchar,
Linux) during a fit on the local runner, minus the persisted state; the bound here is
generous (the bench prints the exact figure on real data)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate import registry
from curate.fit import FitContext, LocalTaskRunner, ShardSet
from curate.spec import validate_spec
from curate.stages.minhash_dedup import MinHashDedup
from curate.testing.neardup import make_corpus, score_removals
from tests.minhash_guarantees import check_run


@pytest.fixture(scope="module")
def corpus():
    return make_corpus(1200, seed=5)


@pytest.fixture(scope="module")
def files(corpus, tmp_path_factory):
    d = tmp_path_factory.mktemp("mh_scratch")
    t = corpus.table()
    out = []
    for k, idx in enumerate(np.array_split(np.arange(t.num_rows), 3)):
        f = d / f"part-{k}.parquet"
        pq.write_table(t.take(pa.array(idx, pa.int64())), f)
        out.append(str(f))
    return out


def _wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    raise AssertionError("no wchar in /proc/self/io")


def _fit(tmp: Path, files: list[str], params: dict) -> tuple[dict, set[str], pa.Table, pa.Table | None, int]:
    st = MinHashDedup(params).bind("dd", seed=1)
    ctx = FitContext(runner=LocalTaskRunner(), state_dir=tmp / "state", scratch_dir=tmp / "scratch", seed=1,
                     node_id="dd")
    w0 = _wchar()
    state = st.fit({"up": ShardSet(files=tuple(files))}, ctx)
    written = _wchar() - w0 - sum(f.stat().st_size for f in (tmp / "state").rglob("*") if f.is_file())
    kept, rej = [], []
    for f in files:
        r = st.apply(pq.read_table(f), state)
        kept.append(r.kept)
        if r.rejected is not None:
            rej.append(r.rejected)
    rj = pa.concat_tables(rej) if rej else None
    removed = set() if rj is None else set(rj.column("id").to_pylist())
    return state, removed, pa.concat_tables(kept), rj, written


def test_a_spec_naming_only_the_stage_gets_verification_and_the_coverage_split():
    spec = validate_spec({"name": "d", "inputs": {"docs": {"path": "data/*.parquet"}},
                          "nodes": [{"id": "near", "stage": "minhash_dedup", "inputs": ["docs"]}],
                          "outputs": {"kept": {"node": "near", "path": "out"}}}, check_inputs=False)
    node = spec.nodes[0]
    p = registry.get_stage_class(node.stage)(node.params).params
    assert (p.verify_jaccard, p.verify_split) == (0.8, "coverage")
    schema = {c["name"]: c for c in registry.catalogue()}["minhash_dedup"]
    assert "0.8" in str(schema)  # /v1/stages and the docs show the default
    assert MinHashDedup({"verify_jaccard": None}).params.verify_jaccard is None  # datatrove-style, one key away


def test_defaults_verify_and_scratch_stays_a_small_multiple_of_the_input(tmp_path, corpus, files):
    state, removed, kept, rj, written = _fit(tmp_path / "d", files, {})
    explicit = _fit(tmp_path / "e", files, {"verify_jaccard": 0.8, "verify_split": "coverage"})[1]
    unverified = _fit(tmp_path / "u", files, {"verify_jaccard": None})[1]
    assert removed == explicit
    assert "verify_partitions" in state["stats"]
    m, mu = score_removals(corpus, removed, 0.8), score_removals(corpus, unverified, 0.8)
    assert m["precision"] == 1.0 and m["recall"] >= 0.9
    assert mu["precision"] < m["precision"]  # LSH alone removes pairs below the threshold
    docs = pa.concat_tables([pq.read_table(f, columns=["id", "text"]) for f in files])
    assert check_run(docs, kept, rj) >= 100
    input_bytes = sum(os.path.getsize(f) for f in files)
    assert 0 < written <= 6 * input_bytes, (written, input_bytes)
    assert not (tmp_path / "d" / "scratch" / "minhash").exists()  # scratch removed after the fit
