"""What the token and the data-root sandbox promise, checked over everything the app and
the registry declare (routes from ``app.routes``, path parameters from every stage's
``Params`` schema), never over a hand-written list."""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from api.app import create_app
from curate.params import param_path_fields
from curate.registry import get_stage_class, stage_names
from curate.testing import textgen
from tests.test_api_util import TOKEN, local_config

PUBLIC = {"/healthz", "/readyz", "/metrics", "/v1/stages"}
"""Routes open without the token: nothing in them comes from a corpus or a job."""


@pytest.fixture
def env(tmp_path):
    data = tmp_path / "data"
    texts = textgen.prose_paragraphs(20, 5)
    _parquet(data / "in" / "part-0.parquet", texts)
    _parquet(data / "res" / "target.parquet", texts[:5])  # a readable file inside the root
    _parquet(tmp_path / "outside" / "secret.parquet", ["private text"] * 3)  # and one outside it
    app = create_app(local_config(tmp_path, api_token=TOKEN), start=False)
    with TestClient(app, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c, tmp_path, app


def _parquet(path: Path, texts: list[str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    n = len(texts)
    pq.write_table(pa.table({"id": [f"d{i}" for i in range(n)], "text": texts, "score": [0.5] * n}), path)


# -- the token -------------------------------------------------------------------------------
def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def app_routes(app) -> list[tuple[object, str, set[str]]]:
    """(route, path, methods) of every route the app serves, included routers flattened
    (FastAPI >= 0.16x keeps an included router as one entry of ``app.routes``)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        return [(r, r.path, set(getattr(r, "methods", None) or ())) for r in app.routes]
    return [(c.original_route, c.path, set(c.methods or ())) for c in iter_route_contexts(app.routes)]


def test_every_route_but_the_public_ones_needs_the_token(env):
    c, _, app = env
    docs = {app.openapi_url, app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url}
    protected = []
    routes = app_routes(app)
    assert len(routes) > len(docs)
    for route, route_path, methods in routes:
        if not isinstance(route, APIRoute):  # FastAPI's own schema and docs pages
            assert route_path in docs, route_path
            continue
        for method in sorted(methods):
            path = _concrete(route_path)
            no_token = c.request(method, path, headers={"Authorization": ""})
            wrong = c.request(method, path, headers={"Authorization": "Bearer not-the-token"})
            if route_path in PUBLIC:
                assert no_token.status_code != 401 and wrong.status_code != 401, (method, route_path)
                continue
            protected.append((method, route_path))
            assert no_token.status_code == 401, (method, route_path, no_token.text)
            assert "missing bearer token" in no_token.json()["detail"]
            assert no_token.headers["www-authenticate"] == "Bearer"
            assert wrong.status_code == 401 and "invalid" in wrong.json()["detail"], (method, route_path)
            documented = app.openapi()["paths"][route_path][method.lower()]["responses"]
            assert "401" in documented, (method, route_path)
    # the enumeration found the routes that return corpus data and job details
    for must in [
        ("GET", "/v1/jobs"),
        ("GET", "/v1/jobs/{job_id}"),
        ("GET", "/v1/jobs/{job_id}/rejects"),
        ("GET", "/v1/jobs/{job_id}/report"),
        ("GET", "/v1/jobs/{job_id}/explain/{doc_id}"),
        ("GET", "/v1/schedules"),
        ("GET", "/v1/schedules/{sched_id}"),
        ("POST", "/v1/validate"),
    ]:
        assert must in protected, must
    # with the token, the same requests get past the check (404 for the unknown ids)
    assert c.get("/v1/jobs/x/rejects").status_code == 404
    assert c.get("/v1/schedules").status_code == 200


# -- the sandbox, for every path parameter of every stage ----------------------------------------
def _path_params() -> list[tuple[str, str]]:
    return [
        (name, field)
        for name in stage_names()
        for field in param_path_fields(get_stage_class(name).Params)
    ]


PATH_PARAMS = _path_params()


def _value(prop: dict[str, Any], defs: dict[str, Any]) -> Any:
    """A valid value for a JSON-schema property (the first non-null alternative)."""
    if "$ref" in prop:
        return _value(defs[prop["$ref"].rsplit("/", 1)[-1]], defs)
    for key in ("anyOf", "oneOf"):
        if key in prop:
            options = [p for p in prop[key] if p.get("type") != "null"]
            return _value(options[0], defs)
    if "const" in prop:
        return prop["const"]
    if "enum" in prop:
        return prop["enum"][0]
    if "default" in prop and prop["default"] is not None:
        return prop["default"]
    kind = prop.get("type")
    if kind in ("integer", "number"):
        lo = prop.get("minimum", prop.get("exclusiveMinimum"))
        hi = prop.get("maximum", prop.get("exclusiveMaximum"))
        if lo is not None and hi is not None:
            v = (lo + hi) / 2
        elif lo is not None:
            v = lo + 1
        elif hi is not None:
            v = hi - 1
        else:
            v = 1
        return int(v) if kind == "integer" and float(v).is_integer() else v
    if kind == "string":
        return "score"  # plain strings name a column: the inputs have a numeric ``score``
    if kind == "boolean":
        return False
    if kind == "array":
        return [_value(prop.get("items", {}), defs)] * int(prop.get("minItems", 1))
    return {}


def _path_value(shape: str, path: str) -> Any:
    return {"scalar": path, "list": [path], "dict": {"k": path}}[shape]


def _spec(stage: str, tmp: Path) -> dict:
    """A minimal valid spec running ``stage``: its required params are filled from its
    schema, path parameters with paths inside the data root."""
    cls = get_stage_class(stage)
    schema = cls.Params.model_json_schema()
    paths = param_path_fields(cls.Params)
    params = {}
    for field in schema.get("required", []):
        if field in paths:
            kind, shape = paths[field]
            inside = "res/target.parquet" if kind.access == "read" else f"res/written-{field}"
            params[field] = _path_value(shape, inside)
        else:
            params[field] = _value(schema["properties"][field], schema.get("$defs", {}))
    try:
        needed = cls(params).required_columns()
    except ValueError:  # params only the service's validation completes (it reports them)
        needed = set()
    producers = _producers_of(needed)
    nodes = [{"id": f"p{i}", "stage": s, "inputs": ["docs" if i == 0 else f"p{i - 1}"]}
             for i, s in enumerate(producers)]
    upstream = nodes[-1]["id"] if nodes else "docs"
    return {
        "name": f"sandbox-{stage}",
        "inputs": {"docs": {"path": "in/*.parquet", "domain": "web"}},
        "nodes": [*nodes, {"id": "n", "stage": stage, "inputs": [upstream], "params": params}],
        "outputs": {"kept": {"node": "n", "path": f"out/{stage}"}},
    }


INPUT_COLUMNS = {"id", "text", "score", "domain"}


def _producers_of(needed: set[str]) -> list[str]:
    """Stages (with their default params) that add the columns ``needed`` beyond the
    inputs', in a runnable order: so a selection stage over another stage's columns gets
    its scoring stage upstream, found from the stages' own declarations."""
    missing, chain = set(needed) - INPUT_COLUMNS, []
    while missing:
        for name in stage_names():
            try:
                producer = get_stage_class(name)()
            except Exception:  # noqa: BLE001 - a stage with required params cannot be a default producer
                continue
            adds = producer.provided_columns() & missing
            if adds and not (producer.required_columns() - INPUT_COLUMNS - set().union(
                    *(get_stage_class(s)().provided_columns() for s in chain))):
                chain.append(name)
                missing -= adds
                break
        else:
            raise AssertionError(f"no stage provides {sorted(missing)}")
    return chain


def test_the_generated_specs_are_valid(env):
    """The sandbox test's specs are valid as they stand, so its 403s are about the path."""
    c, tmp, _ = env
    assert PATH_PARAMS, "no stage declares a path parameter"
    for stage in sorted({s for s, _ in PATH_PARAMS}):
        r = c.post("/v1/validate", json=_spec(stage, tmp))
        assert r.status_code == 200, (stage, r.text)


@pytest.mark.parametrize(("stage", "field"), PATH_PARAMS, ids=[f"{s}.{f}" for s, f in PATH_PARAMS])
def test_every_path_parameter_outside_the_roots_is_refused(env, stage, field):
    c, tmp, _ = env
    kind, shape = param_path_fields(get_stage_class(stage).Params)[field]
    outside = tmp / "outside" / ("secret.parquet" if kind.access == "read" else "written")
    # through a symlink inside the root, too: the sandbox follows it (realpath, not abspath)
    link = tmp / "data" / "links" / f"{stage}-{field}"
    link.parent.mkdir(exist_ok=True)
    os.symlink(outside, link)
    base = _spec(stage, tmp)
    inside = copy.deepcopy(base)
    inside["nodes"][-1]["params"][field] = _path_value(
        shape, "res/target.parquet" if kind.access == "read" else "res/elsewhere"
    )
    # inside the root the sandbox lets the parameter through (a read path may still fail its
    # stage's own content check: the placeholder file is Parquet, not, say, a preset file)
    r = c.post("/v1/validate", json=inside)
    assert r.status_code in (200, 422) and "outside the data roots" not in r.text, r.text
    for value in (str(outside), f"links/{stage}-{field}"):
        spec = copy.deepcopy(base)
        spec["nodes"][-1]["params"][field] = _path_value(shape, value)
        r = c.post("/v1/jobs", json=spec)
        assert r.status_code == 403, (stage, field, value, r.text)
        detail = r.json()["detail"]
        assert detail.startswith(f"nodes.n.params.{field}") and "outside the data roots" in detail, detail
        assert r.json()["problems"][0]["field"].startswith(f"nodes.n.params.{field}")
    assert c.get("/v1/jobs").json()["total"] == 0  # nothing was accepted


def test_a_symlinked_output_path_is_refused(env):
    c, tmp, _ = env
    (tmp / "outside" / "out").mkdir()
    os.symlink(tmp / "outside" / "out", tmp / "data" / "out-link")
    spec = _spec("length_filter", tmp)
    for path in ("out-link", "out-link/kept"):
        spec["outputs"]["kept"]["path"] = path
        r = c.post("/v1/jobs", json=spec)
        assert r.status_code == 403 and r.json()["detail"].startswith("outputs.kept.path"), r.text
        assert "outside the data roots" in r.json()["detail"]
    assert c.get("/v1/jobs").json()["total"] == 0
