"""Shared helpers for the API tests (no tests here): configs, a live uvicorn server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from api.config import Config
from api.raycluster import free_port

REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token-123"


def local_config(tmp: Path, **over: object) -> Config:
    """A config using the local executor (no Ray), state under ``tmp/home``, root ``tmp/data``."""
    (tmp / "data").mkdir(parents=True, exist_ok=True)
    env = {
        "CURATE_HOME": str(tmp / "home"),
        "CURATE_DATA_ROOTS": str(tmp / "data"),
        "CURATE_RAY_ADDRESS": "none",
        "CURATE_POLL_S": "0.1",
        "CURATE_SCHEDULER_POLL_S": "0.2",
    }
    return Config.from_env(env, **over)


def wait_state(
    get, job_id: str, states=("succeeded", "failed", "cancelled", "interrupted"), timeout: float = 120.0
) -> dict:
    """Poll ``get(f"/v1/jobs/{id}")`` until the job is in one of ``states``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        r = get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        j = r.json()
        if j["state"] in states:
            return j
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {j['state']} after {timeout}s: {j}")


class Server:
    """``python -m cli serve`` on a free loopback port, as a real process."""

    def __init__(self, env: dict[str, str], log: Path):
        self.env = {**os.environ, **env, "PYTHONPATH": str(REPO)}
        self.log = log
        self.port = free_port()
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> Server:
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "serve", "--port", str(self.port), "--log-level", "warning"],
            env=self.env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            cwd=str(REPO),
            start_new_session=True,
        )
        logf.close()
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"server not ready: {self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server process only (its drivers and Ray live in other sessions)."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    def client(self, token: str | None = TOKEN) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, timeout=60, headers={"Authorization": f"Bearer {token}"} if token else {}
        )
