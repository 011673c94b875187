"""Service configuration, read once from ``CURATE_*`` environment variables.

``CURATE_HOME``            state directory (DB, job dirs, schedule state); ``./.curate``
``CURATE_DB_URL``          SQLAlchemy URL; default ``sqlite:///$CURATE_HOME/curate.db``
``CURATE_JOBS_DIR``        where job directories go: a local dir or ``s3://bucket/prefix`` (no
                           shared filesystem needed); default ``$CURATE_HOME/jobs``
``CURATE_API_TOKEN``       bearer token for every route but health, readiness, metrics and
                           the stage catalogue; unset -> loopback-only server, all open
``CURATE_DATA_ROOTS``      comma-separated local dirs / ``s3://bucket/prefix`` that specs may
                           read and write; default: the server's working directory
``CURATE_RAY_ADDRESS``     Ray cluster for job drivers; unset -> an embedded local Ray head
                           (``none`` -> no Ray at all, drivers use the local executor)
``CURATE_EXECUTOR``        ``ray`` (default) or ``local``
``CURATE_MAX_JOBS``        jobs running at once (default 2); the rest wait ``queued``
``CURATE_MAX_BODY_BYTES``  request body limit (default 4 MiB) -> 413 beyond
``CURATE_DRIVER_CMD``      driver command prefix (default ``<python> -m cli run``)
``CURATE_RAY_CPUS``        CPUs of the embedded Ray head (default: all)
``CURATE_POLL_S``          supervisor poll interval in seconds (default 0.5)
``CURATE_SCHEDULER_POLL_S`` scheduler tick interval in seconds (default 1)

Ray processes started for the service inherit the environment, so Ray's own settings
(e.g. ``RAY_memory_monitor_refresh_ms``) apply to the embedded head as usual.
"""

from __future__ import annotations

import ipaddress
import os
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

from curate import jobfs


@dataclass
class Config:
    """Everything the service needs to know at start-up."""

    home: Path
    db_url: str
    api_token: str | None = None
    data_roots: list[str] = field(default_factory=list)
    ray_address: str | None = None
    embedded_ray: bool = True
    executor: str = "ray"
    max_jobs: int = 2
    max_body_bytes: int = 4 * 1024 * 1024
    driver_cmd: list[str] = field(default_factory=lambda: [sys.executable, "-m", "cli", "run"])
    ray_cpus: int | None = None
    poll_s: float = 0.5
    scheduler_poll_s: float = 1.0
    jobs_root: str | None = None

    @property
    def jobs_dir(self) -> jobfs.JobPath:
        """The root of job directories (``CURATE_JOBS_DIR``, else ``$CURATE_HOME/jobs``)."""
        return jobfs.resolve(self.jobs_root) if self.jobs_root else self.home / "jobs"

    @property
    def schedules_dir(self) -> Path:
        return self.home / "schedules"

    @property
    def base_dir(self) -> str:
        """Relative spec paths resolve against the first local data root."""
        for r in self.data_roots:
            if "://" not in r:
                return r
        return os.getcwd()

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides: object) -> Config:
        """Build a config from ``env`` (default ``os.environ``); keyword overrides win."""
        e = dict(os.environ if env is None else env)
        home = Path(e.get("CURATE_HOME") or ".curate").resolve()
        roots_env = e.get("CURATE_DATA_ROOTS", "")
        roots = [r.strip() for r in roots_env.split(",") if r.strip()] or [os.getcwd()]
        roots = [r if "://" in r else str(Path(r).resolve()) for r in roots]
        ray_addr = (e.get("CURATE_RAY_ADDRESS") or "").strip() or None
        embedded = ray_addr is None
        executor = e.get("CURATE_EXECUTOR", "ray")
        if ray_addr and ray_addr.lower() == "none":
            ray_addr, embedded, executor = None, False, "local"
        drv = e.get("CURATE_DRIVER_CMD")
        cfg = cls(
            home=home,
            db_url=e.get("CURATE_DB_URL") or f"sqlite:///{home / 'curate.db'}",
            api_token=e.get("CURATE_API_TOKEN") or None,
            data_roots=roots,
            ray_address=ray_addr,
            embedded_ray=embedded and executor == "ray",
            executor=executor,
            max_jobs=int(e.get("CURATE_MAX_JOBS", "2")),
            max_body_bytes=int(e.get("CURATE_MAX_BODY_BYTES", str(4 * 1024 * 1024))),
            driver_cmd=shlex.split(drv) if drv else [sys.executable, "-m", "cli", "run"],
            ray_cpus=int(e["CURATE_RAY_CPUS"]) if e.get("CURATE_RAY_CPUS") else None,
            poll_s=float(e.get("CURATE_POLL_S", "0.5")),
            scheduler_poll_s=float(e.get("CURATE_SCHEDULER_POLL_S", "1.0")),
            jobs_root=e.get("CURATE_JOBS_DIR") or None,
        )
        for k, v in overrides.items():
            setattr(cfg, k, v)
        return cfg


LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_host(host: str, token: str | None) -> tuple[str, str | None]:
    """The host to bind and a warning: without a token only loopback is allowed."""
    if token:
        return host, None
    if is_loopback(host):
        return (
            host,
            f"CURATE_API_TOKEN is not set: serving on loopback only ({host}); every route is open",
        )
    return LOOPBACK, (
        f"CURATE_API_TOKEN is not set: refusing to bind {host}; serving on loopback only "
        f"({LOOPBACK}). Set CURATE_API_TOKEN to serve other hosts."
    )
