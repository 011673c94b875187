"""What the route modules share: the service, the token check, common lookups."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request

from api.models import UNAUTHORIZED
from api.read_cache import ReadCache
from api.security import check_token
from api.service import Service


def service(request: Request) -> Service:
    """The app's :class:`Service` (set by ``create_app``)."""
    return request.app.state.service


def read_cache(request: Request) -> ReadCache:
    """The app's cache of rendered read responses."""
    return request.app.state.read_cache


def require_token(request: Request) -> None:
    """401 unless the request carries the configured bearer token (no token: open)."""
    check_token(request, service(request).cfg.api_token)


ServiceDep = Annotated[Service, Depends(service)]
PreflightQuery = Annotated[bool, Query(
    description="Check the spec's paths before accepting it: input globs match files, read paths exist, "
    "write paths are writable (false: skip, for paths an earlier job creates)")]
CacheDep = Annotated[ReadCache, Depends(read_cache)]


def token_router(**kwargs: Any) -> APIRouter:
    """An APIRouter whose every route requires the token (and documents the 401)."""
    return APIRouter(dependencies=[Depends(require_token)], responses=dict(UNAUTHORIZED), **kwargs)


def started(svc: Service) -> Service:
    """The service, once its supervisor and scheduler run (503 before)."""
    if svc.supervisor is None or svc.scheduler is None:
        raise HTTPException(503, "the service is starting; try again")
    return svc


def job_or_404(svc: Service, job_id: str) -> dict:
    """The stored job ``job_id``, or 404."""
    job = svc.store.get_job(job_id)
    if job is None:
        raise HTTPException(404, f"no job with id '{job_id}'")
    return job


def schedule_or_404(svc: Service, sched_id: str) -> dict:
    """The stored schedule ``sched_id``, or 404."""
    s = svc.store.get_schedule(sched_id)
    if s is None:
        raise HTTPException(404, f"no schedule with id '{sched_id}'")
    return s
