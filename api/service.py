"""The service object the HTTP layer talks to: spec intake, jobs, start-up and shutdown.

Kept free of FastAPI so the same logic serves the routes, the scheduler and tests.
"""

from __future__ import annotations

import copy
import json
import logging
import threading
from typing import Any

from api import store as st
from api.config import Config
from api.metrics import Metrics
from api.raycluster import EmbeddedRay, tcp_alive
from api.scheduler import Scheduler
from api.security import PathNotAllowed, sandbox_spec
from api.supervisor import Supervisor
from workers.output_lock import live_holder

log = logging.getLogger("curate.api")


class BadSpec(Exception):
    """A spec was rejected. ``status`` is the HTTP status (400 unparsable, 422 invalid)."""

    def __init__(self, status: int, message: str, problems: list[dict] | None = None):
        self.status, self.message, self.problems = status, message, problems or []
        super().__init__(message)


def _problems(err: Exception) -> list[dict]:
    out = []
    for p in getattr(err, "problems", None) or []:
        if hasattr(p, "model_dump"):
            p = p.model_dump()
        elif not isinstance(p, dict):
            p = {"node": None, "field": None, "message": str(p)}
        out.append({"node": p.get("node"), "field": p.get("field"), "message": p.get("message")})
    return out or [{"node": None, "field": None, "message": str(err)}]


def parse_spec_body(body: bytes, content_type: str | None) -> dict:
    """Parse a request body holding a spec as JSON or YAML into a dict (400 on failure)."""
    from curate.spec import SpecError, load_spec_text

    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BadSpec(400, f"request body is not UTF-8: {e}") from None
    if not text.strip():
        raise BadSpec(400, "empty request body: send the pipeline spec as JSON or YAML")
    if content_type and "json" in content_type.split(";")[0]:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise BadSpec(400, f"malformed JSON: {e}") from None
        if not isinstance(data, dict):
            raise BadSpec(400, f"a spec must be a JSON object, got {type(data).__name__}")
        return data
    try:
        return load_spec_text(text, source="request body")
    except SpecError as e:
        msg = "; ".join(p["message"] for p in _problems(e))
        raise BadSpec(400, f"malformed YAML/JSON: {msg}") from None
    except Exception as e:  # noqa: BLE001 # pragma: no cover - parser corner cases
        raise BadSpec(400, f"malformed YAML/JSON: {e}") from None


class Service:
    """Owns the store, the embedded Ray head, the supervisor and the scheduler."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        cfg.home.mkdir(parents=True, exist_ok=True)
        cfg.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.store = st.Store(cfg.db_url)
        self.metrics = Metrics(self.store)
        self.ray: EmbeddedRay | None = None
        self.ray_address = cfg.ray_address
        self.supervisor: Supervisor | None = None
        self.scheduler: Scheduler | None = None
        self.started = False
        self._submit_lock = threading.Lock()

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        """Start Ray (embedded default), reconcile jobs, start supervising and scheduling."""
        ray_env: dict[str, str] = {}
        if self.cfg.executor == "ray" and self.cfg.embedded_ray:
            self.ray = EmbeddedRay(self.cfg.home, num_cpus=self.cfg.ray_cpus)
            self.ray_address = self.ray.start()
            ray_env = self.ray.driver_env()
        self.supervisor = Supervisor(
            self.cfg, self.store, self.ray_address, ray_env, on_finish=self._on_finish
        )
        self.supervisor.start()
        self.scheduler = Scheduler(self.store, self, self.cfg.schedules_dir, self.cfg.scheduler_poll_s)
        self.scheduler.start()
        self.started = True

    def shutdown(self) -> None:
        """Stop background threads. Running drivers keep going (the next start adopts them);
        the embedded Ray head is stopped only when no job is running."""
        if self.scheduler:
            self.scheduler.stop()
        if self.supervisor:
            self.supervisor.stop()
        if self.ray is not None:
            if self.store.jobs_in([st.RUNNING]):
                log.warning("jobs still running: leaving the embedded Ray head up for the next start")
            else:
                self.ray.stop()
        self.store.close()

    # -- readiness ---------------------------------------------------------------------------
    def readiness(self) -> dict[str, Any]:
        checks: dict[str, Any] = {}
        try:
            self.store.ping()
            checks["db"] = {"ok": True, "schema_version": self.store.version}
        except Exception as e:  # noqa: BLE001 - any failure means not ready; the reply says which
            checks["db"] = {"ok": False, "error": str(e)}
        if self.cfg.executor != "ray":
            checks["ray"] = {"ok": True, "note": "local executor, Ray not used"}
        elif not self.ray_address:
            checks["ray"] = {"ok": False, "error": "Ray not started yet"}
        else:
            ok = tcp_alive(self.ray_address)
            checks["ray"] = {
                "ok": ok,
                "address": self.ray_address,
                **({} if ok else {"error": "unreachable"}),
            }
        return checks

    # -- specs and jobs ----------------------------------------------------------------------
    def check_spec(self, spec: dict, *, check_inputs: bool = True, preflight: bool = False) -> dict:
        """Resolve and sandbox paths (PathNotAllowed -> 403), then validate (BadSpec 422)
        and, with ``preflight``, check the sandboxed paths exist or can be written
        (:mod:`curate.preflight`; BadSpec 422 listing the problems by node).

        Returns the normalized spec (absolute paths, no ``job_dir``)."""
        return self.check_spec_report(spec, check_inputs=check_inputs, preflight=preflight)[0]

    def check_spec_report(
        self, spec: dict, *, check_inputs: bool = True, preflight: bool = False
    ) -> tuple[dict, dict[str, int] | None, list[str]]:
        """:meth:`check_spec`, also returning the files each input matched (None without
        ``preflight``) and the nodes' parameter warnings."""
        from curate.preflight import preflight as run_preflight
        from curate.spec import SpecError, spec_warnings, validate_spec

        spec = copy.deepcopy(spec)
        spec.pop("job_dir", None)
        sandbox_spec(spec, self.cfg.data_roots, self.cfg.base_dir)
        try:
            ps = validate_spec(spec, check_inputs=check_inputs)
        except SpecError as e:
            raise BadSpec(422, "invalid pipeline spec", _problems(e)) from None
        except Exception as e:  # noqa: BLE001 - anything else a hostile spec can provoke is still the spec's fault
            log.info("spec rejected by %s: %s", type(e).__name__, e)
            raise BadSpec(
                422,
                "invalid pipeline spec",
                [{"node": None, "field": None, "message": f"{type(e).__name__}: {e}"}],
            ) from None
        if not preflight:
            return spec, None, spec_warnings(ps)
        rep = run_preflight(ps)
        if rep.problems:
            raise BadSpec(422, "preflight failed: paths the spec names are missing or not writable "
                          "(send ?preflight=false to skip)", _problems(rep)) from None
        return spec, rep.input_files, spec_warnings(ps)

    def submit(
        self,
        spec: dict,
        *,
        schedule_id: str | None = None,
        run_number: int | None = None,
        shards: list[tuple[str, str]] | None = None,
        checked: bool = False,
    ) -> dict:
        """Validate (unless ``checked``) and queue a job; returns the stored job row."""
        if not checked:
            spec = self.check_spec(spec)
        job_id = st.new_id()
        job_dir = self.cfg.jobs_dir / job_id
        outputs = {k: v.get("path") for k, v in (spec.get("outputs") or {}).items() if isinstance(v, dict)}
        with self._submit_lock:  # the conflict check and the insert are one step
            self._refuse_shared_outputs(outputs)
            row = self.store.create_job(
                job_id=job_id,
                name=str(spec.get("name") or "pipeline")[:200],
                spec=spec,
                job_dir=str(job_dir),
                outputs=outputs,
                schedule_id=schedule_id,
                run_number=run_number,
            )
        if schedule_id and shards:
            self.store.add_shards(schedule_id, job_id, shards)
        if self.supervisor is not None:
            self.supervisor.tick()  # launch at once when a slot is free
        return row

    def _refuse_shared_outputs(self, outputs: dict[str, str]) -> None:
        """409 when a queued or running job of this service writes one of ``outputs`` (or a
        path inside or around it), or a live run elsewhere (a CLI run) holds its lock."""

        def overlap(a: str, b: str) -> bool:
            a, b = a.rstrip("/"), b.rstrip("/")
            return a == b or a.startswith(b + "/") or b.startswith(a + "/")

        for other in self.store.jobs_in(("queued", "running")):
            for theirs in (other.get("outputs") or {}).values():
                for name, mine in outputs.items():
                    if isinstance(theirs, str) and isinstance(mine, str) and overlap(mine, theirs):
                        raise BadSpec(
                            409, f"output '{name}' ({mine}) is also written by job {other['id']} ({other['state']})"
                        )
        for name, mine in outputs.items():
            if isinstance(mine, str) and "://" not in mine:
                holder = live_holder(mine)
                if holder is not None:
                    who = f"job {holder['job_id']}" if holder.get("job_id") else f"a run with job directory {holder.get('job_dir')}"
                    raise BadSpec(409, f"output '{name}' ({mine}) is being written by {who} "
                                       f"(pid {holder.get('pid')} on {holder.get('host')})")

    def _on_finish(self, job: dict, stats: dict | None) -> None:
        self.metrics.job_finished(job, stats)

__all__ = ["BadSpec", "PathNotAllowed", "Service", "parse_spec_body"]
