"""``POST /v1/estimate``: what a run of a spec would cost on a cluster (``curate plan
--estimate``). The spec is sandboxed and validated like a submission; the estimate runs its
samples as a child process (``python -m cli plan --estimate --json``), at most
``CURATE_MAX_ESTIMATES`` (default 1) at once: 429 when they are busy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Literal

from fastapi import HTTPException, Query, Request

from api.models import ERRORS, SPEC_BODY, ErrorOut
from api.routes.deps import ServiceDep, token_router
from api.service import parse_spec_body
from api.supervisor import _code_root
from curate.estimate_model import Cluster, Estimate, EstimateError, make_cluster, parse_size

router = token_router(tags=["estimate"])
_LOCK = threading.Lock()


def _slots(request: Request) -> threading.BoundedSemaphore:
    with _LOCK:
        slots = getattr(request.app.state, "estimate_slots", None)
        if slots is None:
            n = int(os.environ.get("CURATE_MAX_ESTIMATES") or 1)
            slots = request.app.state.estimate_slots = threading.BoundedSemaphore(max(1, n))
        return slots


@router.post(
    "/v1/estimate",
    response_model=Estimate,
    openapi_extra={"requestBody": SPEC_BODY},
    responses={**ERRORS, 429: {"model": ErrorOut}},
)
async def estimate(
    request: Request,
    svc: ServiceDep,
    nodes: int = 1,
    cpus_per_node: int = 2,
    memory_per_node: str = "8GiB",
    executor: Literal["ray", "local"] = "ray",
    corpus_bytes: str | None = None,
    corpus_docs: str | None = None,
    sample_rows: Annotated[int, Query(ge=64, le=200_000)] = 16_000,
    sample_files: Annotated[int, Query(ge=1, le=256)] = 32,
) -> Estimate:
    """Sample the spec's inputs, run every stage on the sample and predict a full run on the
    cluster named by the query (the same structure as ``curate plan --estimate --json``)."""
    import anyio

    try:
        cluster = make_cluster(nodes=nodes, cpus_per_node=cpus_per_node, memory_per_node=parse_size(memory_per_node),
                               executor=executor)
        sizes = [parse_size(v) if v else None for v in (corpus_bytes, corpus_docs)]
    except EstimateError as e:
        raise HTTPException(422, str(e)) from None
    spec = parse_spec_body(await request.body(), request.headers.get("content-type"))
    checked = await anyio.to_thread.run_sync(lambda: svc.check_spec(spec, preflight=True))
    slots = _slots(request)
    if not slots.acquire(blocking=False):
        raise HTTPException(429, "an estimate is already running; try again when it has finished")
    try:
        return await anyio.to_thread.run_sync(lambda: _run(checked, cluster, sizes, sample_rows, sample_files,
                                                           svc.cfg.base_dir))
    finally:
        slots.release()


def _run(spec: dict, cluster: Cluster, sizes: list[int | None], rows: int, files: int, cwd: str) -> Estimate:
    with tempfile.TemporaryDirectory(prefix="curate-estimate-api-") as tmp:
        spec_file = Path(tmp) / "spec.json"
        spec_file.write_text(json.dumps(spec))
        cmd = [sys.executable, "-m", "cli", "plan", str(spec_file), "--estimate", "--json",
               "--nodes", str(cluster.nodes), "--cpus-per-node", str(cluster.cpus_per_node),
               "--memory-per-node", str(cluster.memory_per_node), "--executor", cluster.executor,
               "--sample-rows", str(rows), "--sample-files", str(files)]
        for flag, v in zip(("--corpus-bytes", "--corpus-docs"), sizes):
            if v:
                cmd += [flag, str(v)]
        env = dict(os.environ)  # the child imports this same code, wherever it runs from
        env["PYTHONPATH"] = os.pathsep.join(x for x in (_code_root(), env.get("PYTHONPATH")) if x)
        timeout = float(os.environ.get("CURATE_ESTIMATE_TIMEOUT_S") or 900)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=cwd or None, env=env)
        except subprocess.TimeoutExpired:
            raise HTTPException(504, f"the estimate took longer than {timeout:.0f} s") from None
    if proc.returncode != 0:
        lines = [x for x in proc.stderr.strip().splitlines() if x.strip()]
        status = 422 if proc.returncode == 2 else 500
        raise HTTPException(status, lines[-1] if lines else f"the estimate failed (exit {proc.returncode})")
    return Estimate.model_validate_json(proc.stdout)
