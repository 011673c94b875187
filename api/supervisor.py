"""Job supervision: one driver subprocess per job, watched by a background thread.

The driver (``cfg.driver_cmd SPEC --job-dir DIR --executor ray --ray-address A``) runs in
its own session, so cancelling kills exactly its process group and an API crash does not
kill it. It reports through the files of :mod:`workers.job_files` in the job directory:
``progress.json`` (rewritten atomically while it runs) and ``result.json`` at the end. The
supervisor copies progress into the store, launches queued jobs when a slot is free,
finalizes finished ones and, at start-up, reconciles jobs left ``running`` by an earlier API
process: still alive -> adopted; finished -> recorded from ``result.json``; otherwise
-> ``interrupted`` (``retry`` resumes it from its completed shards).
"""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from api import store as st
from api.config import Config
from api.periodic import Periodic
from curate import jobfs
from workers.job_files import PROGRESS_FILE, RESULT_FILE, read_progress, read_result
from workers.outputs import staging_dir

log = logging.getLogger("curate.api")

INCOMPLETE = "INCOMPLETE"


@dataclass
class Handle:
    """A live driver process (our child, or adopted after an API restart)."""

    job_id: str
    pid: int
    job_dir: jobfs.JobPath
    popen: subprocess.Popen | None = None
    cancelling: bool = False
    progress_mtime: float = 0.0
    started: float = field(default_factory=time.time)

    def exit_code(self) -> int | None:
        """None while running; the exit code (or -1 when unknown) once it has exited."""
        if self.popen is not None:
            return self.popen.poll()
        try:
            p = psutil.Process(self.pid)
            if p.status() == psutil.STATUS_ZOMBIE:
                return -1
            return None
        except psutil.NoSuchProcess:
            return -1


def read_json(path: Path) -> Any:
    """A JSON file's content, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _code_root() -> str:
    """The directory holding the ``curate``/``workers`` packages (drivers run elsewhere)."""
    import curate

    return str(Path(curate.__file__).resolve().parents[1])


def log_tail(path: Path, n: int = 2000) -> str:
    try:
        data = path.read_bytes()[-n:]
    except OSError:
        return ""
    return data.decode("utf-8", "replace").strip()


def _own_dirs(job_dir: Path, outputs: dict) -> list[Path]:
    """The job directory and this job's staging directories: never a published output,
    which may belong to another, successful run."""
    return [job_dir] + [
        staging_dir(p, job_dir) for p in (outputs or {}).values() if isinstance(p, str) and "://" not in p
    ]


def mark_incomplete(job_dir: Path, outputs: dict, why: str) -> None:
    """Write ``INCOMPLETE`` markers in the job dir and in the job's own staging directories."""
    msg = f"{why}\nThese files are partial and must not be used.\n"
    for t in _own_dirs(job_dir, outputs):
        try:
            if t == job_dir or t.exists():
                t.mkdir(parents=True, exist_ok=True)
                (t / INCOMPLETE).write_text(msg)
        except OSError:  # pragma: no cover - best effort
            log.warning("could not mark %s incomplete", t)


def clear_incomplete(job_dir: Path, outputs: dict) -> None:
    for t in _own_dirs(job_dir, outputs):
        (t / INCOMPLETE).unlink(missing_ok=True)


class Supervisor(Periodic):
    """Launches, watches, cancels and reconciles job drivers."""

    def __init__(
        self,
        cfg: Config,
        store: st.Store,
        ray_address: str | None = None,
        ray_env: dict[str, str] | None = None,
        on_finish: Callable[[dict, dict | None], None] | None = None,
    ):
        self.cfg = cfg
        self.store = store
        self.ray_address = ray_address
        self.ray_env = ray_env or {}
        self.on_finish = on_finish
        self.handles: dict[str, Handle] = {}
        self.lock = threading.RLock()
        self._tick_lock = threading.Lock()
        self._init_periodic()

    # -- lifecycle ---------------------------------------------------------------------
    _thread_name = "curate-supervisor"

    def _interval(self) -> float:
        return self.cfg.poll_s

    def start(self) -> None:
        self.reconcile()
        super().start()

    # -- reconciliation ------------------------------------------------------------------
    def reconcile(self) -> None:
        """Settle jobs an earlier API process left ``running``."""
        for job in self.store.jobs_in([st.RUNNING]):
            jd = jobfs.path(job["job_dir"])
            pid = job.get("pid")
            alive = False
            if pid:
                try:
                    p = psutil.Process(pid)
                    alive = (
                        p.status() != psutil.STATUS_ZOMBIE
                        and abs(p.create_time() - float(job.get("pid_started") or 0)) < 1.0
                    )
                except psutil.NoSuchProcess:
                    alive = False
            if alive:
                log.info("job %s: driver %s still running, adopted", job["id"], pid)
                self.handles[job["id"]] = Handle(job["id"], pid, jd)
                continue
            if (jd / RESULT_FILE).exists():
                self._finalize(job, None, note="finished while the API was down")
            else:
                mark_incomplete(
                    jd, job.get("outputs") or {}, "interrupted: the driver stopped while the API was down"
                )
                self.store.transition(
                    job["id"],
                    st.INTERRUPTED,
                    "driver gone after an API restart; POST /v1/jobs/{id}/retry resumes it",
                    expect=[st.RUNNING],
                    finished_at=time.time(),
                    error="interrupted: the job's driver stopped while the API was down",
                )

    # -- the loop body -------------------------------------------------------------------
    def tick(self) -> None:
        """One supervision pass: progress, finished drivers, queued launches (serialized)."""
        with self._tick_lock:
            self._tick()

    def _tick(self) -> None:
        with self.lock:
            handles = list(self.handles.values())
        for h in handles:
            self._refresh_progress(h)
            code = h.exit_code()
            if code is not None:
                job = self.store.get_job(h.job_id)
                with self.lock:
                    self.handles.pop(h.job_id, None)
                if job is not None:
                    self._finalize(job, code, cancelled=h.cancelling)
        self._launch_queued()

    def _refresh_progress(self, h: Handle) -> None:
        try:
            m = jobfs.mtime(h.job_dir / PROGRESS_FILE)
        except OSError:
            return
        if m == h.progress_mtime:
            return
        progress = read_progress(h.job_dir)
        if progress is None:  # being replaced, or unreadable: try again next tick
            return
        h.progress_mtime = m
        self.store.update_job(
            h.job_id,
            progress={"steps": [s.model_dump() for s in progress.steps], "updated_at": m},
            ledger={k: v.model_dump(by_alias=True) for k, v in progress.nodes.items()},
        )

    def _launch_queued(self) -> None:
        with self.lock:
            free = self.cfg.max_jobs - len(self.handles)
        if free <= 0:
            return
        for job in self.store.jobs_in([st.QUEUED])[:free]:
            try:
                self.launch(job)
            except Exception as e:  # a driver that cannot even start fails the job, clearly
                log.exception("job %s: launch failed", job["id"])
                self.store.transition(
                    job["id"],
                    st.FAILED,
                    f"launch failed: {e}",
                    expect=[st.QUEUED],
                    error=f"could not start the driver: {e}",
                    finished_at=time.time(),
                )

    def launch(self, job: dict) -> None:
        jd = jobfs.path(job["job_dir"])
        jd.mkdir(parents=True, exist_ok=True)
        (jd / RESULT_FILE).unlink(missing_ok=True)
        local = self.driver_dir(jd)
        local.mkdir(parents=True, exist_ok=True)
        spec_file = local / "submitted_spec.json"
        spec_file.write_text(json.dumps(job["spec"], indent=2, sort_keys=True))
        # The service preflighted the spec at submit (or was told not to): the driver does not.
        cmd = [*self.cfg.driver_cmd, str(spec_file), "--job-dir", str(jd), "--executor", self.cfg.executor,
               "--no-preflight"]
        if self.cfg.executor == "ray" and self.ray_address:
            cmd += ["--ray-address", self.ray_address]
        if job.get("resume"):
            cmd.append("--resume")
        env = {**os.environ, **self.ray_env, "CURATE_JOB_ID": job["id"]}
        env["PYTHONPATH"] = os.pathsep.join(x for x in (_code_root(), env.get("PYTHONPATH")) if x)
        env.pop("RAY_ADDRESS", None)
        with open(local / "driver.log", "ab") as logf:
            logf.write(f"\n=== attempt {int(job.get('attempt') or 0) + 1}: {' '.join(cmd)}\n".encode())
            logf.flush()
            proc = subprocess.Popen(
                cmd,
                stdout=logf,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                start_new_session=True,
                cwd=str(local),
            )
        try:
            created = psutil.Process(proc.pid).create_time()
        except psutil.NoSuchProcess:  # pragma: no cover - exited at once
            created = time.time()
        with self.lock:
            self.handles[job["id"]] = Handle(job["id"], proc.pid, jd, popen=proc)
        ok = self.store.transition(
            job["id"],
            st.RUNNING,
            f"driver pid {proc.pid}",
            expect=[st.QUEUED],
            pid=proc.pid,
            pid_started=created,
            started_at=time.time(),
            attempt=int(job.get("attempt") or 0) + 1,
            finished_at=None,
            error=None,
            exit_code=None,
        )
        if not ok:  # cancelled between listing and launch
            self._kill(proc.pid)
            with self.lock:
                self.handles.pop(job["id"], None)

    # -- finishing -----------------------------------------------------------------------
    def _finalize(
        self, job: dict, code: int | None, cancelled: bool = False, note: str | None = None
    ) -> None:
        jd = jobfs.path(job["job_dir"])
        local = self.driver_dir(jd)
        outputs = job.get("outputs") or {}
        result = read_result(jd)
        stats = read_json(jd / "stats.json")
        ledger = read_json(jd / "ledger.json")
        fields: dict[str, Any] = {
            "exit_code": code,
            "finished_at": time.time(),
            "artifacts": self.artifacts(jd, local),
        }
        if isinstance(ledger, dict):
            fields["ledger"] = ledger
        elif isinstance(stats, dict) and isinstance(stats.get("nodes"), dict):
            fields["ledger"] = stats["nodes"]
        if result is not None:
            fields["outputs"] = {**outputs, **result.outputs}
        finished_ok = result is not None and result.state == st.SUCCEEDED and code in (0, -1, None)
        if cancelled and not finished_ok:
            mark_incomplete(jd, outputs, "cancelled")
            state, msg, err = (
                st.CANCELLED,
                "cancelled; published outputs left as they were, the job's staging marked INCOMPLETE",
                "cancelled by request",
            )
        elif finished_ok:  # (a cancel that came too late does not undo a finished job)
            clear_incomplete(jd, outputs)
            state, msg, err = st.SUCCEEDED, note or "succeeded", None
        elif result is not None:
            state, msg = st.FAILED, note or "failed"
            err = str(result.error or f"driver exited with code {code}")
        else:
            state, msg = st.FAILED, note or "failed"
            if code == 2:
                err = "invalid spec: " + log_tail(local / "driver.log", 1500)
            else:
                tail = log_tail(local / "driver.log")
                err = f"driver exited with code {code} without a result; log tail:\n{tail}"
        if state != st.SUCCEEDED and not cancelled:
            mark_incomplete(jd, outputs, f"{state}: {err}")
        fields["error"] = err
        moved = self.store.transition(job["id"], state, msg, expect=[st.RUNNING], **fields)
        if moved and self.on_finish:
            try:
                self.on_finish({**job, **fields, "state": state}, stats if isinstance(stats, dict) else None)
            except Exception:  # pragma: no cover
                log.exception("on_finish hook failed")

    def driver_dir(self, jd: jobfs.JobPath) -> Path:
        """Where the driver's local files go (its log, the submitted spec, its working
        directory): the job directory, or ``$CURATE_HOME/drivers/<job>`` when the job
        directory is on an object store (the service alone reads them)."""
        return jd if isinstance(jd, Path) else self.cfg.home / "drivers" / jd.name

    @staticmethod
    def artifacts(jd: jobfs.JobPath, local: Path | None = None) -> dict[str, str]:
        local = jd if local is None else local
        out = {"job_dir": str(jd)}
        for name in (
            "report.html",
            "stats.json",
            "ledger.json",
            "plan.json",
            "spec.json",
            "result.json",
        ):
            if (jd / name).exists():
                out[name.split(".")[0]] = str(jd / name)
        if (local / "driver.log").exists():
            out["log"] = str(local / "driver.log")
        if (jd / "rejects").is_dir():
            out["rejects"] = str(jd / "rejects")
        return out

    # -- user actions ----------------------------------------------------------------------
    def cancel(self, job_id: str, wait_s: float = 20.0) -> str:
        """Cancel a queued or running job; returns the resulting state.

        Raises ``LookupError`` for an unknown job and ``ValueError`` for a finished one.
        """
        job = self.store.get_job(job_id)
        if job is None:
            raise LookupError(job_id)
        if job["state"] == st.QUEUED:
            if self.store.transition(
                job_id,
                st.CANCELLED,
                "cancelled while queued",
                expect=[st.QUEUED],
                finished_at=time.time(),
                error="cancelled by request",
            ):
                return st.CANCELLED
            job = self.store.get_job(job_id) or job
        if job["state"] != st.RUNNING:
            raise ValueError(
                f"job {job_id} is already {job['state']}; only queued or running jobs can be cancelled"
            )
        with self.lock:
            h = self.handles.get(job_id)
            if h is not None:
                h.cancelling = True
        if h is None:  # running in the DB but no driver here (should not happen after reconcile)
            mark_incomplete(jobfs.path(job["job_dir"]), job.get("outputs") or {}, "cancelled")
            self.store.transition(
                job_id,
                st.CANCELLED,
                "cancelled (no live driver)",
                expect=[st.RUNNING],
                finished_at=time.time(),
                error="cancelled by request",
            )
            return st.CANCELLED
        self._kill(h.pid)
        deadline = time.time() + wait_s
        while time.time() < deadline:
            cur = self.store.get_job(job_id)
            if cur and cur["state"] != st.RUNNING:
                return cur["state"]
            self.tick()
            time.sleep(0.05)
        return st.RUNNING  # pragma: no cover - the driver refused to die in time

    @staticmethod
    def _kill(pid: int, grace: float = 5.0) -> None:
        """SIGTERM the driver's process group, SIGKILL after ``grace`` seconds."""
        try:
            pgid = os.getpgid(pid)
        except ProcessLookupError:
            return
        if pgid == os.getpgid(0):  # never signal our own group
            pgid = None  # type: ignore[assignment]
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                if pgid:
                    os.killpg(pgid, sig)
                else:
                    os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.time() + grace
            while time.time() < deadline:
                try:
                    p = psutil.Process(pid)
                    if p.status() == psutil.STATUS_ZOMBIE:
                        return
                except psutil.NoSuchProcess:
                    return
                time.sleep(0.05)

    def retry(self, job_id: str) -> None:
        """Queue a failed, interrupted or cancelled job again, resuming from completed shards."""
        job = self.store.get_job(job_id)
        if job is None:
            raise LookupError(job_id)
        retryable = [st.FAILED, st.INTERRUPTED, st.CANCELLED]
        if job["state"] not in retryable:
            raise ValueError(
                f"job {job_id} is {job['state']}; only failed, interrupted or cancelled jobs can be retried"
            )
        if not self.store.transition(
            job_id,
            st.QUEUED,
            "retry: resume from completed shards",
            expect=retryable,
            resume=True,
            error=None,
            finished_at=None,
        ):
            raise ValueError(f"job {job_id} changed state concurrently; try again")
