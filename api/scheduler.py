"""Scheduled corpus refreshes: a cron expression plus a spec template.

Each run of a schedule

* expands every input of the template and keeps only the shards (files) no earlier run of
  the schedule has claimed, identified by path plus content digest (local files: xxh3-128
  of the bytes; object stores: the ETag) — a rewritten file counts as new;
* points every ``minhash_dedup`` node at the schedule's MinHash index directory
  (``against_index``, once an earlier run has written it, and ``write_index`` so the run
  appends a new index version);
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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import xxhash
from croniter import croniter

from api import store as st
from api.periodic import Periodic

if TYPE_CHECKING:  # pragma: no cover
    from api.service import Service

log = logging.getLogger("curate.api")

DEDUP_STAGE = "minhash_dedup"
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


class Scheduler(Periodic):
    """Fires due schedules; a background thread calls :meth:`tick` every second."""

    def __init__(self, service: Service, clock: Callable[[], float] = time.time):
        self.svc = service
        self.store = service.store
        self.clock = clock
        self._lock = threading.Lock()
        self._init_periodic()

    _thread_name = "curate-scheduler"

    def _interval(self) -> float:
        return self.svc.cfg.scheduler_poll_s

    # -- CRUD ------------------------------------------------------------------------------
    def create(self, name: str, cron: str, template: dict) -> dict:
        """Validate and store a schedule (BadCron, BadSpec, PathNotAllowed on bad input)."""
        cron = check_cron(cron)
        tmpl = self.svc.check_spec(template, check_inputs=False)
        sid = st.new_id()
        index_dir = str(self.svc.cfg.schedules_dir / sid / "minhash_index")
        return self.store.create_schedule(
            sched_id=sid,
            name=name,
            cron=cron,
            template=tmpl,
            next_run_at=next_fire(cron, self.clock()),
            index_dir=index_dir,
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
        index_dir = Path(s["index_dir"])
        has_index = (index_dir / "index.json").is_file()  # written by an earlier run's minhash_dedup
        for node in spec.get("nodes") or []:
            if node.get("stage") == DEDUP_STAGE:
                params = node.setdefault("params", {})
                if has_index:
                    params["against_index"] = str(index_dir)
                else:
                    params.pop("against_index", None)
                params["write_index"] = str(index_dir)
        for out in (spec.get("outputs") or {}).values():
            out["path"] = output_path(out["path"], run)
        spec["name"] = f"{spec.get('name') or s['name']}-run{run:05d}"
        index_dir.parent.mkdir(parents=True, exist_ok=True)
        # The template passed the sandbox at creation; the run spec only adds the
        # service's own index dir, so it is validated but not re-sandboxed.
        job = self.svc.submit(
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


def schedule_view(s: dict) -> dict[str, Any]:
    def iso(t: float | None) -> str | None:
        return None if t is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

    return {
        "id": s["id"],
        "name": s["name"],
        "cron": s["cron"],
        "template": s["template"],
        "created_at": iso(s.get("created_at")),
        "next_run_at": iso(s.get("next_run_at")),
        "last_run_at": iso(s.get("last_run_at")),
        "last_job_id": s.get("last_job_id"),
        "runs": s.get("runs") or 0,
        "index_dir": s.get("index_dir"),
        "last_message": s.get("last_message"),
    }
