"""The job driver shared by both executors: plan, fit barriers, run steps, keep the ledger.

One run of a spec in a job directory. The executor (:mod:`workers.executor`) runs shards
and fit tasks; this module orchestrates: list inputs, run each planned step (fitting its
barrier first, or reusing the fit on resume), merge shard results into the ledger
(:mod:`workers.ledger`), publish outputs (:mod:`workers.outputs`) and write the job files
(:mod:`workers.job_files`, :mod:`workers.job_stats`, the report).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import xxhash

import curate
from curate import jobfs, schema
from curate.fit import FitContext, ShardSet
from curate.parquet_io import write_json_atomic
from curate.plan import Plan, Step, make_plan
from curate.spec import PipelineSpec, SpecError, build_stage, spec_warnings, validate_spec
from curate.stage import StageError
from workers.dupids import check_duplicate_ids
from workers.executor import Executor, ProgressFn
from workers.ingest import Shard, ShardError, list_input_shards
from workers.job_errors import JobFailed, LedgerError, user_error
from workers.job_files import JobOutcome, NodeCounts, Progress, write_progress, write_result
from workers.job_stats import fingerprint, write_stats
from workers.ledger import check_ledger, merge_shard_results
from workers.output_lock import PathLocks
from workers.outputs import (
    local_outputs,
    mark_staging_incomplete,
    node_dirs,
    output_paths,
    publish_outputs,
    read_output,
    restage_published,
)
from workers.remote_lock import job_dir_lock

__all__ = ["Job", "JobFailed", "JobResult", "LedgerError", "read_output"]


@dataclass
class JobResult:
    """What a finished job produced."""

    job_dir: jobfs.JobPath
    stats: dict[str, Any]
    ledger: dict[str, dict[str, int]]
    outputs: dict[str, str]
    warnings: list[str] = field(default_factory=list)


def _text_columns(ps: PipelineSpec) -> dict[str, str]:
    """The text column each node sees (from its upstream inputs)."""
    out = {name: inp.text_column for name, inp in ps.inputs.items()}
    pending = list(ps.nodes)
    for _ in range(len(pending) + 1):
        rest = []
        for n in pending:
            ups = [out[i] for i in n.inputs if i in out]
            if len(ups) == len(n.inputs):
                out[n.id] = ups[0] if ups else schema.TEXT
            else:
                rest.append(n)
        pending = rest
    return out


class Job:
    """One run of a spec in a job directory."""

    def __init__(
        self,
        spec: Any,
        executor: Executor,
        job_dir: str | Path | None = None,
        resume: bool = False,
        progress: ProgressFn | None = None,
    ):
        self.spec = validate_spec(spec)
        self.executor = executor
        self.job_dir = jobfs.resolve(job_dir or self.spec.job_dir or Path("runs") / self.spec.name)
        self.resume = resume
        self.progress = progress
        self.plan: Plan = make_plan(self.spec)
        self.text_cols = _text_columns(self.spec)
        self.node_stats: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = spec_warnings(self.spec)
        self.skipped: list[dict] = []
        self.fingerprints: dict[str, str] = {}
        self.id_renames: dict[str, dict[str, dict[int, int]]] = {}  # repeated ids (workers.dupids)
        self.node_dirs: dict[str, jobfs.JobPath] = node_dirs(self.spec, self.plan, self.job_dir)

    # ------------------------------------------------------------------------------
    def run(self) -> JobResult:
        """Run the job holding its locks (job directory and every local output): a second
        run on either is refused with :class:`workers.output_lock.LockHeld`, naming the holder.
        An object-store job directory is locked by conditional writes (:mod:`workers.remote_lock`)."""
        remote = jobfs.is_remote(self.job_dir)
        with PathLocks([*([] if remote else [self.job_dir]), *local_outputs(self.spec)], self.job_dir) as locks:
            if not remote:
                return self._run()
            with job_dir_lock(self.job_dir, locks):
                return self._run()

    def _run(self) -> JobResult:
        started = time.time()
        self._prepare_dirs()
        write_json_atomic(self.job_dir / "spec.json", self.spec.model_dump(mode="json"))
        write_json_atomic(self.job_dir / "plan.json", self.plan.to_dict())
        self._progress = Progress()
        try:
            shards_by_input = self._list_inputs()
            check_duplicate_ids(self, set(shards_by_input))  # before any work: fail early
            for step in self.plan.steps:
                self._run_step(step, shards_by_input)
            ledger = check_ledger(self.spec, self.node_stats, self.node_dirs, self.job_dir)
            publish_outputs(self.spec, self.node_dirs, self.job_dir)  # only a balanced job publishes
        except Exception as e:
            # A user-facing error raised on a worker (a bad shard, a stage that cannot run
            # on its data) arrives wrapped by Ray: surface it as the local executor does.
            user = user_error(e)
            if isinstance(user, ShardError):
                err: Exception = ShardError(user.path, user.problem)
            elif isinstance(user, (JobFailed, SpecError)):
                err = user
            elif isinstance(user, StageError):
                err = JobFailed(str(user))
            else:
                err = JobFailed(f"{type(e).__name__}: {e}\n{traceback.format_exc(limit=6)}")
            self._write_stats(started, "failed", error=str(err))
            mark_staging_incomplete(self.spec, self.job_dir, f"failed: {err}")
            write_result(self.job_dir, JobOutcome(state="failed", error=str(err)))
            if err is e:
                raise
            raise err from e
        outputs = output_paths(self.spec)
        stats = self._write_stats(started, "succeeded", outputs=outputs)
        write_json_atomic(self.job_dir / "ledger.json", ledger)
        write_result(self.job_dir, JobOutcome(state="succeeded", outputs=outputs))
        self._write_report()
        return JobResult(self.job_dir, stats, ledger, outputs, list(self.warnings))

    # ------------------------------------------------------------------------------
    def _prepare_dirs(self) -> None:
        self.job_dir.mkdir(parents=True, exist_ok=True)
        if self.resume:
            restage_published(self.spec, self.job_dir)
        else:
            for sub in ("nodes", "rejects", "state", "_done", "_scratch"):
                jobfs.rmtree(self.job_dir / sub)
            for f in ("stats.json", "ledger.json", "result.json", "progress.json", "report.html", "summary.json"):
                (self.job_dir / f).unlink(missing_ok=True)
            for d in set(self.node_dirs.values()):
                if d.exists():
                    for f in list(d.glob("part-*.parquet")) + list(d.glob("*.tmp")):
                        f.unlink()
        (self.job_dir / "INCOMPLETE").write_text("job has not finished\n")

    def _list_inputs(self) -> dict[str, list[Shard]]:
        out: dict[str, list[Shard]] = {}
        bad_all: list[dict] = []
        read = {s.sources[0] for s in self.plan.steps if s.source_kind == "input"}
        for name, inp in self.spec.inputs.items():
            if name not in read:
                continue
            shards, bad = list_input_shards(name, inp, self.spec.settings.rows_per_shard)
            for b in bad:
                b["input"] = name
            bad_all += bad
            out[name] = shards
        if bad_all:
            if self.spec.settings.on_bad_shard == "fail":
                lines = "\n".join(f"  - {b['path']}: {b['problem']}" for b in bad_all)
                raise ShardError(bad_all[0]["path"], f"bad input shard(s):\n{lines}")
            self.skipped += bad_all
            self.warnings += [f"skipped bad shard {b['path']}: {b['problem']}" for b in bad_all]
        return out

    def _source_shards(self, step: Step, shards_by_input: dict[str, list[Shard]]) -> list[dict]:
        if step.source_kind == "input":
            return [s.to_dict() for s in shards_by_input.get(step.sources[0], [])]
        out = []
        for src in step.sources:
            d = self.node_dirs[src]
            for f in sorted(d.glob("part-*.parquet")):
                key = f.stem[len("part-"):] if len(step.sources) == 1 else xxhash.xxh3_64_hexdigest(f"{src}/{f.name}".encode())
                out.append({"input": None, "path": str(f), "key": key, "source": src})
        return out

    def _step_fingerprint(self, step: Step, shards: list[dict]) -> str:
        nodes = [self.spec.node(n).model_dump(mode="json") for n in step.nodes]
        ups = [self.fingerprints.get(s, "") for s in step.depends_on]
        inp = [(s.get("key"), s.get("fingerprint")) for s in shards] if step.source_kind == "input" else []
        src_inputs = [self.spec.inputs[s].model_dump(mode="json") for s in step.sources if s in self.spec.inputs]
        st = self.spec.settings
        return fingerprint([nodes, ups, inp, src_inputs, self.spec.seed, st.max_doc_bytes, st.on_bad_shard, curate.__version__])

    def _run_step(self, step: Step, shards_by_input: dict[str, list[Shard]]) -> None:
        shards = self._source_shards(step, shards_by_input)
        fp = self._step_fingerprint(step, shards)
        self.fingerprints[step.id] = fp
        state, token = None, ""
        if step.barrier:
            state, token = self._fit(step, fp)
        out_dir = self.node_dirs[step.output]
        text_col = self.text_cols.get(step.output, schema.TEXT)
        cfg = {
            "step_id": step.id,
            "fingerprint": fp,
            "nodes": [self.spec.node(n).model_dump(mode="json") for n in step.nodes],
            "barrier": step.barrier,
            "chain": step.chain,
            "state": state,
            "state_token": token,
            "seed": self.spec.seed,
            "text_column": text_col,
            "inputs": {k: v.model_dump(mode="json") for k, v in self.spec.inputs.items()},
            "id_renames": {i: self.id_renames[i] for i in step.sources if i in self.id_renames},
            "batch_size": self.spec.settings.batch_size,
            "max_doc_bytes": self.spec.settings.max_doc_bytes,
            "on_bad_shard": self.spec.settings.on_bad_shard,
            "job_dir": str(self.job_dir),
            "out_dir": str(out_dir),
            "source_schema": self._joined_schema(step, shards),
        }
        from workers.shard_task import ShardTask, load_done

        results: list[dict] = []
        todo: list[dict] = []
        if self.resume:
            for s in shards:
                rec = load_done(self.job_dir, step.id, s["key"], fp)
                (results if rec else todo).append(rec or s)
        else:
            todo = shards
        total = len(shards)
        self._report_progress(step.id, len(results), total)
        done_count = [len(results)]

        def on_result(_r: dict) -> None:
            done_count[0] += 1
            self._report_progress(step.id, done_count[0], total)

        t0 = time.perf_counter()
        task = ShardTask(cfg)
        if todo:
            results += self.executor.run_shards(task, todo, step.uses_model, on_result)
        wall = time.perf_counter() - t0
        for f in out_dir.glob("*.tmp"):
            f.unlink(missing_ok=True)
        self._drop_stale_parts(step, {s["key"] for s in shards})
        for sk in merge_shard_results(self.node_stats, step, results, wall):
            self.skipped.append(sk)
            self.warnings.append(f"skipped bad shard {sk['path']}: {sk['problem']}")
        try:
            run_stats = task.run_stats() if not step.uses_model else self._model_run_stats(step)
        except Exception:  # stats must never fail a finished step
            run_stats = {}
        for nid, rs in run_stats.items():
            self.node_stats.setdefault(nid, {}).setdefault("run_stats", {}).update(rs)

    def _joined_schema(self, step: Step, shards: list[dict]):
        """A join (``union``) reads parts of several branches whose columns may differ: every
        part is conformed to their unified schema (missing columns as nulls), so all output
        parts share one schema."""
        if step.source_kind != "nodes" or len(step.sources) < 2 or step.barrier or not shards:
            return None
        import pyarrow as pa

        try:
            return pa.unify_schemas([pq.read_schema(s["path"]).remove_metadata() for s in shards])
        except (pa.ArrowTypeError, pa.ArrowInvalid) as e:
            raise JobFailed(f"node '{step.chain[0]}': inputs {step.sources} cannot be joined: {e}") from None

    def _drop_stale_parts(self, step: Step, keys: set[str]) -> None:
        """On resume, parts of shards that no longer exist (an input file was removed or
        re-split) must not reach downstream steps, outputs or the rejects sink."""
        dirs = [self.node_dirs[step.output]]
        nodes = (step.sources if step.source_kind == "input" else []) + step.nodes
        dirs += [self.job_dir / "rejects" / n for n in nodes]
        for d in dirs:
            for f in d.glob("part-*.parquet"):
                if f.stem[len("part-"):] not in keys:
                    f.unlink(missing_ok=True)

    def _model_run_stats(self, step: Step) -> dict[str, Any]:
        # Model digests etc. without loading models on the driver: stages that hold a
        # model report file facts through run_stats() without needing setup().
        out = {}
        for nid in step.nodes:
            st = build_stage(self.spec.node(nid), self.spec.seed, self.text_cols.get(nid, schema.TEXT))
            try:
                rs = st.run_stats()
            except Exception:
                rs = {}
            if rs:
                out[nid] = rs
        return out

    def _fit(self, step: Step, fp: str) -> tuple[dict[str, Any], str]:
        """Fit the step's barrier (or reuse its state on resume): (state, fit token)."""
        nid = step.barrier
        assert nid is not None
        state_dir = self.job_dir / "state" / nid
        sfile = state_dir / "state.json"
        if self.resume and sfile.exists():
            rec = json.loads(sfile.read_text())
            if rec.get("fingerprint") == fp:
                self._record_fit(nid, rec["state"], rec.get("warnings", []), rec.get("fit_wall_s", 0.0))
                return rec["state"], rec.get("token") or fp
        jobfs.rmtree(state_dir)
        state_dir.mkdir(parents=True, exist_ok=True)
        node = self.spec.node(nid)
        stage = build_stage(node, self.spec.seed, self.text_cols.get(nid, schema.TEXT))
        inputs = {}
        for i in list(dict.fromkeys(node.inputs + stage.extra_inputs())):
            files = tuple(str(f) for f in sorted(self.node_dirs[i].glob("part-*.parquet")))
            inputs[i] = ShardSet(files=files, text_column=self.text_cols.get(i, schema.TEXT))
        ctx = FitContext(
            runner=self.executor.task_runner(),
            state_dir=state_dir,
            scratch_dir=self.job_dir / "_scratch" / nid,
            seed=stage.seed,
            node_id=nid,
            text_column=stage.text_column,
            batch_size=self.spec.settings.batch_size,
            num_partitions=self.spec.settings.shuffle_partitions,
        )
        self._report_progress(f"fit:{nid}", 0, 1)
        t0 = time.perf_counter()
        try:
            state = stage.fit(inputs, ctx)
        except Exception as e:
            raise JobFailed(f"node '{nid}' ({node.stage}): fit failed: {user_error(e) or e}") from e
        finally:
            close = getattr(ctx.runner, "close", None)
            if close is not None:
                close()
        wall = time.perf_counter() - t0
        jobfs.rmtree(self.job_dir / "_scratch" / nid)
        # a fresh token per fit: workers cache what load(state) made under it
        token = xxhash.xxh3_64_hexdigest(f"{fp}/{time.time_ns()}/{os.getpid()}".encode())
        write_json_atomic(sfile, {"fingerprint": fp, "token": token, "state": state, "warnings": ctx.warnings,
                                  "fit_wall_s": wall})
        self._record_fit(nid, state, ctx.warnings, wall)
        self._report_progress(f"fit:{nid}", 1, 1)
        return state, token

    def _record_fit(self, nid: str, state: dict, warnings: list[str], wall: float) -> None:
        ns = self.node_stats.setdefault(nid, {})
        ns["fit_stats"] = (state or {}).get("stats")
        ns["fit_wall_s"] = wall
        if warnings:
            ns.setdefault("warnings", []).extend(warnings)
            self.warnings += [f"{nid}: {w}" for w in warnings]

    def _report_progress(self, step: str, done: int, total: int) -> None:
        self._progress.step(step, done, total)
        self._progress.nodes = {
            k: NodeCounts.model_validate({x: v.get(x, 0) for x in ("in", "kept", "rejected")})
            for k, v in self.node_stats.items()
        }
        try:
            write_progress(self.job_dir, self._progress)
        except OSError:
            pass
        if self.progress:
            self.progress(step, done, total)

    def _write_stats(self, started: float, state: str, error: str | None = None, outputs: dict | None = None) -> dict:
        stats = write_stats(
            self.job_dir, self.spec, self.node_stats, executor=self.executor.name, started=started, state=state,
            error=error, outputs=outputs, skipped=self.skipped, warnings=self.warnings,
        )
        if state == "succeeded":
            (self.job_dir / "INCOMPLETE").unlink(missing_ok=True)
        return stats

    def _write_report(self) -> None:
        try:
            from curate import report
        except ImportError:
            return
        try:
            report.write_report(self.job_dir)
        except Exception as e:  # a report problem must not fail a finished job
            self.warnings.append(f"report not written: {e}")
