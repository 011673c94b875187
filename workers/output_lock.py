"""Single-owner locks on a job's directory and its output paths, with an owner and a heartbeat.

A run holds ``<parent>/.<name>.curate-lock`` for its job directory and for every local
output path while it runs. The lock file is created with ``O_EXCL`` and holds its owner:
job directory, job id (when the service runs it), host, pid, the pid's start time and a
heartbeat the holder rewrites every ``CURATE_LOCK_HEARTBEAT_S`` seconds (default 10).

A second run that finds a live lock is refused, naming the holder. A lock is stale, and
is taken over, when its holder is a process of this host that no longer exists (or a
new process reusing its pid), or when its heartbeat is older than
``CURATE_LOCK_STALE_S`` seconds (default 60; the only test possible for a holder on
another host). Taking over renames the stale file away first (only one taker can), then
creates a fresh one with ``O_EXCL``, so two runs racing for a stale lock never both win.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

import psutil

from workers.job_errors import JobFailed

LOCK_SUFFIX = ".curate-lock"


def _env_seconds(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


class LockHeld(JobFailed):
    """Another live run holds the lock of a path this run needs."""

    def __init__(self, path: Path, holder: dict[str, Any]):
        self.path = path
        self.holder = holder
        who = f"job {holder['job_id']}" if holder.get("job_id") else f"the run with job directory {holder.get('job_dir')}"
        super().__init__(
            f"{path} is being written by {who} (pid {holder.get('pid')} on {holder.get('host')}, "
            f"heartbeat {max(0.0, time.time() - float(holder.get('heartbeat', 0))):.0f}s ago); "
            f"wait for it to finish, or cancel it"
        )


def lock_file(target: str | Path) -> Path:
    target = Path(target)
    return target.parent / f".{target.name}{LOCK_SUFFIX}"


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _process_started(pid: int) -> float | None:
    try:
        p = psutil.Process(pid)
        return None if p.status() == psutil.STATUS_ZOMBIE else p.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def is_stale(holder: dict[str, Any] | None, path: Path, stale_s: float | None = None) -> bool:
    """Whether a lock (its parsed ``holder``, None if unreadable) may be taken over."""
    stale_s = _env_seconds("CURATE_LOCK_STALE_S", 60.0) if stale_s is None else stale_s
    if holder is None:  # half-written or foreign: stale once old enough
        try:
            return time.time() - path.stat().st_mtime > stale_s
        except OSError:
            return True
    if holder.get("host") == socket.gethostname():
        started = _process_started(int(holder.get("pid", -1)))
        if started is None or abs(started - float(holder.get("pid_started", 0))) > 1.0:
            return True
    return time.time() - float(holder.get("heartbeat", 0)) > stale_s


def live_holder(target: str | Path) -> dict[str, Any] | None:
    """The owner of ``target``'s lock if a live run holds it, else None."""
    lf = lock_file(target)
    if not lf.exists():
        return None
    holder = _read(lf)
    return None if is_stale(holder, lf) else holder


class PathLocks:
    """The locks of one run (a context manager); heartbeats on a daemon thread."""

    def __init__(self, targets: list[Path], job_dir: Path, job_id: str | None = None):
        self.targets = sorted({Path(t) for t in targets}, key=str)  # one order: no lock-order deadlock
        me = psutil.Process()
        self.owner = {
            "job_dir": str(job_dir),
            "job_id": job_id or os.environ.get("CURATE_JOB_ID") or None,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "pid_started": me.create_time(),
        }
        self.held: list[Path] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _record(self) -> bytes:
        return json.dumps({**self.owner, "heartbeat": time.time()}).encode()

    def _mine(self, lf: Path) -> bool:
        h = _read(lf)
        return h is not None and all(h.get(k) == v for k, v in self.owner.items())

    def _acquire_one(self, target: Path) -> None:
        lf = lock_file(target)
        try:
            lf.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:  # e.g. a file where the output's parent directory should be
            raise JobFailed(f"cannot write {target}: {lf.parent} is not a directory ({e.strerror or e})") from None
        for _ in range(5):
            try:
                fd = os.open(lf, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _read(lf)
                if holder is not None and self._mine(lf):
                    self.held.append(lf)
                    return
                if not is_stale(holder, lf):
                    raise LockHeld(target, holder or {}) from None
                try:  # only one taker can rename the stale file away
                    os.rename(lf, lf.with_name(f"{lf.name}.stale-{os.getpid()}-{time.time_ns()}"))
                except FileNotFoundError:
                    pass
                for old in lf.parent.glob(f"{lf.name}.stale-*"):
                    old.unlink(missing_ok=True)
                continue
            except OSError as e:
                raise JobFailed(f"cannot write {target}: {e.strerror or e} ({lf})") from None
            with os.fdopen(fd, "wb") as f:
                f.write(self._record())
            self.held.append(lf)
            return
        raise LockHeld(target, _read(lf) or {})

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            for lf in list(self.held):
                if not self._mine(lf):
                    continue  # taken over (we were presumed dead): never write into another's lock
                tmp = lf.with_name(f"{lf.name}.{os.getpid()}.tmp")
                try:
                    tmp.write_bytes(self._record())
                    os.replace(tmp, lf)
                except OSError:
                    pass

    def acquire(self) -> PathLocks:
        try:
            for t in self.targets:
                self._acquire_one(t)
        except BaseException:
            self.release()
            raise
        interval = _env_seconds("CURATE_LOCK_HEARTBEAT_S", 10.0)
        self._thread = threading.Thread(target=self._beat, args=(interval,), name="curate-lock-heartbeat", daemon=True)
        self._thread.start()
        return self

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for lf in self.held:
            if self._mine(lf):
                lf.unlink(missing_ok=True)
        self.held = []

    def __enter__(self) -> PathLocks:
        return self.acquire()

    def __exit__(self, *exc: Any) -> None:
        self.release()
