"""The stage catalogue (public) and spec validation (token: it echoes resolved paths)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.models import ERRORS, SPEC_BODY, Validated
from api.routes.deps import ServiceDep, token_router
from api.service import parse_spec_body

public_router = APIRouter(tags=["catalogue"])
router = token_router(tags=["catalogue"])


@public_router.get("/v1/stages")
def stages() -> list[dict[str, Any]]:
    """Every registered stage with its kind, docs and parameter JSON schema."""
    from curate.registry import catalogue

    return catalogue()


@router.post(
    "/v1/validate",
    response_model=Validated,
    openapi_extra={"requestBody": SPEC_BODY},
    responses=ERRORS,
)
async def validate(request: Request, svc: ServiceDep) -> Validated:
    """Validate a spec (JSON or YAML) without running it: paths, stages, parameters, DAG."""
    spec = parse_spec_body(await request.body(), request.headers.get("content-type"))
    return Validated(valid=True, spec=svc.check_spec(spec))
