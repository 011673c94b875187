"""Persistent job store (SQLAlchemy 2): jobs, their state history, schedules, shards seen.

SQLite file by default (WAL mode, safe across threads), Postgres by URL. The schema is
versioned (:mod:`api.migrations`); :class:`Store` migrates on open. Table definitions
below describe the *latest* schema and are used for queries only.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    delete,
    event,
    func,
    insert,
    select,
    text,
    update,
)
from sqlalchemy.engine import Engine

from api import migrations

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = (
    "queued",
    "running",
    "succeeded",
    "failed",
    "cancelled",
    "interrupted",
)
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
ACTIVE = (QUEUED, RUNNING)
FINISHED = (SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)

md = MetaData()
jobs = Table(
    "jobs",
    md,
    Column("id", String(32), primary_key=True),
    Column("name", String(200)),
    Column("state", String(20)),
    Column("spec", JSON),
    Column("spec_hash", String(64)),
    Column("job_dir", Text),
    Column("created_at", Float),
    Column("updated_at", Float),
    Column("started_at", Float),
    Column("finished_at", Float),
    Column("error", Text),
    Column("outputs", JSON),
    Column("ledger", JSON),
    Column("progress", JSON),
    Column("artifacts", JSON),
    Column("pid", Integer),
    Column("pid_started", Float),
    Column("exit_code", Integer),
    Column("attempt", Integer),
    Column("resume", Boolean),
    Column("schedule_id", String(32)),
    Column("run_number", Integer),
)
job_events = Table(
    "job_events",
    md,
    Column("id", Integer, primary_key=True),
    Column("job_id", String(32)),
    Column("state", String(20)),
    Column("at", Float),
    Column("message", Text),
)
schedules = Table(
    "schedules",
    md,
    Column("id", String(32), primary_key=True),
    Column("name", String(200)),
    Column("cron", String(200)),
    Column("template", JSON),
    Column("created_at", Float),
    Column("next_run_at", Float),
    Column("last_run_at", Float),
    Column("last_job_id", String(32)),
    Column("runs", Integer),
    Column("state_dir", Text),
    Column("last_message", Text),
)
schedule_shards = Table(
    "schedule_shards",
    md,
    Column("id", Integer, primary_key=True),
    Column("schedule_id", String(32)),
    Column("path", Text),
    Column("digest", String(128)),
    Column("job_id", String(32)),
    Column("at", Float),
)


def spec_hash(spec: dict) -> str:
    """sha256 of the canonical JSON form of a spec."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def new_id() -> str:
    return uuid.uuid4().hex[:16]


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and cross-thread use."""
    if url.startswith("sqlite"):
        eng = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=10, max_overflow=40
        )

        @event.listens_for(eng, "connect")
        def _pragmas(dbapi_conn: Any, _rec: Any) -> None:  # pragma: no cover - trivial
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return eng
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)


def _writes(fn: Any) -> Any:
    """Bump ``Store.generation`` after a write commits (cache readers capture it before reading)."""
    import functools

    @functools.wraps(fn)
    def wrapper(self: Store, *a: Any, **kw: Any) -> Any:
        try:
            return fn(self, *a, **kw)
        finally:
            self.generation += 1

    return wrapper


class Store:
    """All database access of the service. Methods are thread-safe (one transaction each)."""

    def __init__(self, url: str):
        self.generation = 0  # bumped on every write through this Store (read caches key on it)
        if url.startswith("sqlite:///"):
            from pathlib import Path

            Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        self.url = url
        self.engine = make_engine(url)
        self.version = migrations.migrate(self.engine)

    def ping(self) -> None:
        with self.engine.connect() as c:
            c.execute(text("SELECT 1"))

    def close(self) -> None:
        self.engine.dispose()

    # -- jobs ------------------------------------------------------------------------
    @_writes
    def create_job(
        self,
        *,
        job_id: str,
        name: str,
        spec: dict,
        job_dir: str,
        outputs: dict,
        schedule_id: str | None = None,
        run_number: int | None = None,
    ) -> dict:
        now = time.time()
        row = {
            "id": job_id,
            "name": name,
            "state": QUEUED,
            "spec": spec,
            "spec_hash": spec_hash(spec),
            "job_dir": job_dir,
            "created_at": now,
            "updated_at": now,
            "outputs": outputs,
            "ledger": {},
            "progress": {},
            "artifacts": {},
            "attempt": 0,
            "resume": False,
            "schedule_id": schedule_id,
            "run_number": run_number,
        }
        with self.engine.begin() as c:
            c.execute(insert(jobs).values(**row))
            c.execute(insert(job_events).values(job_id=job_id, state=QUEUED, at=now, message="submitted"))
        return row

    def get_job(self, job_id: str) -> dict | None:
        with self.engine.connect() as c:
            r = c.execute(select(jobs).where(jobs.c.id == job_id)).mappings().first()
        return dict(r) if r else None

    def job_events(self, job_id: str) -> list[dict]:
        with self.engine.connect() as c:
            rows = (
                c.execute(
                    select(job_events.c.state, job_events.c.at, job_events.c.message)
                    .where(job_events.c.job_id == job_id)
                    .order_by(job_events.c.id)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def list_jobs(
        self, state: str | None = None, limit: int = 50, offset: int = 0, schedule_id: str | None = None
    ) -> tuple[list[dict], int]:
        cols = [
            jobs.c.id,
            jobs.c.name,
            jobs.c.state,
            jobs.c.created_at,
            jobs.c.started_at,
            jobs.c.finished_at,
            jobs.c.error,
            jobs.c.schedule_id,
            jobs.c.run_number,
            jobs.c.spec_hash,
        ]
        q = select(*cols)
        cq = select(func.count()).select_from(jobs)
        if state:
            q, cq = q.where(jobs.c.state == state), cq.where(jobs.c.state == state)
        if schedule_id:
            q, cq = q.where(jobs.c.schedule_id == schedule_id), cq.where(jobs.c.schedule_id == schedule_id)
        q = q.order_by(jobs.c.created_at.desc(), jobs.c.id.desc()).limit(limit).offset(offset)
        with self.engine.connect() as c:
            rows = [dict(r) for r in c.execute(q).mappings().all()]
            total = int(c.execute(cq).scalar() or 0)
        return rows, total

    def jobs_in(self, states: Iterable[str]) -> list[dict]:
        with self.engine.connect() as c:
            rows = (
                c.execute(
                    select(jobs).where(jobs.c.state.in_(list(states))).order_by(jobs.c.created_at, jobs.c.id)
                )
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def count_by_state(self) -> dict[str, int]:
        with self.engine.connect() as c:
            rows = c.execute(select(jobs.c.state, func.count()).group_by(jobs.c.state)).all()
        out = {s: 0 for s in STATES}
        out.update({s: int(n) for s, n in rows})
        return out

    @_writes
    def update_job(self, job_id: str, **fields: Any) -> None:
        fields["updated_at"] = time.time()
        with self.engine.begin() as c:
            c.execute(update(jobs).where(jobs.c.id == job_id).values(**fields))

    @_writes
    def transition(
        self,
        job_id: str,
        state: str,
        message: str | None = None,
        *,
        expect: Iterable[str] | None = None,
        **fields: Any,
    ) -> bool:
        """Move a job to ``state`` (recording the event). With ``expect``, only from those
        states (compare-and-set); returns whether the transition happened."""
        now = time.time()
        fields.update(state=state, updated_at=now)
        with self.engine.begin() as c:
            q = update(jobs).where(jobs.c.id == job_id)
            if expect is not None:
                q = q.where(jobs.c.state.in_(list(expect)))
            n = c.execute(q.values(**fields)).rowcount
            if n:
                c.execute(insert(job_events).values(job_id=job_id, state=state, at=now, message=message))
        return bool(n)

    # -- schedules ---------------------------------------------------------------------
    @_writes
    def create_schedule(
        self, *, sched_id: str, name: str, cron: str, template: dict, next_run_at: float, state_dir: str
    ) -> dict:
        row = {
            "id": sched_id,
            "name": name,
            "cron": cron,
            "template": template,
            "created_at": time.time(),
            "next_run_at": next_run_at,
            "runs": 0,
            "state_dir": state_dir,
        }
        with self.engine.begin() as c:
            c.execute(insert(schedules).values(**row))
        return row

    def get_schedule(self, sched_id: str) -> dict | None:
        with self.engine.connect() as c:
            r = c.execute(select(schedules).where(schedules.c.id == sched_id)).mappings().first()
        return dict(r) if r else None

    def list_schedules(self) -> list[dict]:
        with self.engine.connect() as c:
            rows = c.execute(select(schedules).order_by(schedules.c.created_at)).mappings().all()
        return [dict(r) for r in rows]

    @_writes
    def update_schedule(self, sched_id: str, **fields: Any) -> None:
        with self.engine.begin() as c:
            c.execute(update(schedules).where(schedules.c.id == sched_id).values(**fields))

    @_writes
    def delete_schedule(self, sched_id: str) -> bool:
        with self.engine.begin() as c:
            n = c.execute(delete(schedules).where(schedules.c.id == sched_id)).rowcount
            c.execute(delete(schedule_shards).where(schedule_shards.c.schedule_id == sched_id))
        return bool(n)

    @_writes
    def add_shards(self, sched_id: str, job_id: str, shards: list[tuple[str, str]]) -> None:
        if not shards:
            return
        now = time.time()
        with self.engine.begin() as c:
            c.execute(
                insert(schedule_shards),
                [{"schedule_id": sched_id, "path": p, "digest": d, "job_id": job_id, "at": now} for p, d in shards],
            )

    def seen_shards(self, sched_id: str, job_states: Iterable[str]) -> set[tuple[str, str]]:
        """(path, digest) pairs claimed by runs of the schedule whose job is in ``job_states``."""
        q = (
            select(schedule_shards.c.path, schedule_shards.c.digest)
            .join(jobs, jobs.c.id == schedule_shards.c.job_id)
            .where(schedule_shards.c.schedule_id == sched_id, jobs.c.state.in_(list(job_states)))
        )
        with self.engine.connect() as c:
            return {(p, d) for p, d in c.execute(q).all()}
