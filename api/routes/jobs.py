"""Jobs: submit, list, details, cancel, retry, and what a job produced (report, a sample
of its rejects, the lineage of one document). Every route needs the token."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import HTTPException, Query, Request
from fastapi.responses import FileResponse, Response

from api.models import ERRORS, SPEC_BODY, ErrorOut, JobList, JobOut, JobState, RejectSample, Submitted
from api.rejects_sample import sample_rejects
from api.routes.deps import CacheDep, PreflightQuery, ServiceDep, job_or_404, started, token_router
from api.service import parse_spec_body
from api.views import job_summary, job_view
from curate import jobfs

router = token_router(tags=["jobs"])
NOT_FOUND = {404: {"model": ErrorOut}}
ACTION_ERRORS = {404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 401: {"model": ErrorOut}}


@router.post(
    "/v1/jobs",
    status_code=202,
    response_model=Submitted,
    openapi_extra={"requestBody": SPEC_BODY},
    responses=ERRORS,
)
async def submit(request: Request, svc: ServiceDep, preflight: PreflightQuery = True) -> Submitted:
    """Submit a pipeline spec (JSON or YAML). It is validated and preflighted first (422
    with the problems by node); 202 with the job id."""
    import anyio

    spec = parse_spec_body(await request.body(), request.headers.get("content-type"))
    checked = await anyio.to_thread.run_sync(lambda: svc.check_spec(spec, preflight=preflight))
    row = await anyio.to_thread.run_sync(lambda: svc.submit(checked, checked=True))
    job = svc.store.get_job(row["id"]) or row
    return Submitted(id=row["id"], state=job["state"], url=f"/v1/jobs/{row['id']}")


@router.get("/v1/jobs", response_model=JobList)
async def list_jobs(
    svc: ServiceDep,
    cache: CacheDep,
    state: Annotated[JobState | None, Query(description="Only jobs in this state")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
    schedule_id: Annotated[str | None, Query(max_length=64, description="Only runs of this schedule")] = None,
) -> Response:
    """Jobs, newest first, paginated."""

    def render() -> bytes:
        rows, total = svc.store.list_jobs(state, limit, offset, schedule_id)
        items = [job_summary(r) for r in rows]
        nxt = offset + len(items) if offset + len(items) < total else None
        listing = JobList(items=items, total=total, limit=limit, offset=offset, next_offset=nxt)
        return listing.model_dump_json().encode()

    body = cache.get(("list", state, limit, offset, schedule_id), render)
    return Response(body, media_type="application/json")


@router.get("/v1/jobs/{job_id}", response_model=JobOut, responses=NOT_FOUND)
async def get_job(
    job_id: str,
    svc: ServiceDep,
    cache: CacheDep,
    include_spec: Annotated[bool, Query(description="Include the resolved spec")] = True,
) -> Response:
    """State, per-step progress, ledger, timings, error, outputs, artifacts and history."""

    def render() -> bytes:
        job = svc.store.get_job(job_id)
        if job is None:
            return b""
        return json.dumps(job_view(svc.store, job, include_spec), default=str).encode()

    body = cache.get(("job", job_id, include_spec), render)
    if not body:
        raise HTTPException(404, f"no job with id '{job_id}'")
    return Response(body, media_type="application/json")


@router.post("/v1/jobs/{job_id}/cancel", response_model=JobOut, responses=ACTION_ERRORS)
def cancel(job_id: str, svc: ServiceDep) -> dict:
    """Stop a queued or running job (kills its driver; Ray ends the job's tasks).
    Published outputs are left as they were; the job's own staging is marked ``INCOMPLETE``."""
    job_or_404(svc, job_id)
    try:
        started(svc).supervisor.cancel(job_id)  # type: ignore[union-attr]
    except LookupError:
        raise HTTPException(404, f"no job with id '{job_id}'") from None
    except ValueError as e:
        raise HTTPException(409, str(e)) from None
    return job_view(svc.store, job_or_404(svc, job_id))


@router.post("/v1/jobs/{job_id}/retry", status_code=202, response_model=Submitted, responses=ACTION_ERRORS)
def retry(job_id: str, svc: ServiceDep) -> Submitted:
    """Run a failed, interrupted or cancelled job again, resuming from its completed shards."""
    job_or_404(svc, job_id)
    supervisor = started(svc).supervisor
    assert supervisor is not None
    try:
        supervisor.retry(job_id)
    except LookupError:
        raise HTTPException(404, f"no job with id '{job_id}'") from None
    except ValueError as e:
        raise HTTPException(409, str(e)) from None
    supervisor.tick()
    job = job_or_404(svc, job_id)
    return Submitted(id=job_id, state=job["state"], url=f"/v1/jobs/{job_id}")


@router.get("/v1/jobs/{job_id}/report", response_class=FileResponse, responses=NOT_FOUND)
def report(job_id: str, svc: ServiceDep) -> Response:
    """The job's HTML report (once the job has finished)."""
    job = job_or_404(svc, job_id)
    p = jobfs.path(job["job_dir"]) / "report.html"
    if not p.is_file():
        raise HTTPException(404, f"job {job_id} has no report yet (state: {job['state']})")
    if isinstance(p, jobfs.RemotePath):  # a job directory on an object store
        return Response(p.read_bytes(), media_type="text/html")
    return FileResponse(p, media_type="text/html")


@router.get("/v1/jobs/{job_id}/rejects", response_model=RejectSample, responses=NOT_FOUND)
def rejects(
    job_id: str,
    svc: ServiceDep,
    reason: Annotated[
        str | None, Query(max_length=200, description="Only rows rejected for this reason")
    ] = None,
    node: Annotated[str | None, Query(max_length=200, description="Only rows rejected by this node")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> dict:
    """A sample of rejected documents (first rows in file order), with counts per reason."""
    job = job_or_404(svc, job_id)
    return sample_rejects(jobfs.path(job["job_dir"]), reason, node, limit)


@router.get("/v1/jobs/{job_id}/explain/{doc_id}", responses=NOT_FOUND)
def explain(job_id: str, doc_id: str, svc: ServiceDep) -> Any:
    """Lineage of one document: which node kept or rejected it and why."""
    from curate.lineage import explain as explain_doc

    job = job_or_404(svc, job_id)
    try:
        res = explain_doc(job["job_dir"], doc_id)
    except (KeyError, LookupError, FileNotFoundError) as e:
        raise HTTPException(404, f"document '{doc_id}' not found in job {job_id}: {e}") from None
    except ValueError as e:
        raise HTTPException(422, str(e)) from None
    if isinstance(res, dict) and res.get("status") == "not_found":
        raise HTTPException(404, f"document '{doc_id}' not found in job {job_id} (not in its inputs' ids)")
    return res
