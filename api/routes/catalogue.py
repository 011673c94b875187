"""The stage catalogue (public) and spec validation (token: it echoes resolved paths)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from api.models import ERRORS, SPEC_BODY, Validated
from api.routes.deps import PreflightQuery, ServiceDep, token_router
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
async def validate(request: Request, svc: ServiceDep, preflight: PreflightQuery = True) -> Validated:
    """Validate a spec (JSON or YAML) without running it: paths, stages, parameters, DAG;
    then the preflight: every input matches files, read paths exist, outputs are writable."""
    import anyio

    spec = parse_spec_body(await request.body(), request.headers.get("content-type"))
    checked, counts, warnings = await anyio.to_thread.run_sync(
        lambda: svc.check_spec_report(spec, preflight=preflight))
    return Validated(valid=True, spec=checked, input_files=counts, warnings=warnings)
