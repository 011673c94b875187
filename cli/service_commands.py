"""Service commands: ``curate serve`` and a small HTTP client (submit, jobs, status, cancel, retry).

The client reads ``CURATE_SERVER`` (default ``http://127.0.0.1:8000``), ``CURATE_API_TOKEN`` and
``CURATE_CLIENT_TIMEOUT`` (seconds per request, default 60). A server that cannot be reached
(refused, unknown host, timed out) is one line naming the URL and how to start one, exit 1,
not a traceback.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import typer

from api.config import LOOPBACK, is_loopback, serve_host

DEFAULT_SERVER = "http://127.0.0.1:8000"
FINISHED = {"succeeded", "failed", "cancelled", "interrupted"}


def _client(server: str | None, token: str | None) -> Any:
    import httpx

    tok = token or os.environ.get("CURATE_API_TOKEN")
    headers = {"Authorization": f"Bearer {tok}"} if tok else {}
    return httpx.Client(
        base_url=(server or os.environ.get("CURATE_SERVER") or DEFAULT_SERVER).rstrip("/"),
        headers=headers,
        timeout=float(os.environ.get("CURATE_CLIENT_TIMEOUT") or 60),
    )


def unreachable_message(base_url: str, err: Exception) -> str:
    """One line for a request that never got an answer: the URL tried, why, and what to do."""
    import httpx

    try:
        req = err.request  # type: ignore[attr-defined]
        tried = f"{req.method} {req.url}"
    except (AttributeError, RuntimeError):  # an error raised before a request was made
        tried = base_url
    if isinstance(err, httpx.TimeoutException):
        why = f"no answer within {float(os.environ.get('CURATE_CLIENT_TIMEOUT') or 60):g}s"
    elif isinstance(err, httpx.ConnectError):
        why = "cannot connect" + (f" ({err})" if str(err) else "")
    else:
        why = f"{type(err).__name__}" + (f" ({err})" if str(err) else "")
    return (f"curate server not reachable at {base_url}: {why} [{tried}]. Start one with `curate serve`, "
            "or point --server / CURATE_SERVER at a running server.")


@contextmanager
def _session(server: str | None, token: str | None) -> Iterator[Any]:
    """An HTTP client for the server; a transport failure ends the command with one line."""
    import httpx

    c = _client(server, token)
    try:
        with c:
            yield c
    except httpx.TransportError as e:
        typer.secho(unreachable_message(str(c.base_url).rstrip("/"), e), fg="red", err=True)
        raise typer.Exit(1) from None


def _fail(resp: Any) -> None:
    try:
        body = resp.json()
    except ValueError:
        body = {"detail": resp.text}
    typer.secho(f"error {resp.status_code}: {body.get('detail')}", fg="red", err=True)
    for p in body.get("problems") or []:
        where = f"node '{p['node']}'" if p.get("node") else "spec"
        if p.get("field"):
            where += f", {p['field']}"
        typer.secho(f"  - {where}: {p.get('message')}", fg="red", err=True)
    raise typer.Exit(1)


def absolutize_spec_paths(spec: dict, base: Path) -> dict:
    """Make relative input/output paths absolute against ``base`` (loopback servers only)."""
    from curate.spec_paths import set_spec_value, spec_paths

    for p in list(spec_paths(spec)):
        if "://" not in p.value and not os.path.isabs(p.value):
            set_spec_value(spec, p.keys, str((base / p.value).resolve()))
    return spec


def _progress_line(job: dict) -> str:
    steps = job.get("progress") or []
    parts = []
    for s in steps:
        total = s.get("total")
        parts.append(f"{s.get('step')}: {s.get('done', 0)}/{total if total is not None else '?'}")
    return f"[{job['state']}] " + (", ".join(parts) if parts else "")


def wait_for(client: Any, job_id: str, interval: float = 1.0, quiet: bool = False) -> dict:
    last = ""
    while True:
        r = client.get(f"/v1/jobs/{job_id}", params={"include_spec": "false"})
        if r.status_code != 200:
            _fail(r)
        job = r.json()
        line = _progress_line(job)
        if line != last and not quiet:
            typer.echo(line)
            last = line
        if job["state"] in FINISHED:
            return job
        time.sleep(interval)


def register(app: typer.Typer) -> None:
    """Add ``serve``, ``submit``, ``jobs``, ``status``, ``cancel``, ``retry`` to ``app``."""

    @app.command()
    def serve(
        host: str = typer.Option(LOOPBACK, help="Interface to bind (non-loopback needs CURATE_API_TOKEN)"),
        port: int = typer.Option(8000, help="Port"),
        log_level: str = typer.Option("info", help="uvicorn log level"),
    ) -> None:
        """Run the curate service (REST API, job supervisor, scheduler; embedded Ray by default)."""
        import logging

        import uvicorn

        from api.app import create_app
        from api.config import Config

        logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        cfg = Config.from_env()
        bind, warning = serve_host(host, cfg.api_token)
        if warning:
            typer.secho(warning, fg="yellow", err=True)
        ray_desc = cfg.ray_address or ("embedded" if cfg.embedded_ray else "off")
        typer.echo(
            f"curate service: http://{bind}:{port}  (state in {cfg.home}, data roots: "
            f"{', '.join(cfg.data_roots)}, Ray: {ray_desc})",
            err=True,
        )
        uvicorn.run(create_app(cfg), host=bind, port=port, log_level=log_level, timeout_graceful_shutdown=5)

    @app.command()
    def submit(
        spec: Path = typer.Argument(..., exists=True, dir_okay=False, help="Pipeline spec (YAML or JSON)"),
        server: str | None = typer.Option(
            None, help=f"Server URL (env CURATE_SERVER, default {DEFAULT_SERVER})"
        ),
        token: str | None = typer.Option(None, help="Bearer token (env CURATE_API_TOKEN)"),
        wait: bool = typer.Option(False, "--wait", help="Wait for the job to finish, showing progress"),
        no_preflight: bool = typer.Option(
            False, "--no-preflight", help="Ask the server not to check the spec's paths before accepting it"),
    ) -> None:
        """Submit a pipeline spec to a curate server."""
        from curate.spec import SpecError, load_spec_text

        try:
            data = load_spec_text(spec.read_text(), source=str(spec))
        except SpecError as e:
            typer.secho(str(e), fg="red", err=True)
            raise typer.Exit(2) from None
        with _session(server, token) as c:
            if is_loopback(urlparse(str(c.base_url)).hostname or ""):
                data = absolutize_spec_paths(data, Path.cwd())
            r = c.post("/v1/jobs", content=json.dumps(data), headers={"Content-Type": "application/json"},
                       params={"preflight": "false"} if no_preflight else None)
            if r.status_code != 202:
                _fail(r)
            job_id = r.json()["id"]
            typer.echo(f"submitted job {job_id}")
            if not wait:
                return
            job = wait_for(c, job_id)
            typer.echo(
                json.dumps(
                    {
                        "id": job_id,
                        "state": job["state"],
                        "error": job.get("error"),
                        "outputs": job.get("outputs"),
                        "report": (job.get("artifacts") or {}).get("report"),
                    },
                    indent=2,
                )
            )
            if job["state"] != "succeeded":
                raise typer.Exit(1)

    @app.command()
    def jobs(
        state: str | None = typer.Option(None, help="Filter by state"),
        limit: int = typer.Option(20, help="How many"),
        server: str | None = typer.Option(None, help="Server URL"),
    ) -> None:
        """List jobs on a curate server, newest first."""
        with _session(server, None) as c:
            params: dict[str, Any] = {"limit": limit}
            if state:
                params["state"] = state
            r = c.get("/v1/jobs", params=params)
            if r.status_code != 200:
                _fail(r)
            for j in r.json()["items"]:
                typer.echo(f"{j['id']}  {j['state']:<11} {j['created_at']}  {j['name']}")

    @app.command()
    def status(job_id: str, server: str | None = typer.Option(None, help="Server URL")) -> None:
        """Show one job (state, progress, ledger, error, outputs) as JSON."""
        with _session(server, None) as c:
            r = c.get(f"/v1/jobs/{job_id}", params={"include_spec": "false"})
            if r.status_code != 200:
                _fail(r)
            typer.echo(json.dumps(r.json(), indent=2))

    @app.command()
    def cancel(
        job_id: str,
        server: str | None = typer.Option(None, help="Server URL"),
        token: str | None = typer.Option(None, help="Bearer token"),
    ) -> None:
        """Cancel a queued or running job."""
        with _session(server, token) as c:
            r = c.post(f"/v1/jobs/{job_id}/cancel")
            if r.status_code != 200:
                _fail(r)
            typer.echo(f"job {job_id}: {r.json()['state']}")

    @app.command()
    def retry(
        job_id: str,
        server: str | None = typer.Option(None, help="Server URL"),
        token: str | None = typer.Option(None, help="Bearer token"),
    ) -> None:
        """Resume a failed, interrupted or cancelled job from its completed shards."""
        with _session(server, token) as c:
            r = c.post(f"/v1/jobs/{job_id}/retry")
            if r.status_code != 202:
                _fail(r)
            typer.echo(f"job {job_id}: {r.json()['state']}")
