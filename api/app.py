"""The FastAPI application: ``/v1`` jobs, schedules, catalogue; health and metrics.

Routes live in :mod:`api.routes` (one module per resource), models in :mod:`api.models`.
With ``CURATE_API_TOKEN`` set, every route but health, readiness, metrics and the stage
catalogue needs ``Authorization: Bearer <token>``.

Errors are always 4xx with a clear ``detail`` for bad input: 400 unparsable body,
401 missing/invalid token, 403 path outside the data roots, 404 unknown id, 409 wrong
state (cancel a finished job...), 413 body too large, 422 invalid spec / parameters
(``problems`` lists every problem with its node).
"""

from __future__ import annotations

import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse

from api.config import Config
from api.middleware import BodyLimit
from api.read_cache import ReadCache
from api.routes import catalogue, estimate, health, jobs, schedules
from api.scheduler import BadCron
from api.security import PathNotAllowed
from api.service import BadSpec, Service

log = logging.getLogger("curate.api")

PUBLIC_ROUTERS = [health.router, catalogue.public_router]
"""Routers open without the token: health, readiness, metrics, the stage catalogue."""
PROTECTED_ROUTERS = [catalogue.router, estimate.router, jobs.router, schedules.router]
"""Routers whose every route needs the token (``token_router``)."""


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
    app.state.read_cache = ReadCache(svc.store)
    app.add_middleware(BodyLimit, limit=cfg.max_body_bytes)
    for router in PUBLIC_ROUTERS + PROTECTED_ROUTERS:  # in OpenAPI path order
        app.include_router(router)
    _add_error_handlers(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _problem_reply(status: int, detail: str, field: str | None) -> JSONResponse:
    return JSONResponse(
        {"detail": detail, "problems": [{"node": None, "field": field, "message": detail}]},
        status_code=status,
    )


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(BadSpec)
    async def _bad_spec(_: Request, e: BadSpec) -> JSONResponse:
        return JSONResponse({"detail": e.message, "problems": e.problems}, status_code=e.status)

    @app.exception_handler(PathNotAllowed)
    async def _bad_path(_: Request, e: PathNotAllowed) -> JSONResponse:
        return _problem_reply(403, str(e), e.where)

    @app.exception_handler(BadCron)
    async def _bad_cron(_: Request, e: BadCron) -> JSONResponse:
        return _problem_reply(422, str(e), "cron")


def _openapi(app: FastAPI) -> dict:
    """The generated schema plus the PipelineSpec schema (the spec bodies and the schedule
    template refer to it) and the bearer security scheme."""
    if app.openapi_schema:
        return app.openapi_schema
    from curate.spec import PipelineSpec

    schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
    spec_schema = PipelineSpec.model_json_schema(ref_template="#/components/schemas/{model}")
    comps = schema.setdefault("components", {}).setdefault("schemas", {})
    comps.update(spec_schema.pop("$defs", {}))
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


def app_from_env() -> FastAPI:
    """uvicorn factory: ``uvicorn --factory api.app:app_from_env``."""
    logging.basicConfig(level=os.environ.get("CURATE_LOG_LEVEL", "INFO"))
    return create_app(Config.from_env())
