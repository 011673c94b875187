"""The API's representation of stored rows (jobs, job summaries, schedules) and the one
timestamp format every response uses."""

from __future__ import annotations

import math
import time
from typing import Any

from api import store as st


def iso(t: float | None) -> str | None:
    """A Unix time as ISO 8601 UTC with millisecond precision and a trailing ``Z``
    (``2023-11-14T22:13:20.500Z``); None stays None. Milliseconds are truncated."""
    if t is None:
        return None
    secs, ms = divmod(math.floor(t * 1000), 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"


def job_view(store: st.Store, job: dict, include_spec: bool = True) -> dict[str, Any]:
    """A stored job with its history, as ``GET /v1/jobs/{id}`` returns it."""
    started, finished = job.get("started_at"), job.get("finished_at")
    end = finished or (time.time() if job.get("state") == st.RUNNING else None)
    out = {
        "id": job["id"],
        "name": job.get("name"),
        "state": job["state"],
        "created_at": iso(job.get("created_at")),
        "started_at": iso(started),
        "finished_at": iso(finished),
        "duration_s": round(end - started, 3) if started and end else None,
        "error": job.get("error"),
        "spec_hash": job.get("spec_hash"),
        "attempt": job.get("attempt") or 0,
        "progress": (job.get("progress") or {}).get("steps", []),
        "ledger": job.get("ledger") or {},
        "outputs": job.get("outputs") or {},
        "artifacts": job.get("artifacts") or {"job_dir": job.get("job_dir")},
        "history": [
            {"state": e["state"], "at": iso(e["at"]), "message": e.get("message")}
            for e in store.job_events(job["id"])
        ],
        "schedule_id": job.get("schedule_id"),
        "run_number": job.get("run_number"),
    }
    if include_spec:
        out["spec"] = job.get("spec")
    return out


def job_summary(r: dict) -> dict[str, Any]:
    """One row of the job list."""
    return {
        "id": r["id"],
        "name": r.get("name"),
        "state": r["state"],
        "created_at": iso(r.get("created_at")),
        "started_at": iso(r.get("started_at")),
        "finished_at": iso(r.get("finished_at")),
        "error": r.get("error"),
        "schedule_id": r.get("schedule_id"),
        "run_number": r.get("run_number"),
    }


def schedule_view(s: dict) -> dict[str, Any]:
    """A stored schedule, as the schedule routes return it."""
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
        "state_dir": s.get("state_dir"),
        "last_message": s.get("last_message"),
    }
