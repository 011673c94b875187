"""docker-compose.yml is valid (Debian's docker-compose client, no engine needed) and wired right."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from api.security import sandbox_spec
from curate.spec import load_spec_text, validate_spec
from tests.compose_env import Localizer, dockerfile_env, interpolate, load_compose, service_env, volume_mounts

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(
    shutil.which("docker-compose") is None,
    reason="docker-compose client not installed (make system-deps: apt-get install -y docker-compose)",
)
def test_compose_config_is_valid():
    r = subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        check=False,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    full = subprocess.run(
        ["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config"],
        capture_output=True,
        check=False,
        text=True,
        cwd=REPO,
        timeout=120,
    )
    cfg = yaml.safe_load(full.stdout)
    api_env = cfg["services"]["api"]["environment"]
    assert api_env["RAY_AUTH_TOKEN"] == cfg["services"]["ray-worker"]["environment"]["RAY_AUTH_TOKEN"]
    assert api_env["CURATE_DB_URL"].startswith("postgresql+psycopg://")


def test_compose_services_and_example_spec():
    cfg = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    svcs = cfg["services"]
    assert {"ray-head", "ray-worker", "api", "postgres", "minio", "minio-init"} <= set(svcs)
    worker = svcs["ray-worker"]
    assert "container_name" not in worker and "ports" not in worker  # scalable with --scale
    assert "--address=ray-head:6379" in worker["command"]
    # drivers run in the api container, which must be a Ray node (zero CPUs) to host them
    api_cmd = " ".join(svcs["api"]["command"])
    assert "ray start --address=ray-head:6379 --num-cpus=0" in api_cmd and "curate serve" in api_cmd
    api_env = svcs["api"]["environment"]
    assert api_env["CURATE_RAY_ADDRESS"] == "ray-head:6379"
    assert "postgres:5432" in api_env["CURATE_DB_URL"] and api_env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    assert svcs["api"]["build"] == "." and svcs["ray-head"]["image"] == svcs["api"]["image"]
    assert (REPO / "Dockerfile").read_text().count("FROM ") == 2

    text = (REPO / "pipelines" / "minio_example.yaml").read_text()
    spec = load_spec_text(text)
    validate_spec(spec, check_inputs=False)
    roots = [r for r in api_env["CURATE_DATA_ROOTS"].split(",")]
    sandbox_spec(spec, roots, "/var/lib/curate/data")  # every path lies under the api's roots
    assert spec["inputs"]["web"]["path"].startswith("s3://curate/")
    assert all(o["path"].startswith("s3://curate/") for o in spec["outputs"].values())


def test_compose_env_translates_for_local_processes(tmp_path):
    """What test_api_compose_run gives each process: the compose file's values, with
    variables substituted, service hosts mapped to loopback ports and volumes to dirs."""
    variables = {"POSTGRES_PASSWORD": "pw1", "CURATE_API_TOKEN": "", "RAY_WORKER_CPUS": "3"}
    cfg = load_compose(REPO / "docker-compose.yml", variables)
    svcs = cfg["services"]
    assert "--num-cpus=3" in svcs["ray-worker"]["command"] and "--num-cpus=2" in svcs["ray-head"]["command"]
    loc = Localizer(services=list(svcs), volumes={"/var/lib/curate": tmp_path / "v"})
    loc.ports.update({("postgres", 5432): 15432, ("ray-head", 6379): 16379, ("minio", 9000): 19000})
    env = service_env(cfg, "api", dockerfile_env(REPO / "Dockerfile"), loc)
    assert env["CURATE_DB_URL"] == "postgresql+psycopg://curate:pw1@127.0.0.1:15432/curate"
    assert env["CURATE_API_TOKEN"] == "dev-api-token-change-me"  # ${X:-default}: empty -> default
    assert env["CURATE_RAY_ADDRESS"] == "127.0.0.1:16379" and env["AWS_ENDPOINT_URL"] == "http://127.0.0.1:19000"
    assert env["CURATE_DATA_ROOTS"] == "s3://curate" and env["CURATE_JOBS_DIR"] == "s3://curate/jobs"
    assert env["CURATE_HOME"] == f"{tmp_path}/v/service"  # compose wins over the image's ENV
    assert env["RAY_USAGE_STATS_ENABLED"] == "0" and env["PYTHONUNBUFFERED"] == "1"  # from the image
    assert "PYTHONUNBUFFERED" not in service_env(cfg, "postgres", {"PYTHONUNBUFFERED": "1"}, loc)
    assert volume_mounts(svcs["api"]) == {"/var/lib/curate": "curate-service"}
    assert not volume_mounts(svcs["ray-head"]) and not volume_mounts(svcs["ray-worker"])  # nothing shared
    assert interpolate("$$HOME ${A-x} ${B:+y} $C", {"A": "", "B": "1"}) == "$HOME  y "
    loc.ports.pop(("minio", 9000))
    with pytest.raises(AssertionError, match="minio"):
        loc("http://minio:9000")
