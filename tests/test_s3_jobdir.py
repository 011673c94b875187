"""A job directory on S3, no shared filesystem: the quickstart pipeline with its inputs,
job directory and output on moto's S3 server (loopback), in-process and on a multi-node
``ray.cluster_utils.Cluster`` (a head without CPUs, two single-CPU workers, token auth).
Each output part is byte-identical to a local-filesystem run of the same spec; a worker
node removed in the middle of the ``minhash_dedup`` fit and the driver killed, the run
resumes from the completion records on S3 to the same bytes; nothing lands in a local
job directory, and no spill file stays behind on a node that lived. The Ray nodes start
without AWS settings: workers reach S3 only with what the driver forwards."""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
import yaml

from curate.lm import iter_corpus, train_lm
from curate.sample_data import write_sample_corpus
from workers import run_pipeline
from workers.completed_work import completed_work

moto_server = pytest.importorskip("moto.server")

pytestmark = [pytest.mark.slow]
BUCKET = "curate-jobs"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://{host}:{port}"}
    mp = pytest.MonkeyPatch()
    for k, v in env.items():
        mp.setenv(k, v)
    fs = pafs.S3FileSystem(endpoint_override=env["AWS_ENDPOINT_URL"], region="us-east-1", allow_bucket_creation=True)
    fs.create_dir(BUCKET)
    yield fs, env
    mp.undo()
    server.stop()


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, s3):
    """The sample corpus in three files (locally and on S3) and a KenLM model of its prose."""
    fs, _ = s3
    d = tmp_path_factory.mktemp("corpus")
    write_sample_corpus(d / "sample", target_mb=0.3, seed=3)
    train_lm(iter_corpus(str(d / "sample/prose/*.parquet")), 3, d / "prose.arpa", backend="numpy")
    t = pa.concat_tables([pq.read_table(f) for f in sorted((d / "sample").glob("*/*.parquet"))],
                         promote_options="permissive")
    (d / "in").mkdir()
    n = t.num_rows
    for i in range(3):
        part = t.slice(i * n // 3, (i + 1) * n // 3 - i * n // 3)
        pq.write_table(part, d / "in" / f"part-{i}.parquet")
        pq.write_table(part, f"{BUCKET}/data/part-{i}.parquet", filesystem=fs)
    return d


def quickstart(corpus: Path, inputs: str, output: str) -> dict:
    spec = yaml.safe_load((ROOT / "pipelines/quickstart.yaml").read_text())
    spec.pop("job_dir")
    spec["settings"].update(rows_per_shard=200, shuffle_partitions=2)
    spec["inputs"]["sample"]["path"] = inputs
    ppl = next(n for n in spec["nodes"] if n["stage"] == "perplexity_score")
    ppl["params"]["model"] = str(corpus / "prose.arpa")
    spec["outputs"]["curated"]["path"] = output
    return spec


@pytest.fixture(scope="module")
def local_run(corpus, tmp_path_factory):
    d = tmp_path_factory.mktemp("local")
    res = run_pipeline(quickstart(corpus, str(corpus / "in/*.parquet"), str(d / "out")), executor="local",
                       job_dir=d / "job")
    parts = {f.name: f.read_bytes() for f in sorted((d / "out").glob("part-*.parquet"))}
    assert len(parts) == 3 and res.ledger["select"]["kept"] > 50
    return res, parts


def s3_parts(fs, prefix: str) -> dict[str, bytes]:
    manifest = json.loads(fs.open_input_stream(f"{BUCKET}/{prefix}/_SUCCESS").read())
    out = {}
    for p in manifest["parts"]:
        with fs.open_input_stream(f"{BUCKET}/{prefix}/{p['name']}") as f:
            out[p["name"]] = f.read()
    return out


def test_remote_path_is_the_pathlib_subset_the_job_code_uses(s3):
    from curate import jobfs

    root = jobfs.path(f"s3://{BUCKET}/unit/")
    assert isinstance(root, jobfs.RemotePath) and str(root) == f"s3://{BUCKET}/unit"
    assert isinstance(jobfs.path("runs/x"), Path) and isinstance(jobfs.path("file:///tmp/x"), Path)
    with pytest.raises(TypeError):
        Path(root)  # no __fspath__: never silently a local path "s3:/..."
    a = root / "state" / "n1" / "state.json"
    assert (a.name, a.stem, a.suffix, str(a.parent)) == ("state.json", "state", ".json", f"s3://{BUCKET}/unit/state/n1")
    a.write_text('{"x": 1}')
    (root / "state" / "n2" / "state.json").write_bytes(b"{}")
    (root / "state" / "n2" / "other.json").write_bytes(b"{}")
    assert [p.parent.name for p in (root / "state").glob("*/state.json")] == ["n1", "n2"]
    assert [p.name for p in (root / "state" / "n2").glob("*.json")] == ["other.json", "state.json"]
    assert [p.name for p in (root / "state").iterdir()] == ["n1", "n2"]
    assert a.read_text() == '{"x": 1}' and a.is_file() and (root / "state").is_dir() and not (root / "no").exists()
    with pytest.raises(FileNotFoundError):
        (root / "no.json").read_text()
    with pytest.raises(FileNotFoundError):
        (root / "no.json").unlink()
    (root / "no.json").unlink(missing_ok=True)
    jobfs.replace(a, root / "moved.json")
    assert not a.exists() and (root / "moved.json").read_text() == '{"x": 1}'
    jobfs.rmtree(root / "state")
    jobfs.rmtree(root / "state")  # missing is fine
    assert not (root / "state" / "n2" / "state.json").exists()


def test_s3_job_dir_in_process_matches_local(s3, corpus, local_run):
    fs, _ = s3
    ref, parts = local_run
    job = f"s3://{BUCKET}/jobs/inproc"
    res = run_pipeline(quickstart(corpus, f"s3://{BUCKET}/data/*.parquet", f"s3://{BUCKET}/out-inproc"),
                       executor="local", job_dir=job)
    assert res.ledger == ref.ledger
    assert s3_parts(fs, "out-inproc") == parts
    names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/jobs/inproc"))}
    assert {"spec.json", "stats.json", "ledger.json", "result.json", "report.html", "summary.json"} <= names
    assert "INCOMPLETE" not in names
    assert completed_work(job).fits == 3  # exact, near, select fitted; state.json on S3

    from api.rejects_sample import sample_rejects
    from curate import jobfs
    from curate.lineage import explain

    sample = sample_rejects(jobfs.path(job), "exact_duplicate", None, 3)
    assert sample["count"] == 3 and sample["reasons"]["exact_duplicate"] == ref.ledger["exact"]["rejected"]
    e = explain(job, sample["items"][0]["id"])
    assert e["status"] == "rejected" and e["rejected"]["node"] == "exact", e


# -- the multi-node cluster ----------------------------------------------------------------


class RayCluster:
    """tests/scripts/s3_cluster.py, driven over its stdin."""

    def __init__(self, tmp: Path):
        self.auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
        # no AWS_* on the nodes: workers get them only from the driver (runtime_env)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("AWS_")}, **self.auth}
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "tests/scripts/s3_cluster.py"), str(tmp)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        line = self.proc.stdout.readline()
        assert line, "the cluster did not start"
        info = json.loads(line)
        self.address, self.worker_tmp = info["address"], [Path(d) for d in info["worker_tmp"]]

    def remove_worker(self, i: int) -> None:
        self.proc.stdin.write(f"remove {i}\n")
        self.proc.stdin.flush()
        assert self.proc.stdout.readline().strip() == "removed"

    def close(self) -> None:
        try:
            self.proc.communicate("quit\n", timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module")
def cluster(s3, tmp_path_factory):
    c = RayCluster(tmp_path_factory.mktemp("nodes"))
    yield c
    c.close()


def _driver(cluster, tmp: Path, spec: dict, job_dir: str, *extra: str) -> subprocess.Popen:
    for d in ("home", "cwd", "tmp"):
        (tmp / d).mkdir(exist_ok=True)
    (tmp / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, **cluster.auth, "CURATE_RAY_ADDRESS": cluster.address, "HOME": str(tmp / "home"),
           "CURATE_HOME": str(tmp / "home/.curate"), "TMPDIR": str(tmp / "tmp"),
           "MPLCONFIGDIR": str(tmp / "cache/mpl"), "XDG_CACHE_HOME": str(tmp / "cache")}  # caches, not job files
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen([sys.executable, "-m", "cli", "run", str(tmp / "spec.json"), "--job-dir", job_dir,
                             "--executor", "ray", "--quiet", *extra], cwd=tmp / "cwd", env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)


def _finish(proc: subprocess.Popen, timeout: float = 240) -> str:
    out, _ = proc.communicate(timeout=timeout)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    return text


def _local_files(tmp: Path) -> list[str]:
    """Files the driver left in its cwd, HOME, CURATE_HOME and TMPDIR (spec.json is ours)."""
    return sorted(str(p.relative_to(tmp)) for d in ("home", "cwd", "tmp") for p in (tmp / d).rglob("*") if p.is_file())


def _spill(d: Path) -> list[str]:
    return sorted(p.name for p in d.rglob("curate-spill-*"))


@pytest.mark.ray
def test_quickstart_on_multinode_ray_with_s3_job_dir(s3, corpus, local_run, cluster, tmp_path):
    fs, _ = s3
    ref, parts = local_run
    spec = quickstart(corpus, f"s3://{BUCKET}/data/*.parquet", f"s3://{BUCKET}/out-ray")
    _finish(_driver(cluster, tmp_path, spec, f"s3://{BUCKET}/jobs/ray"))
    assert s3_parts(fs, "out-ray") == parts
    ledger = json.loads(fs.open_input_stream(f"{BUCKET}/jobs/ray/ledger.json").read())
    assert ledger == ref.ledger
    stats = json.loads(fs.open_input_stream(f"{BUCKET}/jobs/ray/stats.json").read())
    assert stats["job"]["executor"] == "ray"
    assert _local_files(tmp_path) == []  # no local job directory, no staging, no spill
    for d in cluster.worker_tmp:
        assert _spill(d) == []


def _progress(fs, job: str) -> dict:
    try:
        with fs.open_input_stream(f"{BUCKET}/{job}/progress.json") as f:
            return json.loads(f.read())
    except (OSError, ValueError):
        return {}


@pytest.mark.ray
def test_worker_killed_mid_barrier_then_resume_is_byte_identical(s3, corpus, local_run, cluster, tmp_path):
    fs, _ = s3
    ref, parts = local_run
    job = "jobs/killed"
    spec = quickstart(corpus, f"s3://{BUCKET}/data/*.parquet", f"s3://{BUCKET}/out-killed")
    proc = _driver(cluster, tmp_path, spec, f"s3://{BUCKET}/{job}")
    deadline = time.time() + 180
    while not any(s["step"] == "fit:near" for s in _progress(fs, job).get("steps", [])):
        assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-3000:]
        assert time.time() < deadline, "the minhash fit never started"
        time.sleep(0.05)
    cluster.remove_worker(0)  # a worker dies in the middle of the barrier
    os.killpg(proc.pid, signal.SIGKILL)  # and the driver with it: the run is cut short
    proc.communicate(timeout=30)
    names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/{job}"))}
    assert "result.json" not in names and "INCOMPLETE" in names
    before = completed_work(f"s3://{BUCKET}/{job}")
    assert before.shards >= 6 and before.fits >= 1  # ingest + exact steps recorded, exact fitted
    near_state = pafs.FileSelector(f"{BUCKET}/{job}/state/near", allow_not_found=True)
    assert not any(i.base_name == "state.json" for i in fs.get_file_info(near_state))  # cut mid-fit

    _finish(_driver(cluster, tmp_path, spec, f"s3://{BUCKET}/{job}", "--resume"))
    assert s3_parts(fs, "out-killed") == parts
    assert json.loads(fs.open_input_stream(f"{BUCKET}/{job}/ledger.json").read()) == ref.ledger
    assert _local_files(tmp_path) == []
    assert _spill(cluster.worker_tmp[1]) == []  # the node that lived cleaned its spill files


def test_service_with_s3_jobs_root_serves_its_artifacts(s3, tmp_path):
    """``CURATE_JOBS_DIR=s3://...``: the service's job directories live on S3; the report,
    rejects and explain routes read them there; only the driver's log stays local."""
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.corpus import branch_join_spec, write_corpus
    from tests.test_api_util import TOKEN, local_config, wait_state

    fs, _ = s3
    write_corpus(tmp_path / "data" / "in")
    cfg = local_config(tmp_path, api_token=TOKEN, jobs_root=f"s3://{BUCKET}/svc")
    with TestClient(create_app(cfg), headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        jid = c.post("/v1/jobs", json=branch_join_spec("in/*.parquet", "out/kept")).json()["id"]
        j = wait_state(c.get, jid)
        assert j["state"] == "succeeded", j["error"]
        assert j["artifacts"]["job_dir"] == f"s3://{BUCKET}/svc/{jid}"
        assert j["artifacts"]["report"] == f"s3://{BUCKET}/svc/{jid}/report.html"
        assert j["ledger"]["docs"]["in"] == 180 and j["ledger"]["dd"]["rejected"] == 5  # as tests/test_api.py
        out = tmp_path / "data/out/kept"  # a local output: copied down from S3 at publish
        kept = sum(pq.ParquetFile(f).metadata.num_rows for f in out.glob("part-*.parquet"))
        assert kept == j["ledger"]["both"]["kept"] > 0 and not list(out.parent.glob(".kept.staging-*"))
        rej = c.get(f"/v1/jobs/{jid}/rejects", params={"reason": "exact_duplicate", "limit": 3}).json()
        assert rej["count"] == 3 and rej["reasons"]["exact_duplicate"] == 5
        rep = c.get(f"/v1/jobs/{jid}/report")
        assert rep.status_code == 200 and "<html" in rep.text.lower()
        e = c.get(f"/v1/jobs/{jid}/explain/{rej['items'][0]['id']}").json()
        assert e["status"] == "rejected" and e["rejected"]["reason"] == "exact_duplicate"
    names = {i.base_name for i in fs.get_file_info(pafs.FileSelector(f"{BUCKET}/svc/{jid}"))}
    assert {"result.json", "stats.json", "ledger.json", "report.html"} <= names and "INCOMPLETE" not in names
    local = sorted(str(p.relative_to(tmp_path / "home")) for p in (tmp_path / "home").rglob("*") if p.is_file())
    assert [p for p in local if not p.startswith("curate.db")] == [
        f"drivers/{jid}/driver.log", f"drivers/{jid}/submitted_spec.json"]


def test_s3_job_dir_has_a_single_owner(s3, corpus, tmp_path):
    """A second run on a live run's S3 job directory is refused naming the holder; a stale
    lock (its heartbeat old) is taken over; the lock object is gone when the run ends."""
    import time as _time

    from workers.output_lock import LockHeld
    from workers.remote_lock import RemoteJobLock, remote_lock_object

    fs, _ = s3
    from curate import jobfs

    job = jobfs.path(f"s3://{BUCKET}/jobs/owned")
    lock_key = remote_lock_object(job).key
    owner = {"job_dir": str(job), "job_id": "job-a", "host": "elsewhere", "pid": 1, "pid_started": 0.0}
    first = RemoteJobLock(job, owner).acquire()
    try:
        assert json.loads(fs.open_input_stream(lock_key).read())["job_id"] == "job-a"
        with pytest.raises(LockHeld, match="job job-a"):  # exactly one owner, even of two locks
            RemoteJobLock(job, {**owner, "job_id": "job-b"}).acquire()
        spec = quickstart(corpus, f"s3://{BUCKET}/data/*.parquet", f"s3://{BUCKET}/out-owned")
        with pytest.raises(LockHeld, match="job job-a"):
            run_pipeline(spec, executor="local", job_dir=str(job))
    finally:
        first.release()
    assert fs.get_file_info(lock_key).type == pafs.FileType.NotFound
    # a lock whose holder stopped beating (another host, heartbeat 10 minutes old) is stale
    with fs.open_output_stream(lock_key) as f:
        f.write(json.dumps({**owner, "heartbeat": _time.time() - 600}).encode())
    res = run_pipeline(spec, executor="local", job_dir=str(job))
    assert res.ledger["exact"]["in"] > 0
    assert fs.get_file_info(lock_key).type == pafs.FileType.NotFound
