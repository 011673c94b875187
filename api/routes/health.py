"""Liveness, readiness and Prometheus metrics (public: they reveal no corpus or job data)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from api.routes.deps import ServiceDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict:
    """Liveness: the process answers."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "DB or Ray not ready"}})
def readyz(svc: ServiceDep) -> JSONResponse:
    """Readiness: the job store answers and the Ray cluster is reachable."""
    checks = svc.readiness()
    ok = all(c.get("ok") for c in checks.values())
    return JSONResponse(
        {"status": "ready" if ok else "not ready", "checks": checks}, status_code=200 if ok else 503
    )


@router.get("/metrics", response_class=Response)
def metrics(svc: ServiceDep) -> Response:
    """Prometheus metrics: jobs by state, documents processed, stage durations."""
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)
