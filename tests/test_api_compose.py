"""docker-compose.yml is valid (Debian's docker-compose client, no engine needed) and wired right."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from api.security import sandbox_spec
from curate.spec import load_spec_text, validate_spec

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
