"""Versioned schema for the job store: an explicit ``schema_version`` table and migrations.

Each migration is a function ``(conn) -> None`` that moves the schema from version
``n - 1`` to ``n``. Migrations only ever append: never edit one that has shipped, add a
new one. :func:`migrate` applies the missing ones in order, each in its own transaction,
and records the version. The DDL is spelled out per version (not derived from the
current table definitions) so an old database always upgrades the same way.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    inspect,
    text,
)
from sqlalchemy.engine import Connection, Engine


def _m1_jobs(conn: Connection) -> None:
    md = MetaData()
    Table(
        "jobs",
        md,
        Column("id", String(32), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("state", String(20), nullable=False),
        Column("spec", JSON, nullable=False),
        Column("spec_hash", String(64), nullable=False),
        Column("job_dir", Text, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("updated_at", Float, nullable=False),
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
        Column("attempt", Integer, nullable=False, default=0),
        Column("resume", Boolean, nullable=False, default=False),
    )
    Table(
        "job_events",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("job_id", String(32), nullable=False, index=True),
        Column("state", String(20), nullable=False),
        Column("at", Float, nullable=False),
        Column("message", Text),
    )
    md.create_all(conn)


def _m2_schedules(conn: Connection) -> None:
    md = MetaData()
    Table(
        "schedules",
        md,
        Column("id", String(32), primary_key=True),
        Column("name", String(200), nullable=False),
        Column("cron", String(200), nullable=False),
        Column("template", JSON, nullable=False),
        Column("created_at", Float, nullable=False),
        Column("next_run_at", Float, nullable=False),
        Column("last_run_at", Float),
        Column("last_job_id", String(32)),
        Column("runs", Integer, nullable=False, default=0),
        Column("index_dir", Text, nullable=False),
        Column("last_message", Text),
    )
    Table(
        "schedule_shards",
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("schedule_id", String(32), nullable=False, index=True),
        Column("path", Text, nullable=False),
        Column("digest", String(128), nullable=False),
        Column("job_id", String(32), nullable=False),
        Column("at", Float, nullable=False),
    )
    md.create_all(conn)
    conn.execute(text("ALTER TABLE jobs ADD COLUMN schedule_id VARCHAR(32)"))
    conn.execute(text("ALTER TABLE jobs ADD COLUMN run_number INTEGER"))


def _m3_indexes(conn: Connection) -> None:
    md = MetaData()
    jobs = Table("jobs", md, autoload_with=conn)
    Index("ix_jobs_state_created", jobs.c.state, jobs.c.created_at).create(conn)
    Index("ix_jobs_created", jobs.c.created_at).create(conn)


def _m4_schedule_state_dir(conn: Connection) -> None:
    """``schedules.index_dir`` (the MinHash index of a schedule) becomes ``state_dir``: the
    schedule's directory of per-node state (``<state_dir>/<node id>``). Existing rows keep
    their directory as their state dir; the old single index in it is not a per-node
    directory, so an existing schedule's next run starts a new per-node state."""
    conn.execute(text("ALTER TABLE schedules RENAME COLUMN index_dir TO state_dir"))


MIGRATIONS: list[Callable[[Connection], None]] = [
    _m1_jobs,
    _m2_schedules,
    _m3_indexes,
    _m4_schedule_state_dir,
]
"""Migration ``i`` (0-based) brings the schema to version ``i + 1``."""

LATEST = len(MIGRATIONS)


def current_version(engine: Engine) -> int:
    """The schema version recorded in the database (0 for an empty database)."""
    if not inspect(engine).has_table("schema_version"):
        return 0
    with engine.connect() as c:
        v = c.execute(text("SELECT MAX(version) FROM schema_version")).scalar()
    return int(v or 0)


def migrate(engine: Engine, target: int | None = None) -> int:
    """Apply every missing migration up to ``target`` (default: latest); return the version."""
    target = LATEST if target is None else target
    if target > LATEST:
        raise ValueError(f"unknown schema version {target} (latest is {LATEST})")
    with engine.begin() as c:
        md = MetaData()
        Table(
            "schema_version",
            md,
            Column("version", Integer, primary_key=True),
            Column("applied_at", Float, nullable=False),
        )
        md.create_all(c)
    v = current_version(engine)
    if v > LATEST:
        raise RuntimeError(
            f"database schema version {v} is newer than this curate ({LATEST}); upgrade curate"
        )
    while v < target:
        with engine.begin() as c:
            MIGRATIONS[v](c)
            c.execute(
                text("INSERT INTO schema_version (version, applied_at) VALUES (:v, :t)"),
                {"v": v + 1, "t": time.time()},
            )
        v += 1
    return v
