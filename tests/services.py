"""Throw-away servers for tests, as real processes on loopback (helpers, no tests).

- :func:`postgres_server`: PostgreSQL from Debian's packages (``initdb`` + ``pg_ctl`` under
  ``/usr/lib/postgresql/*/bin``, as the ``postgres`` user when run as root);
- :func:`process_group`: any server command in its own session, killed as a group;
- :func:`ray_start_args`: the ports and paths a ``ray start`` needs so that several nodes
  share one host and nothing lands in ``/tmp/ray``.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from api.raycluster import free_port

PG_BINDIRS = [os.path.dirname(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))]


def _as_pg(*cmd: str) -> subprocess.CompletedProcess:
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*prefix, *cmd], capture_output=True, text=True, timeout=120, check=False)


@dataclass
class Postgres:
    port: int
    user: str
    password: str | None

    def url(self, db: str, driver: str = "postgresql+psycopg") -> str:
        cred = self.user + (f":{self.password}" if self.password else "")
        return f"{driver}://{cred}@127.0.0.1:{self.port}/{db}"


@contextmanager
def postgres_server(
    user: str = "postgres", password: str | None = None, db: str | None = None
) -> Iterator[Postgres]:
    """A PostgreSQL server on a free loopback port; skips the test when it cannot start.

    With ``password`` TCP logins need it (scram-sha-256), as in the official image; ``db``
    is created owned by ``user``, like the image's ``POSTGRES_DB``.
    """
    if not PG_BINDIRS:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("runuser missing")
    bindir = PG_BINDIRS[-1]
    d = Path(tempfile.mkdtemp(prefix="curate-pg-"))  # pytest's tmp dirs are not traversable by postgres
    data, sock = d / "data", d / "sock"
    sock.mkdir()
    init = [f"{bindir}/initdb", "-D", str(data), "-U", user, "-E", "UTF8"]
    if password:
        (d / "pw").write_text(password)
        (d / "pw").chmod(0o600)
        init += ["--pwfile", str(d / "pw"), "--auth-local=trust", "--auth-host=scram-sha-256"]
    else:
        init += ["--auth=trust"]
    if os.geteuid() == 0:
        for p in (d, sock, d / "pw"):
            if p.exists():
                shutil.chown(p, "postgres")
    started = False
    try:
        r = _as_pg(*init)
        if r.returncode != 0:
            pytest.skip(f"initdb failed: {r.stderr[-500:]}")
        port = free_port()
        opts = f"-p {port} -k {sock} -c listen_addresses=127.0.0.1 -c fsync=off"
        r = _as_pg(f"{bindir}/pg_ctl", "-D", str(data), "-o", opts, "-l", str(d / "log"), "-w", "start")
        if r.returncode != 0:
            pytest.skip(f"postgres did not start: {r.stderr[-500:]}")
        started = True
        pg = Postgres(port, user, password)
        if db and db != "postgres":
            import psycopg

            with psycopg.connect(pg.url("postgres", driver="postgresql"), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{db}" OWNER "{user}"')
        yield pg
    finally:
        if started:
            _as_pg(f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(d, ignore_errors=True)


def _group_alive(pgid: int) -> bool:
    for p in psutil.process_iter(["status"]):
        try:
            if p.info["status"] != psutil.STATUS_ZOMBIE and os.getpgid(p.pid) == pgid:
                return True
        except (ProcessLookupError, psutil.Error):
            continue
    return False


def kill_group(proc: subprocess.Popen, grace: float = 20.0) -> None:
    """SIGTERM the leader ``proc``, then SIGKILL its whole process group if anything of it
    is left after ``grace``.

    The leader alone: ``ray start --block`` stops its own processes in order within seconds,
    but hangs (GCS and monitor live on) when they all get the signal at once."""
    for kill, wait in (
        (lambda: proc.send_signal(signal.SIGTERM), grace),
        (lambda: os.killpg(proc.pid, signal.SIGKILL), 10.0),
    ):
        try:
            kill()
        except ProcessLookupError:
            pass
        deadline = time.time() + wait
        while time.time() < deadline:
            proc.poll()  # reap the leader so the group can disappear
            if not _group_alive(proc.pid):
                return
            time.sleep(0.2)


@contextmanager
def process_group(
    cmd: list[str],
    env: dict[str, str],
    log: Path,
    ready: Callable[[], bool],
    timeout: float = 90.0,
    cwd: str | None = None,
) -> Iterator[subprocess.Popen]:
    """Run ``cmd`` in its own session until the block ends; wait until ``ready()``."""
    with open(log, "ab") as logf:
        proc = subprocess.Popen(
            cmd,
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            cwd=cwd,
        )
    try:
        deadline = time.time() + timeout
        while not ready():
            if proc.poll() is not None:
                raise AssertionError(f"{cmd[:3]} exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.time() > deadline:
                raise AssertionError(f"{cmd[:3]} not ready after {timeout:.0f}s:\n{log.read_text()[-3000:]}")
            time.sleep(0.3)
        yield proc
    finally:
        kill_group(proc)


def ray_start_args(temp_dir: Path, object_store_mb: int = 150) -> list[str]:
    """Options that let several ``ray start`` nodes share one host.

    Every port Ray would otherwise take at a fixed default (client server 10001, dashboard
    agent 52365, ...) is a free one; session files go to ``temp_dir`` (short: Ray's socket
    paths must fit in 107 bytes), so nothing lands in ``/tmp/ray``."""
    return [
        "--node-ip-address=127.0.0.1",
        f"--temp-dir={temp_dir}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--object-store-memory={object_store_mb * 1024 * 1024}",
    ]
