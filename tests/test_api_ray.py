"""The embedded Ray head: token auth, adoption by a restarted service, stop from the state file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from api.raycluster import EmbeddedRay, _pgid_alive, tcp_alive

pytestmark = [pytest.mark.slow, pytest.mark.ray]

PROBE = "import ray; ray.init(address=sys.argv[1], log_to_driver=False); print(ray.get(ray.put(41)) + 1)"


def _driver(address: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    code = "import sys; " + PROBE
    return subprocess.run(
        [sys.executable, "-c", code, address],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_embedded_head_token_auth_adopt_and_stop(tmp_path):
    head = EmbeddedRay(tmp_path / "home", num_cpus=1, object_store_mb=100)
    try:
        addr = head.start()
        assert addr.startswith("127.0.0.1:") and tcp_alive(addr)
        assert stat.S_IMODE(os.stat(head.token_path).st_mode) == 0o600

        base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
        ok = _driver(addr, {**base, **head.driver_env()})
        assert ok.returncode == 0 and ok.stdout.strip().splitlines()[-1] == "42", ok.stderr[-2000:]
        denied = _driver(addr, {**base, "RAY_AUTH_MODE": "disabled"})
        assert denied.returncode != 0  # no token, no cluster

        again = EmbeddedRay(tmp_path / "home")  # a restarted service adopts the live head
        assert again.start() == addr and again.adopted and again.pgid == head.pgid
    finally:
        pgid = head.pgid
        EmbeddedRay(tmp_path / "home").stop()  # a fresh object finds the head in head.json
    assert pgid is not None and not _pgid_alive(pgid)
    assert not (tmp_path / "home" / "ray" / "head.json").exists()
