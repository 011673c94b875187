"""The FastAPI application: ``/v1`` jobs, schedules, catalogue; health and metrics.

Errors are always 4xx with a clear ``detail`` for bad input: 400 unparsable body,
401 missing/invalid token, 403 path outside the data roots, 404 unknown id, 409 wrong
state (cancel a finished job...), 413 body too large, 422 invalid spec / parameters
(``problems`` lists every problem with its node).
"""

from __future__ import annotations

import json
import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from api import store as st
from api.config import Config
from api.scheduler import BadCron, schedule_view
from api.security import PathNotAllowed, check_token
from api.service import BadSpec, Service, job_view, parse_spec_body

log = logging.getLogger("curate.api")

JobState = Literal["queued", "running", "succeeded", "failed", "cancelled", "interrupted"]


# -- response / request models (OpenAPI) ---------------------------------------------------
class Problem(BaseModel):
    node: str | None = Field(None, description="Node, input or output the problem belongs to")
    field: str | None = Field(None, description="Offending key or parameter")
    message: str


class ErrorOut(BaseModel):
    detail: str
    problems: list[Problem] = Field(default_factory=list)


class Submitted(BaseModel):
    id: str = Field(description="Job id")
    state: JobState
    url: str = Field(description="Where to poll the job")


class StepProgress(BaseModel):
    model_config = {"extra": "allow"}
    step: Any = None
    done: int | None = None
    total: int | None = None


class HistoryEntry(BaseModel):
    state: str
    at: str | None
    message: str | None = None


class JobOut(BaseModel):
    id: str
    name: str | None
    state: JobState
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    duration_s: float | None
    error: str | None
    spec_hash: str | None
    attempt: int
    progress: list[StepProgress] = Field(description="Per-step progress while running")
    ledger: dict[str, Any] = Field(description="Per node: in / kept / rejected documents")
    outputs: dict[str, Any] = Field(description="Named outputs -> paths")
    artifacts: dict[str, Any] = Field(description="Report, stats, rejects, log paths")
    history: list[HistoryEntry] = Field(description="State changes with timestamps")
    schedule_id: str | None = None
    run_number: int | None = None
    spec: dict[str, Any] | None = None


class JobSummary(BaseModel):
    id: str
    name: str | None
    state: JobState
    created_at: str | None
    started_at: str | None
    finished_at: str | None
    error: str | None
    schedule_id: str | None = None
    run_number: int | None = None


class JobList(BaseModel):
    items: list[JobSummary]
    total: int
    limit: int
    offset: int
    next_offset: int | None


class ScheduleIn(BaseModel):
    name: str = Field("schedule", min_length=1, max_length=200, description="Schedule name")
    cron: str = Field(description="Cron expression: 5 fields, or 6 with seconds last", max_length=200)
    spec: dict[str, Any] = Field(
        description="Pipeline spec template (inputs are globs re-expanded every run)"
    )


class ScheduleOut(BaseModel):
    id: str
    name: str
    cron: str
    template: dict[str, Any]
    created_at: str | None
    next_run_at: str | None
    last_run_at: str | None
    last_job_id: str | None
    runs: int
    index_dir: str | None
    last_message: str | None


class Validated(BaseModel):
    valid: bool
    spec: dict[str, Any] = Field(description="The normalized spec (absolute paths)")


class RejectSample(BaseModel):
    items: list[dict[str, Any]]
    count: int
    reasons: dict[str, int] = Field(description="Rejected rows per reason in the files scanned")


# -- body size limit -------------------------------------------------------------------------
class BodyLimit:
    """ASGI middleware: request bodies over ``limit`` bytes get 413 (header or streamed)."""

    def __init__(self, app: Any, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        for k, v in scope.get("headers") or []:
            if k == b"content-length":
                try:
                    n = int(v)
                except ValueError:
                    return await self._reply(send, 400, "invalid Content-Length")
                if n > self.limit:
                    return await self._reply(
                        send, 413, f"request body of {n} bytes exceeds the {self.limit}-byte limit"
                    )
        seen = 0
        started = False

        class TooLarge(Exception):
            pass

        async def limited_receive() -> dict:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.limit:
                    raise TooLarge()
            return msg

        async def tracking_send(msg: dict) -> None:
            nonlocal started
            if msg["type"] == "http.response.start":
                started = True
            await send(msg)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except TooLarge:
            if not started:
                await self._reply(send, 413, f"request body exceeds the {self.limit}-byte limit")

    @staticmethod
    async def _reply(send: Any, status: int, detail: str) -> None:
        import json

        body = json.dumps({"detail": detail}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _spec_openapi_schema() -> tuple[dict, dict]:
    """The PipelineSpec JSON schema with refs into ``components/schemas``."""
    try:
        from curate.spec import PipelineSpec
    except ImportError:  # pragma: no cover
        return {"type": "object"}, {}
    sch = PipelineSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = sch.pop("$defs", {})
    return sch, defs


SPEC_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": "#/components/schemas/PipelineSpec"}},
        "application/yaml": {"schema": {"type": "string", "description": "The pipeline spec as YAML"}},
    },
}
ERRORS = {
    400: {"model": ErrorOut, "description": "Malformed body"},
    401: {"model": ErrorOut, "description": "Missing or invalid bearer token"},
    403: {"model": ErrorOut, "description": "A path lies outside CURATE_DATA_ROOTS"},
    413: {"model": ErrorOut, "description": "Body too large"},
    422: {"model": ErrorOut, "description": "Invalid spec: every problem, by node"},
}


def create_app(cfg: Config | None = None, *, start: bool = True) -> FastAPI:
    """Build the app. With ``start`` the lifespan starts Ray, the supervisor and scheduler."""
    cfg = cfg or Config.from_env()
    svc = Service(cfg)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        if start:
            svc.start()
        try:
            yield
        finally:
            svc.shutdown()

    app = FastAPI(
        title="curate",
        version="1",
        description="Curate LLM pretraining data: submit jobs, schedule corpus refreshes, watch them.",
        lifespan=lifespan,
    )
    app.state.service = svc
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)

    def auth(request: Request) -> None:
        check_token(request, cfg.api_token)

    @app.exception_handler(BadSpec)
    async def _bad_spec(_: Request, e: BadSpec) -> JSONResponse:
        return JSONResponse({"detail": e.message, "problems": e.problems}, status_code=e.status)

    @app.exception_handler(PathNotAllowed)
    async def _bad_path(_: Request, e: PathNotAllowed) -> JSONResponse:
        return JSONResponse(
            {"detail": str(e), "problems": [{"node": None, "field": e.where, "message": str(e)}]},
            status_code=403,
        )

    @app.exception_handler(BadCron)
    async def _bad_cron(_: Request, e: BadCron) -> JSONResponse:
        return JSONResponse(
            {"detail": str(e), "problems": [{"node": None, "field": "cron", "message": str(e)}]},
            status_code=422,
        )

    def running() -> Service:
        if svc.supervisor is None or svc.scheduler is None:
            raise HTTPException(503, "the service is starting; try again")
        return svc

    def get_job_or_404(job_id: str) -> dict:
        job = svc.store.get_job(job_id)
        if job is None:
            raise HTTPException(404, f"no job with id '{job_id}'")
        return job

    # -- health ------------------------------------------------------------------------------
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "DB or Ray not ready"}})
    def readyz() -> JSONResponse:
        """Readiness: the job store answers and the Ray cluster is reachable."""
        checks = svc.readiness()
        ok = all(c.get("ok") for c in checks.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
        )

    @app.get("/metrics", tags=["health"], response_class=Response)
    def metrics() -> Response:
        """Prometheus metrics: jobs by state, documents processed, stage durations."""
        from prometheus_client import CONTENT_TYPE_LATEST

        return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    # -- catalogue ---------------------------------------------------------------------------
    @app.get("/v1/stages", tags=["catalogue"])
    def stages() -> list[dict[str, Any]]:
        """Every registered stage with its kind, docs and parameter JSON schema."""
        from curate.registry import catalogue

        return catalogue()

    @app.post(
        "/v1/validate",
        tags=["catalogue"],
        response_model=Validated,
        openapi_extra={"requestBody": SPEC_BODY},
        responses=ERRORS,
    )
    async def validate(request: Request) -> Validated:
        """Validate a spec (JSON or YAML) without running it: paths, stages, parameters, DAG."""
        spec = parse_spec_body(await request.body(), request.headers.get("content-type"))
        return Validated(valid=True, spec=svc.check_spec(spec))

    # -- jobs -----------------------------------------------------------------------------------
    @app.post(
        "/v1/jobs",
        tags=["jobs"],
        status_code=202,
        response_model=Submitted,
        dependencies=[Depends(auth)],
        openapi_extra={"requestBody": SPEC_BODY},
        responses=ERRORS,
    )
    async def submit(request: Request) -> Submitted:
        """Submit a pipeline spec (JSON or YAML). It is validated first; 202 with the job id."""
        spec = parse_spec_body(await request.body(), request.headers.get("content-type"))
        import anyio

        checked = await anyio.to_thread.run_sync(svc.check_spec, spec)
        row = await anyio.to_thread.run_sync(lambda: svc.submit(checked, checked=True))
        job = svc.store.get_job(row["id"]) or row
        return Submitted(id=row["id"], state=job["state"], url=f"/v1/jobs/{row['id']}")

    cache = ReadCache(svc.store)

    @app.get("/v1/jobs", tags=["jobs"], response_model=JobList)
    async def list_jobs(
        state: JobState | None = Query(None, description="Only jobs in this state"),
        limit: int = Query(50, ge=1, le=500),
        offset: int = Query(0, ge=0, le=10**9),
        schedule_id: str | None = Query(None, max_length=64, description="Only runs of this schedule"),
    ) -> JobList:
        """Jobs, newest first, paginated."""

        def render() -> bytes:
            rows, total = svc.store.list_jobs(state, limit, offset, schedule_id)
            items = [_summary(r) for r in rows]
            nxt = offset + len(items) if offset + len(items) < total else None
            return (
                JobList(items=items, total=total, limit=limit, offset=offset, next_offset=nxt)
                .model_dump_json()
                .encode()
            )

        return Response(
            cache.get(("list", state, limit, offset, schedule_id), render), media_type="application/json"
        )

    @app.get("/v1/jobs/{job_id}", tags=["jobs"], response_model=JobOut, responses={404: {"model": ErrorOut}})
    async def get_job(
        job_id: str, include_spec: bool = Query(True, description="Include the resolved spec")
    ) -> Response:
        """State, per-step progress, ledger, timings, error, outputs, artifacts and history."""

        def render() -> bytes:
            job = svc.store.get_job(job_id)
            return (
                b""
                if job is None
                else json.dumps(job_view(svc.store, job, include_spec), default=str).encode()
            )

        body = cache.get(("job", job_id, include_spec), render)
        if not body:
            raise HTTPException(404, f"no job with id '{job_id}'")
        return Response(body, media_type="application/json")

    @app.post(
        "/v1/jobs/{job_id}/cancel",
        tags=["jobs"],
        response_model=JobOut,
        dependencies=[Depends(auth)],
        responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 401: {"model": ErrorOut}},
    )
    def cancel(job_id: str) -> dict:
        """Stop a queued or running job (kills its driver; Ray ends the job's tasks).
        Partial outputs are marked with an ``INCOMPLETE`` file."""
        get_job_or_404(job_id)
        try:
            running().supervisor.cancel(job_id)  # type: ignore[union-attr]
        except LookupError:
            raise HTTPException(404, f"no job with id '{job_id}'") from None
        except ValueError as e:
            raise HTTPException(409, str(e)) from None
        return job_view(svc.store, get_job_or_404(job_id))

    @app.post(
        "/v1/jobs/{job_id}/retry",
        tags=["jobs"],
        status_code=202,
        response_model=Submitted,
        dependencies=[Depends(auth)],
        responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 401: {"model": ErrorOut}},
    )
    def retry(job_id: str) -> Submitted:
        """Run a failed, interrupted or cancelled job again, resuming from its completed shards."""
        get_job_or_404(job_id)
        try:
            running().supervisor.retry(job_id)  # type: ignore[union-attr]
        except LookupError:
            raise HTTPException(404, f"no job with id '{job_id}'") from None
        except ValueError as e:
            raise HTTPException(409, str(e)) from None
        running().supervisor.tick()  # type: ignore[union-attr]
        job = get_job_or_404(job_id)
        return Submitted(id=job_id, state=job["state"], url=f"/v1/jobs/{job_id}")

    @app.get(
        "/v1/jobs/{job_id}/report",
        tags=["jobs"],
        response_class=FileResponse,
        responses={404: {"model": ErrorOut}},
    )
    def report(job_id: str) -> FileResponse:
        """The job's HTML report (once the job has finished)."""
        job = get_job_or_404(job_id)
        p = Path(job["job_dir"]) / "report.html"
        if not p.is_file():
            raise HTTPException(404, f"job {job_id} has no report yet (state: {job['state']})")
        return FileResponse(p, media_type="text/html")

    @app.get(
        "/v1/jobs/{job_id}/rejects",
        tags=["jobs"],
        response_model=RejectSample,
        responses={404: {"model": ErrorOut}},
    )
    def rejects(
        job_id: str,
        reason: str | None = Query(None, max_length=200, description="Only rows rejected for this reason"),
        node: str | None = Query(None, max_length=200, description="Only rows rejected by this node"),
        limit: int = Query(20, ge=1, le=1000),
    ) -> dict:
        """A sample of rejected documents (first rows in file order), with counts per reason."""
        job = get_job_or_404(job_id)
        return sample_rejects(Path(job["job_dir"]), reason, node, limit)

    @app.get("/v1/jobs/{job_id}/explain/{doc_id}", tags=["jobs"], responses={404: {"model": ErrorOut}})
    def explain(job_id: str, doc_id: str) -> Any:
        """Lineage of one document: which node kept or rejected it and why."""
        job = get_job_or_404(job_id)
        try:
            from curate.lineage import explain as _explain
        except ImportError:
            raise HTTPException(
                404, "lineage is not available in this build (curate.lineage missing)"
            ) from None
        try:
            res = _explain(job["job_dir"], doc_id)
        except (KeyError, LookupError, FileNotFoundError) as e:
            raise HTTPException(404, f"document '{doc_id}' not found in job {job_id}: {e}") from None
        except ValueError as e:
            raise HTTPException(422, str(e)) from None
        if isinstance(res, dict) and res.get("status") == "not_found":
            raise HTTPException(
                404, f"document '{doc_id}' not found in job {job_id} (not in its inputs' ids)"
            )
        return res

    # -- schedules ------------------------------------------------------------------------------
    @app.post(
        "/v1/schedules",
        tags=["schedules"],
        status_code=201,
        response_model=ScheduleOut,
        dependencies=[Depends(auth)],
        responses=ERRORS,
    )
    def create_schedule(body: ScheduleIn) -> dict:
        """A cron expression plus a spec template; each run processes only new shards."""
        return schedule_view(running().scheduler.create(body.name, body.cron, body.spec))  # type: ignore[union-attr]

    @app.get("/v1/schedules", tags=["schedules"], response_model=list[ScheduleOut])
    def list_schedules() -> list[dict]:
        """Every schedule with its next and last run."""
        return [schedule_view(s) for s in svc.store.list_schedules()]

    @app.get(
        "/v1/schedules/{sched_id}",
        tags=["schedules"],
        response_model=ScheduleOut,
        responses={404: {"model": ErrorOut}},
    )
    def get_schedule(sched_id: str) -> dict:
        s = svc.store.get_schedule(sched_id)
        if s is None:
            raise HTTPException(404, f"no schedule with id '{sched_id}'")
        return schedule_view(s)

    @app.post(
        "/v1/schedules/{sched_id}/trigger",
        tags=["schedules"],
        dependencies=[Depends(auth)],
        responses={404: {"model": ErrorOut}, 401: {"model": ErrorOut}},
    )
    def trigger_schedule(sched_id: str) -> dict:
        """Run the schedule now (same rules as a cron tick: new shards only)."""
        s = svc.store.get_schedule(sched_id)
        if s is None:
            raise HTTPException(404, f"no schedule with id '{sched_id}'")
        sched = running().scheduler
        try:
            with sched._lock:  # type: ignore[union-attr]
                job_id = sched.fire(s)  # type: ignore[union-attr]
        except BadSpec:
            raise
        except Exception as e:  # inputs vanished, template no longer valid...
            problems = [
                p.model_dump() if hasattr(p, "model_dump") else {"message": str(p)}
                for p in getattr(e, "problems", [])
            ]
            raise BadSpec(422, f"this schedule's run could not start: {e}", problems) from None
        s = svc.store.get_schedule(sched_id) or s
        return {"job_id": job_id, "message": s.get("last_message")}

    @app.delete(
        "/v1/schedules/{sched_id}",
        tags=["schedules"],
        status_code=204,
        dependencies=[Depends(auth)],
        responses={404: {"model": ErrorOut}, 401: {"model": ErrorOut}},
    )
    def delete_schedule(sched_id: str) -> Response:
        """Delete a schedule (its past jobs stay)."""
        if not svc.store.delete_schedule(sched_id):
            raise HTTPException(404, f"no schedule with id '{sched_id}'")
        return Response(status_code=204)

    def custom_openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        spec_schema, defs = _spec_openapi_schema()
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        comps.update(defs)
        comps["PipelineSpec"] = spec_schema
        sched_in = comps.get("ScheduleIn", {}).get("properties", {})
        if "spec" in sched_in:  # the template is a PipelineSpec too
            sched_in["spec"] = {
                "$ref": "#/components/schemas/PipelineSpec",
                "description": "Pipeline spec template",
            }
        schema["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        app.openapi_schema = schema
        return schema

    app.openapi = custom_openapi  # type: ignore[method-assign]
    return app


class ReadCache:
    """Rendered responses keyed by request, valid while the store has seen no write and for
    at most ``ttl`` seconds. Many clients polling the same job cost one render per change."""

    def __init__(self, store: st.Store, ttl: float = 1.0, max_entries: int = 2048):
        self.store, self.ttl, self.max_entries = store, ttl, max_entries
        self.entries: dict[tuple, tuple[int, float, bytes]] = {}

    def get(self, key: tuple, render: Any) -> bytes:
        gen, now = self.store.generation, time.monotonic()
        hit = self.entries.get(key)
        if hit is not None and hit[0] == gen and now - hit[1] < self.ttl:
            return hit[2]
        body = render()
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[key] = (gen, now, body)
        return body


def _summary(r: dict) -> JobSummary:
    import time as _t

    def iso(t: float | None) -> str | None:
        return (
            None
            if t is None
            else _t.strftime("%Y-%m-%dT%H:%M:%S", _t.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"
        )

    return JobSummary(
        id=r["id"],
        name=r.get("name"),
        state=r["state"],
        created_at=iso(r.get("created_at")),
        started_at=iso(r.get("started_at")),
        finished_at=iso(r.get("finished_at")),
        error=r.get("error"),
        schedule_id=r.get("schedule_id"),
        run_number=r.get("run_number"),
    )


def sample_rejects(
    job_dir: Path, reason: str | None, node: str | None, limit: int, max_text: int = 2000
) -> dict:
    """Up to ``limit`` rejected rows from ``job_dir/rejects/*/*.parquet``, plus reason counts."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = job_dir / "rejects"
    files = sorted(root.glob("*/*.parquet")) if root.is_dir() else []
    if node:
        files = [f for f in files if f.parent.name == node]
    items: list[dict] = []
    reasons: dict[str, int] = {}
    for f in files:
        try:
            t = pq.read_table(f)
        except Exception:  # a file being written or corrupt: skip it in a sample
            continue
        if "reason" in t.column_names:
            for r, n in zip(*[x.to_pylist() for x in pc.value_counts(t["reason"]).flatten()]):
                reasons[str(r)] = reasons.get(str(r), 0) + int(n)
            if reason is not None:
                t = t.filter(pc.equal(t["reason"], reason))
        elif reason is not None:
            continue
        if len(items) < limit and t.num_rows:
            for row in t.slice(0, limit - len(items)).to_pylist():
                row = {
                    k: (v[:max_text] + "…" if isinstance(v, str) and len(v) > max_text else v)
                    for k, v in row.items()
                }
                row.setdefault("node", f.parent.name)
                items.append(_jsonable(row))
    return {"items": items, "count": len(items), "reasons": reasons}


def _jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif not isinstance(v, (str, int, float, bool, type(None), list, dict)):
            v = str(v)
        out[k] = v
    return out


def app_from_env() -> FastAPI:
    """uvicorn factory: ``uvicorn --factory api.app:app_from_env``."""
    logging.basicConfig(level=os.environ.get("CURATE_LOG_LEVEL", "INFO"))
    return create_app(Config.from_env())
