"""The embedded Ray head the service starts when no ``CURATE_RAY_ADDRESS`` is given.

One ``ray start --head --block`` subprocess in its own session (process group), bound to
127.0.0.1, with a private ``--temp-dir`` so that no other ``ray.init()`` on the machine
auto-connects to it. Every job driver is its own Ray job on this cluster.

Token authentication (Ray >= 2.52 turns it on by default for ``ray.init()`` clusters, and
``ray start`` turns it on when a token file exists): the service generates its own
256-bit token in ``$CURATE_HOME/ray/auth_token`` (mode 0600) and starts the head with
``RAY_AUTH_MODE=token`` and ``RAY_AUTH_TOKEN_PATH`` pointing at it; drivers get the
same two variables (:meth:`EmbeddedRay.driver_env`). Nothing depends on
``~/.ray/auth_token``, so a token created by some other ``ray.init()`` never locks the
drivers out. With an external ``CURATE_RAY_ADDRESS`` the operator's ``RAY_AUTH_*``
environment is passed to drivers unchanged.

The head survives an API crash (own session); its address and process group are kept
in ``$CURATE_HOME/ray/head.json`` and the next start re-uses it when still alive, so
drivers of jobs that kept running are not orphaned.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import xxhash

log = logging.getLogger("curate.api")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp_alive(address: str, timeout: float = 0.5) -> bool:
    """Whether something accepts TCP connections at ``host:port``."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def _pgid_alive(pgid: int) -> bool:
    """Whether any live (non-zombie) process is left in process group ``pgid``."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    import psutil

    for p in psutil.process_iter(["status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


class EmbeddedRay:
    """Start, adopt and stop the service's own loopback Ray head."""

    def __init__(self, home: Path, num_cpus: int | None = None, object_store_mb: int = 512):
        self.dir = Path(home) / "ray"
        self.num_cpus = num_cpus
        self.object_store_mb = object_store_mb
        self.state_file = self.dir / "head.json"
        self.token_path = self.dir / "auth_token"
        tag = xxhash.xxh3_64_hexdigest(str(self.dir.resolve()).encode())[:10]
        self.temp_dir = Path("/tmp") / f"curate-ray-{tag}"  # short: Ray's socket paths have a length limit
        self.address: str | None = None
        self.pgid: int | None = None
        self.adopted = False
        self._proc: subprocess.Popen | None = None

    def _ensure_token(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.token_path.exists():
            fd = os.open(self.token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))

    def driver_env(self) -> dict[str, str]:
        """Environment for processes that connect to this head."""
        return {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def _is_ours(self, pgid: int) -> bool:
        """Whether ``pgid`` still leads our ``ray start`` (guards against pid reuse)."""
        try:
            import psutil

            return str(self.temp_dir) in " ".join(psutil.Process(pgid).cmdline())
        except Exception:  # noqa: BLE001 - gone, zombie or not ours
            return False

    def alive(self) -> bool:
        return bool(
            self.address
            and self.pgid
            and _pgid_alive(self.pgid)
            and self._is_ours(self.pgid)
            and tcp_alive(self.address)
        )

    def start(self, timeout: float = 90.0) -> str:
        """Adopt a live head from an earlier run of the service, or start a new one."""
        self._ensure_token()
        if self.state_file.exists():
            try:
                st = json.loads(self.state_file.read_text())
                self.address, self.pgid = st["address"], int(st["pgid"])
            except (ValueError, KeyError, OSError):
                self.address = self.pgid = None
            if self.alive():
                self.adopted = True
                log.info("re-using the embedded Ray head at %s", self.address)
                return self.address  # type: ignore[return-value]
            if self.pgid and self._is_ours(self.pgid):  # half-dead head of ours: clear it away
                self._kill_group()
        port = free_port()
        cmd = [
            str(Path(sys.executable).with_name("ray")),
            "start",
            "--head",
            "--block",
            "--node-ip-address",
            "127.0.0.1",
            "--port",
            str(port),
            "--ray-client-server-port",
            str(free_port()),
            "--dashboard-agent-listen-port",
            str(free_port()),
            "--dashboard-port",
            str(free_port()),
            "--include-dashboard=false",
            "--disable-usage-stats",
            "--object-store-memory",
            str(self.object_store_mb * 1024 * 1024),
            "--temp-dir",
            str(self.temp_dir),
        ]
        if self.num_cpus:
            cmd += ["--num-cpus", str(self.num_cpus)]
        env = {**os.environ, **self.driver_env()}
        env.pop("RAY_ADDRESS", None)
        with open(self.dir / "head.log", "wb") as logf:
            proc = subprocess.Popen(
                cmd,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
            )
        self._proc = proc
        self.address, self.pgid = f"127.0.0.1:{port}", proc.pid
        deadline = time.time() + timeout
        while time.time() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"ray start exited with {proc.returncode}; see {self.dir / 'head.log'}")
            if tcp_alive(self.address) and self._raylet_up():
                break
            time.sleep(0.3)
        else:
            self._kill_group()
            raise RuntimeError(
                f"embedded Ray head did not come up in {timeout:.0f}s; see {self.dir / 'head.log'}"
            )
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(
            json.dumps({"address": self.address, "pgid": self.pgid, "temp_dir": str(self.temp_dir)})
        )
        os.replace(tmp, self.state_file)
        log.info("started an embedded Ray head at %s (token auth on, loopback only)", self.address)
        return self.address

    def _raylet_up(self) -> bool:
        # `ray start --block` prints its banner once the head node (GCS + raylet) is up.
        try:
            return b"Ray runtime started" in (self.dir / "head.log").read_bytes()[-20000:]
        except OSError:
            return False

    def _kill_group(self, grace: float = 5.0) -> None:
        if not self.pgid:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.pgid, sig)
            except (ProcessLookupError, PermissionError):
                return
            deadline = time.time() + grace
            while time.time() < deadline and _pgid_alive(self.pgid):
                if self._proc is not None:
                    self._proc.poll()  # reap our child so the group can disappear
                time.sleep(0.1)
            if not _pgid_alive(self.pgid):
                return

    def stop(self) -> None:
        """Stop the head (its whole process group) and forget it.

        Works on a fresh object too: the process group is read from ``head.json``."""
        if self.pgid is None and self.state_file.exists():
            try:
                self.pgid = int(json.loads(self.state_file.read_text())["pgid"])
            except (ValueError, KeyError, OSError):
                self.pgid = None
            if self.pgid and not self._is_ours(self.pgid):
                self.pgid = None  # long gone; the number may belong to someone else now
        self._kill_group()
        self.state_file.unlink(missing_ok=True)
        shutil.rmtree(self.temp_dir, ignore_errors=True)  # the dead head's sockets and session logs
        self.address = self.pgid = None
