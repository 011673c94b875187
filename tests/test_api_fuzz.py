"""Schemathesis fuzzing of the OpenAPI schema: no input produces a 5xx."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from api.app import create_app
from tests.test_api_util import TOKEN, local_config

_TMP = Path(tempfile.mkdtemp(prefix="curate-fuzz-"))
# Drivers are `true`: any job the fuzzer gets accepted finishes at once, without work.
app = create_app(
    local_config(_TMP, api_token=TOKEN, driver_cmd=["true"], max_body_bytes=256 * 1024), start=False
)
schema = schemathesis.openapi.from_asgi("/openapi.json", app)


@pytest.fixture(scope="module", autouse=True)
def _service():
    svc = app.state.service
    svc.start()
    yield
    svc.shutdown()
    shutil.rmtree(_TMP, ignore_errors=True)


@schema.parametrize()
@settings(max_examples=20, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors(case):
    case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"}, checks=[not_a_server_error])
