"""Scheduled corpus refreshes: a cron expression plus a spec template.

Each run of a schedule

* expands every input of the template and keeps only the shards (files) no earlier run of
  the schedule has claimed, identified by path plus content digest (local files: xxh3-128
  of the bytes; object stores: the ETag) — a rewritten file counts as new;
* asks every node's stage for its refresh overrides (``Stage.refresh_params(state_dir)``,
  with ``state_dir`` that node's directory under the schedule's state directory, kept
  across runs) and applies them to the node's params (None removes a key): that is how a
  dedup stage dedups each run against the survivors of earlier runs;
* writes to a per-run output prefix: ``{run}`` in an output path is replaced by the
  zero-padded run number, otherwise ``/run-NNNNN`` is appended.

Shards claimed by a run whose job failed or was cancelled are free again. A schedule
never starts a run while its previous run is still queued or running. A tick that was
missed (server down) fires once at the next start, not once per missed tick: the next
fire time is always computed from *now*. Schedules and their shard records live in the
job store, so they survive restarts.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import xxhash
from croniter import croniter

from api import store as st
from api.periodic import Periodic

log = logging.getLogger("curate.api")

CLAIMED = (st.QUEUED, st.RUNNING, st.SUCCEEDED, st.INTERRUPTED)


class BadCron(ValueError):
    """The cron expression is not valid."""


def check_cron(expr: str) -> str:
    """Validate a 5-field (minute) or 6-field (with seconds) cron expression."""
    expr = " ".join(str(expr).split())
    if not expr or len(expr.split()) not in (5, 6) or not croniter.is_valid(expr):
        raise BadCron(
            f"invalid cron expression {expr!r}: use 5 fields 'min hour day month weekday' "
            "(or 6 with seconds last), e.g. '0 3 * * *'"
        )
    return expr


def next_fire(expr: str, after: float) -> float:
    return float(croniter(expr, after).get_next(float))


def shard_digest(path: str) -> str:
    """Content identity of a shard: xxh3-128 of a local file, the ETag of a remote object."""
    if "://" in path:
        import fsspec

        fs, _, (p,) = fsspec.get_fs_token_paths(path)
        info = fs.info(p)
        tag = info.get("ETag") or info.get("etag") or info.get("md5")
        if tag:
            return "etag:" + str(tag).strip('"')
        return f"size-mtime:{info.get('size')}:{info.get('LastModified') or info.get('mtime')}"
    st_ = os.stat(path)
    key = (os.path.realpath(path), st_.st_size, st_.st_mtime_ns, st_.st_ino)
    hit = _DIGESTS.get(key)
    if hit is None:
        h = xxhash.xxh3_128()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        hit = "xxh3:" + h.hexdigest()
        if len(_DIGESTS) > 200_000:
            _DIGESTS.clear()
        _DIGESTS[key] = hit
    return hit


# (real path, size, mtime_ns, inode) -> digest: unchanged files are not re-read every run.
_DIGESTS: dict[tuple, str] = {}


def output_path(template: str, run: int) -> str:
    if "{run}" in template:
        return template.replace("{run}", f"{run:05d}")
    return template.rstrip("/") + f"/run-{run:05d}"


def node_state_dir(state_dir: str | Path, node_id: str) -> Path:
    """The directory a node keeps across a schedule's runs: ``state_dir/<node id>``. A node
    id that is not a plain file name (it may hold ``/``, ``..``, spaces...) is made one and
    suffixed with a digest, so two ids never share a directory and none escapes."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", node_id)
    if safe != node_id or safe in (".", "..") or not safe:
        safe = f"{safe[:80]}-{xxhash.xxh3_64_hexdigest(node_id.encode())}"
    return Path(state_dir) / safe


def apply_refresh_params(spec: dict, state_dir: str | Path) -> None:
    """Apply every node's ``refresh_params`` overrides to ``spec`` (in place); a None value
    removes the key. The stage is built from the registry with the node's params."""
    from curate.registry import get_stage_class

    for node in spec.get("nodes") or []:
        stage = get_stage_class(node["stage"])(node.get("params") or {})
        overrides = stage.refresh_params(str(node_state_dir(state_dir, node["id"])))
        if not overrides:
            continue
        params = node.setdefault("params", {})
        for key, value in overrides.items():
            if value is None:
                params.pop(key, None)
            else:
                params[key] = value


class JobIntake(Protocol):
    """What the scheduler needs from the service: spec checks and job submission."""

    def check_spec(self, spec: dict, *, check_inputs: bool = True) -> dict: ...

    def submit(
        self,
        spec: dict,
        *,
        schedule_id: str | None = None,
        run_number: int | None = None,
        shards: list[tuple[str, str]] | None = None,
        checked: bool = False,
    ) -> dict: ...


class Scheduler(Periodic):
    """Fires due schedules; a background thread calls :meth:`tick` every ``poll_s`` seconds.

    ``intake`` checks templates and submits runs (the service); ``schedules_dir`` holds one
    directory per schedule."""

    def __init__(
        self,
        store: st.Store,
        intake: JobIntake,
        schedules_dir: Path,
        poll_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ):
        self.store = store
        self.intake = intake
        self.schedules_dir = Path(schedules_dir)
        self.poll_s = poll_s
        self.clock = clock
        self._lock = threading.Lock()
        self._init_periodic()

    _thread_name = "curate-scheduler"

    def _interval(self) -> float:
        return self.poll_s

    # -- CRUD ------------------------------------------------------------------------------
    def create(self, name: str, cron: str, template: dict) -> dict:
        """Validate and store a schedule (BadCron, BadSpec, PathNotAllowed on bad input)."""
        cron = check_cron(cron)
        tmpl = self.intake.check_spec(template, check_inputs=False)
        sid = st.new_id()
        return self.store.create_schedule(
            sched_id=sid,
            name=name,
            cron=cron,
            template=tmpl,
            next_run_at=next_fire(cron, self.clock()),
            state_dir=str(self.schedules_dir / sid / "state"),
        )

    # -- firing ------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> list[str]:
        """Fire every due schedule once; returns the ids of the jobs started."""
        now = self.clock() if now is None else now
        started = []
        with self._lock:
            for s in self.store.list_schedules():
                if s["next_run_at"] > now:
                    continue
                try:
                    job_id = self.fire(s, now)
                except Exception as e:
                    log.exception("schedule %s: run failed to start", s["id"])
                    self.store.update_schedule(s["id"], last_message=f"run failed to start: {e}")
                    job_id = None
                self.store.update_schedule(s["id"], next_run_at=next_fire(s["cron"], now))
                if job_id:
                    started.append(job_id)
        return started

    def trigger(self, s: dict) -> str | None:
        """Run schedule ``s`` now, serialized with the ticks; returns the job id (or None)."""
        with self._lock:
            return self.fire(s)

    def fire(self, s: dict, now: float | None = None) -> str | None:
        """Start one run of schedule ``s`` now (if it has new shards); returns the job id."""
        from curate.spec import resolve_input_files

        now = self.clock() if now is None else now
        if s.get("last_job_id"):
            last = self.store.get_job(s["last_job_id"])
            if last and last["state"] in st.ACTIVE:
                self.store.update_schedule(
                    s["id"], last_message=f"skipped: run {last['id']} still {last['state']}"
                )
                return None
        seen = self.store.seen_shards(s["id"], CLAIMED)
        spec = copy.deepcopy(s["template"])
        claimed: list[tuple[str, str]] = []
        total_new = 0
        for inp in spec["inputs"].values():
            files = resolve_input_files(inp["path"])
            new = []
            for f in files:
                d = shard_digest(f)
                if (f, d) not in seen:
                    new.append(f)
                    claimed.append((f, d))
            inp["path"] = new
            total_new += len(new)
        if total_new == 0:
            self.store.update_schedule(s["id"], last_run_at=now, last_message="no new shards")
            return None
        run = int(s.get("runs") or 0) + 1
        state_dir = Path(s["state_dir"])
        state_dir.mkdir(parents=True, exist_ok=True)
        apply_refresh_params(spec, state_dir)
        for out in (spec.get("outputs") or {}).values():
            out["path"] = output_path(out["path"], run)
        spec["name"] = f"{spec.get('name') or s['name']}-run{run:05d}"
        # The template passed the sandbox at creation; the run spec only adds what the
        # stages' refresh hooks point into the service's own state dir, so it is
        # validated but not re-sandboxed.
        job = self.intake.submit(
            self._validated(spec), schedule_id=s["id"], run_number=run, shards=claimed, checked=True
        )
        self.store.update_schedule(
            s["id"],
            runs=run,
            last_run_at=now,
            last_job_id=job["id"],
            last_message=f"run {run}: {total_new} new shard(s) -> job {job['id']}",
        )
        return job["id"]

    def _validated(self, spec: dict) -> dict:
        from curate.spec import validate_spec

        validate_spec(spec)
        return spec

