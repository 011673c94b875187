"""Schedules: cron refreshes of a spec template. Every route needs the token."""

from __future__ import annotations

from fastapi import HTTPException
from fastapi.responses import Response

from api.models import ERRORS, ErrorOut, ScheduleIn, ScheduleOut
from api.routes.deps import ServiceDep, schedule_or_404, started, token_router
from api.service import BadSpec
from api.views import schedule_view

router = token_router(tags=["schedules"])
NOT_FOUND = {404: {"model": ErrorOut}}
ACTION_ERRORS = {404: {"model": ErrorOut}, 401: {"model": ErrorOut}}


@router.post("/v1/schedules", status_code=201, response_model=ScheduleOut, responses=ERRORS)
def create_schedule(body: ScheduleIn, svc: ServiceDep) -> dict:
    """A cron expression plus a spec template; each run processes only new shards."""
    scheduler = started(svc).scheduler
    assert scheduler is not None
    return schedule_view(scheduler.create(body.name, body.cron, body.spec))


@router.get("/v1/schedules", response_model=list[ScheduleOut])
def list_schedules(svc: ServiceDep) -> list[dict]:
    """Every schedule with its next and last run."""
    return [schedule_view(s) for s in svc.store.list_schedules()]


@router.get("/v1/schedules/{sched_id}", response_model=ScheduleOut, responses=NOT_FOUND)
def get_schedule(sched_id: str, svc: ServiceDep) -> dict:
    return schedule_view(schedule_or_404(svc, sched_id))


@router.post("/v1/schedules/{sched_id}/trigger", responses=ACTION_ERRORS)
def trigger_schedule(sched_id: str, svc: ServiceDep) -> dict:
    """Run the schedule now (same rules as a cron tick: new shards only)."""
    s = schedule_or_404(svc, sched_id)
    scheduler = started(svc).scheduler
    assert scheduler is not None
    try:
        job_id = scheduler.trigger(s)
    except BadSpec:
        raise
    except Exception as e:  # noqa: BLE001 - inputs vanished, template no longer valid...
        problems = [
            p.model_dump() if hasattr(p, "model_dump") else {"message": str(p)}
            for p in getattr(e, "problems", [])
        ]
        raise BadSpec(422, f"this schedule's run could not start: {e}", problems) from None
    s = svc.store.get_schedule(sched_id) or s
    return {"job_id": job_id, "message": s.get("last_message")}


@router.delete("/v1/schedules/{sched_id}", status_code=204, responses=ACTION_ERRORS)
def delete_schedule(sched_id: str, svc: ServiceDep) -> Response:
    """Delete a schedule (its past jobs stay)."""
    if not svc.store.delete_schedule(sched_id):
        raise HTTPException(404, f"no schedule with id '{sched_id}'")
    return Response(status_code=204)
