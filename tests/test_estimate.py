"""``curate plan --estimate``: the sizing model against hand-computed values, the command
(table, JSON, bad input) and ``POST /v1/estimate`` (token, sandbox, 429, validation)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app as cli_app
from curate.estimate_model import (
    Estimate,
    EstimateError,
    Measurements,
    NodePoint,
    SamplePoint,
    fit_line,
    make_cluster,
    parse_size,
    predict,
)
from tests.corpus import write_corpus
from tests.test_api_util import TOKEN, local_config

runner = CliRunner()


# -- the model -------------------------------------------------------------------------------
def test_lines_through_the_sample_points():
    line = fit_line(100, 3.0, 400, 6.0)
    assert (line.fixed, line.per_doc) == (2.0, 0.01)
    assert line.at(10_000) == pytest.approx(102.0)
    assert fit_line(100, 5.0, 400, 4.0).per_doc == 0.0  # noise never makes a cost shrink
    assert fit_line(100, 6.0, 400, 3.0).at(0) == 6.0  # a falling cost is held, not extrapolated


def test_sizes_parse_and_impossible_clusters_are_refused():
    assert parse_size("10TB") == 10**13 and parse_size("64GiB") == 64 * 2**30 and parse_size("3e9") == 3 * 10**9
    with pytest.raises(EstimateError, match="not a size"):
        parse_size("lots")
    with pytest.raises(EstimateError, match="nodes must be >= 1"):
        make_cluster(nodes=0)
    with pytest.raises(EstimateError, match="local executor runs on one node"):
        make_cluster(nodes=4, executor="local")


def _point(docs: int, map_s: float, fit_s: float, written: int, peak: int, wall: float) -> SamplePoint:
    return SamplePoint(input_docs=docs, input_file_bytes=docs * 100, shards=4, job_wall_s=wall, nodes=[
        NodePoint(node="clean", stage="length_filter", kind="map", step="clean", docs_in=docs, docs_out=docs,
                  bytes_in=docs * 500, map_s=map_s),
        NodePoint(node="dd", stage="exact_dedup", kind="barrier", step="dd", docs_in=docs, docs_out=docs // 2,
                  bytes_in=docs * 500, map_s=map_s, fit_s=fit_s, fit_written_bytes=written, fit_peak_bytes=peak,
                  output_bytes=docs * 40)])


def test_prediction_on_hand_computed_measurements():
    # map: 0.4 s per 4 shards + 1 ms/doc; fit: 1 s + 2 ms/doc (2 threads); scratch 1000 + 10 B/doc;
    # memory 2 MB + 2 kB/doc for 2 tasks; the driver: 1 s + 0
    pts = [_point(n, 0.4 + 0.001 * n, 1 + 0.002 * n, 1000 + 10 * n, 2 * (10**6 + 1000 * n), 1 + 2 * (0.4 + 0.001 * n) + 1 + 0.002 * n)
           for n in (100, 400, 1600)]
    m = Measurements(points=pts, real_docs=160_000, real_bytes=16_000_000, real_shards=40, shuffle_partitions=16,
                     fit_threads=2, outputs={"out": "dd"})
    est = predict(m, make_cluster(nodes=2, cpus_per_node=4, memory_per_node=10**9))
    # map per node: (0.1 s x 40 shards + 160 s) / 8 slots = 20.5 s; fit: 1 + 0.002 x 160k x 2 / 8 = 81 s
    assert [n.wall_s for n in est.nodes] == pytest.approx([20.5, 20.5 + 81])
    b = est.barriers[0]
    assert (b.scratch_bytes, b.shuffle_bytes, b.peak_memory_per_task) == (1_601_000, 800_500, 161_000_000)
    assert b.fits_in_memory and b.parallel_tasks == 8 and not est.warnings
    assert est.wall_s == pytest.approx(20.5 + 101.5 + 1)
    assert est.cpu_hours == pytest.approx((164 * 2 + 1 + 640 + 1) / 3600, rel=1e-4)
    assert est.output_bytes == {"out": 6_400_000} and est.nodes[1].output_fraction == 0.5
    small = predict(m, make_cluster(nodes=2, cpus_per_node=4, memory_per_node=2 * 10**8))
    assert not small.barriers[0].fits_in_memory
    assert "do not fit in 200.0 MB per node" in small.warnings[0] and "shuffle_partitions" in small.warnings[0]


# -- the command ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def corpus_spec(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("est")
    write_corpus(root / "data" / "in", n_files=3, rows=60)
    spec = {
        "name": "est", "settings": {"rows_per_shard": 50, "batch_size": 32},
        "inputs": {"docs": {"path": str(root / "data" / "in" / "*.parquet")}},
        "nodes": [{"id": "len", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": 3}},
                  {"id": "dd", "stage": "exact_dedup", "inputs": ["len"]}],
        "outputs": {"out": {"node": "dd", "path": str(root / "data" / "out")}},
    }
    (root / "spec.json").write_text(json.dumps(spec))
    return root, spec


def test_plan_prints_the_steps(corpus_spec):
    root, _ = corpus_spec
    res = runner.invoke(cli_app, ["plan", str(root / "spec.json")])
    assert res.exit_code == 0, res.output
    assert "step len: docs -> len" in res.output and "fit dd" in res.output


def test_estimate_json_and_table(corpus_spec, tmp_path):
    root, _ = corpus_spec
    res = runner.invoke(cli_app, ["plan", str(root / "spec.json"), "--estimate", "--json", "--sample-rows", "64",
                                  "--nodes", "2", "--cpus-per-node", "4"])
    assert res.exit_code == 0, res.output
    est = Estimate.model_validate_json(res.stdout)
    assert est.corpus_docs == 180 and est.shards == 6 and est.cluster.cpus == 8
    assert est.sample_docs == [6, 15, 63]  # 2, 5 and 21 rows of each of the 3 files
    assert [b.node for b in est.barriers] == ["dd"] and est.barriers[0].scratch_bytes > 0
    assert est.wall_s > 0 and est.output_bytes["out"] > 0
    assert 0.8 < [n for n in est.nodes if n.node == "len"][0].output_fraction < 1  # 'too short' etc. rejected
    assert not (root / "data" / "out").exists()  # the samples ran elsewhere, and were removed
    table = runner.invoke(cli_app, ["plan", str(root / "spec.json"), "--estimate", "--sample-rows", "64",
                                    "--corpus-bytes", "1TB"])
    assert table.exit_code == 0, table.output
    assert "peak mem/task" in table.output and "CPU-hours" in table.output and "1.0 TB" in table.output


def test_estimate_bad_input(corpus_spec, tmp_path):
    root, spec = corpus_spec
    res = runner.invoke(cli_app, ["plan", str(root / "spec.json"), "--estimate", "--nodes", "0"])
    assert res.exit_code == 2 and "impossible cluster: nodes must be >= 1 (got 0)" in res.output
    res = runner.invoke(cli_app, ["plan", str(root / "spec.json"), "--estimate", "--corpus-bytes", "huge"])
    assert res.exit_code == 2 and "not a size: 'huge'" in res.output
    empty = dict(spec, inputs={"docs": {"path": str(tmp_path / "nothing" / "*.parquet")}})
    (tmp_path / "empty.json").write_text(json.dumps(empty))
    res = runner.invoke(cli_app, ["plan", str(tmp_path / "empty.json"), "--estimate"])
    assert res.exit_code == 2, res.output
    assert "no Parquet files match this input" in " ".join(res.output.split()) and "Traceback" not in res.output


# -- the route --------------------------------------------------------------------------------
@pytest.fixture
def api(tmp_path):
    write_corpus(tmp_path / "data" / "in", n_files=2, rows=60)
    (tmp_path / "outside").mkdir()
    write_corpus(tmp_path / "outside", n_files=1, rows=20)
    app = create_app(local_config(tmp_path, api_token=TOKEN), start=False)
    spec = {"name": "e", "settings": {"rows_per_shard": 50},
            "inputs": {"docs": {"path": "in/*.parquet"}},
            "nodes": [{"id": "dd", "stage": "exact_dedup", "inputs": ["docs"]}],
            "outputs": {"out": {"node": "dd", "path": "out"}}}
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c, app, spec, tmp_path


def test_route_estimates_under_the_token_and_the_sandbox(api):
    c, app, spec, tmp = api
    assert c.post("/v1/estimate", json=spec, headers={"Authorization": ""}).status_code == 401
    r = c.post("/v1/estimate?nodes=4&cpus_per_node=8&sample_rows=64", json=spec)
    assert r.status_code == 200, r.text
    est = Estimate.model_validate(r.json())
    assert est.corpus_docs == 120 and est.cluster.nodes == 4 and est.barriers[0].node == "dd"
    outside = dict(spec, inputs={"docs": {"path": str(tmp / "outside" / "*.parquet")}})
    assert c.post("/v1/estimate", json=outside).status_code == 403
    bad = c.post("/v1/estimate?nodes=0", json=spec)
    assert bad.status_code == 422 and "nodes must be >= 1" in bad.json()["detail"]
    invalid = dict(spec, nodes=[{"id": "dd", "stage": "no_such_stage", "inputs": ["docs"]}])
    assert c.post("/v1/estimate", json=invalid).status_code == 422
    assert "/v1/estimate" in app.openapi()["paths"]


def test_route_refuses_a_second_estimate_while_one_runs(api):
    c, app, spec, _ = api
    slots = threading.BoundedSemaphore(1)  # the bound the route keeps on the app (CURATE_MAX_ESTIMATES=1)
    app.state.estimate_slots = slots
    slots.acquire()  # an estimate is running
    try:
        r = c.post("/v1/estimate?sample_rows=64", json=spec)
        assert r.status_code == 429 and "already running" in r.json()["detail"]
    finally:
        slots.release()
    assert slots.acquire(blocking=False)  # a refused request holds no slot
    slots.release()
