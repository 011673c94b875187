"""An s3:// output is published for readers of an object store: its parts are uploaded when
the job succeeds, stale parts of an earlier run go, and `_SUCCESS` (the manifest of the
parts) is deleted first and written last. Against moto's S3 server on loopback."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from tests.corpus import write_corpus
from workers import JobFailed, run_pipeline

moto_server = pytest.importorskip("moto.server")


@pytest.fixture
def s3(monkeypatch):
    import s3fs

    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
                 "AWS_ENDPOINT_URL": f"http://{host}:{port}"}.items():
        monkeypatch.setenv(k, v)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(endpoint_url=f"http://{host}:{port}", key="test", secret="test")
    fs.mkdir("curate-test")
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()
    server.stop()


def _spec(tmp_path, rows_per_shard: int, min_words: int = 5) -> dict:
    return {
        "name": "s3out",
        "settings": {"rows_per_shard": rows_per_shard},
        "inputs": {"docs": {"path": str(tmp_path / "in/*.parquet")}},
        "nodes": [{"id": "l", "stage": "length_filter", "inputs": ["docs"], "params": {"min_words": min_words}}],
        "outputs": {"o": {"node": "l", "path": "s3://curate-test/out"}},
    }


def _parts(fs) -> list[str]:
    return sorted(p.rsplit("/", 1)[-1] for p in fs.ls("curate-test/out", refresh=True) if "/part-" in p)


def test_s3_output_parts_and_success_manifest(tmp_path, s3):
    write_corpus(tmp_path / "in", n_files=2)
    res = run_pipeline(_spec(tmp_path, rows_per_shard=20), job_dir=tmp_path / "job")
    manifest = json.loads(s3.cat("curate-test/out/_SUCCESS"))
    assert [p["name"] for p in manifest["parts"]] == _parts(s3) and len(_parts(s3)) == 6
    rows = sum(pq.ParquetFile(s3.open(f"curate-test/out/{n}")).metadata.num_rows for n in _parts(s3))
    assert rows == res.ledger["l"]["kept"]
    # a second run with fewer, bigger shards replaces the parts: none of the first run's stay
    run_pipeline(_spec(tmp_path, rows_per_shard=60), job_dir=tmp_path / "job2")
    manifest = json.loads(s3.cat("curate-test/out/_SUCCESS"))
    assert [p["name"] for p in manifest["parts"]] == _parts(s3) and len(_parts(s3)) == 2
    # a failed run publishes nothing: the last good output and its marker stay
    bad = _spec(tmp_path, rows_per_shard=60)
    bad["nodes"][0] = {"id": "l", "stage": "threshold_filter", "inputs": ["docs"], "params": {"column": "text", "value": 3}}
    with pytest.raises(JobFailed):
        run_pipeline(bad, job_dir=tmp_path / "job3")
    assert json.loads(s3.cat("curate-test/out/_SUCCESS")) == manifest
