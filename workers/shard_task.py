"""Process one shard through a step: [ingest] -> [barrier apply] -> fused maps -> write.

Everything here runs on a worker (a Ray task/actor or the local process). Outputs are
written to temporary names and renamed (locally) or completed in a local spill file and
PUT (object store); the completion record is written last and is the marker a resume
trusts, so a shard is either fully committed or redone (idempotent: the same names again).
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import jobfs, schema
from curate.parquet_io import ParquetParts, SchemaDrift, conform_table, iter_file_batches, write_json_atomic
from curate.spec import InputSpec, NodeSpec, build_stage
from curate.stage import MapResult, StageError
from curate.text.normalize import utf8_bytes
from workers.ingest import Shard, ShardError, read_shard
from workers.state_cache import loaded_state


class NodeCounter:
    """Per-node ledger for one shard; merges exactly by addition."""

    __slots__ = ("docs_in", "kept", "rejected", "bytes_in", "bytes_kept", "bytes_rejected", "reasons", "wall_s", "cpu_s", "copies_added", "counts")

    def __init__(self) -> None:
        self.docs_in = self.kept = self.rejected = 0
        self.bytes_in = self.bytes_kept = self.bytes_rejected = 0
        self.copies_added = 0
        self.reasons: dict[str, int] = {}
        self.counts: dict[str, int] = {}
        self.wall_s = self.cpu_s = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "in": self.docs_in,
            "kept": self.kept,
            "rejected": self.rejected,
            "bytes_in": self.bytes_in,
            "bytes_kept": self.bytes_kept,
            "bytes_rejected": self.bytes_rejected,
            "copies_added": self.copies_added,
            "rejects_by_reason": dict(sorted(self.reasons.items())),
            "counts": dict(sorted(self.counts.items())),
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s,
        }


class ShardTask:
    """Picklable step runner: ``task(shard_dict) -> result dict`` (ledger per node).

    Stages are built and set up once per process (per actor for model stages).
    """

    def __init__(self, cfg: dict[str, Any]):
        self.cfg = cfg
        self._stages: list | None = None
        self._barrier = None

    # -- set-up ----------------------------------------------------------------------
    def _build(self) -> None:
        if self._stages is not None:
            return
        cfg = self.cfg
        nodes = {n["id"]: NodeSpec.model_validate(n) for n in cfg["nodes"]}
        tc = cfg["text_column"]
        if cfg.get("barrier"):
            self._barrier = build_stage(nodes[cfg["barrier"]], cfg["seed"], tc)
            self._barrier.ensure_setup()
        self._stages = []
        for nid in cfg["chain"]:
            st = build_stage(nodes[nid], cfg["seed"], tc)
            st.ensure_setup()
            self._stages.append(st)

    def run_stats(self) -> dict[str, Any]:
        self._build()
        out = {}
        for st in ([self._barrier] if self._barrier else []) + list(self._stages or []):
            rs = st.run_stats()
            if rs:
                out[st.node_id] = rs
        return out

    # -- one shard --------------------------------------------------------------------
    def __call__(self, shard: dict[str, Any]) -> dict[str, Any]:
        self._build()
        cfg = self.cfg
        key = shard["key"]
        out_dir = jobfs.path(cfg["out_dir"])
        rej_root = jobfs.path(cfg["job_dir"]) / "rejects"
        counters: dict[str, NodeCounter] = {}
        parts = ParquetParts(compression="zstd", conform=True)  # this shard's output and rejects parts
        out_path = out_dir / f"part-{key}.parquet"
        rejected_at: set[str] = set()
        t0, c0 = time.perf_counter(), time.process_time()
        skipped = None

        allowed = self._allowed_reasons(shard)

        def write(path: jobfs.JobPath, table: pa.Table) -> None:
            try:
                parts.write(path, table)
            except SchemaDrift as e:
                raise StageError(str(e)) from None

        def record(node: str, batch: pa.Table, res: MapResult, dt: float, dc: float) -> None:
            c = counters.setdefault(node, NodeCounter())
            tc = cfg["text_column"]
            c.docs_in += batch.num_rows
            c.bytes_in += utf8_bytes(batch.column(tc)) if tc in batch.column_names else 0
            kept = res.kept
            c.copies_added += res.copies_added
            for name, n in res.counts.items():
                c.counts[name] = c.counts.get(name, 0) + int(n)
            c.kept += kept.num_rows - res.copies_added
            c.bytes_kept += utf8_bytes(kept.column(tc)) if tc in kept.column_names else 0
            c.wall_s += dt
            c.cpu_s += dc
            if res.rejected is not None and res.rejected.num_rows:
                r = res.rejected
                c.rejected += r.num_rows
                c.bytes_rejected += utf8_bytes(r.column(tc)) if tc in r.column_names else 0
                for reason, n in zip(*_value_counts(r.column(schema.REASON))):
                    if reason not in allowed[node]:
                        raise StageError(f"node '{node}' rejected rows with reason {reason!r}, which its stage "
                                         f"does not declare (declared: {sorted(allowed[node])})")
                    c.reasons[reason] = c.reasons.get(reason, 0) + n
                r = r.append_column(schema.STAGE, pa.array([node] * r.num_rows, pa.string()))
                write(rej_root / node / f"part-{key}.parquet", r)
                rejected_at.add(node)

        try:
            for batch in self._batches(shard, record):
                for st, apply in self._pipeline():
                    w0, p0 = time.perf_counter(), time.process_time()
                    res = apply(batch)
                    record(st.node_id, batch, res, time.perf_counter() - w0, time.process_time() - p0)
                    batch = res.kept
                write(out_path, batch)
            parts.commit()
            # A redone shard (resume after a spec change) that no longer rejects at a node
            # must not leave the earlier run's rejects behind.
            for node in self._node_ids(shard):
                if node not in rejected_at:
                    (rej_root / node / f"part-{key}.parquet").unlink(missing_ok=True)
        except ShardError as e:
            parts.abort()
            if cfg["on_bad_shard"] != "skip":
                raise
            skipped = {"path": e.path, "problem": e.problem}
            counters = {}
        except BaseException:
            parts.abort()
            raise
        result = {
            "key": key,
            "shard": shard,
            "fingerprint": cfg["fingerprint"],
            "nodes": {k: v.to_dict() for k, v in counters.items()},
            "rows_out": parts.rows.get(out_path, 0),
            "output": str(out_path) if out_path in parts.rows else None,
            "skipped": skipped,
            "wall_s": time.perf_counter() - t0,
            "cpu_s": time.process_time() - c0,
            "pid": os.getpid(),
        }
        write_json_atomic(jobfs.path(cfg["job_dir"]) / "_done" / cfg["step_id"] / f"{key}.json", result)
        return result

    def _allowed_reasons(self, shard: dict[str, Any]) -> dict[str, set[str]]:
        out = {shard["input"]: set(schema.INGEST_REASONS)} if shard.get("input") else {}
        for st in ([self._barrier] if self._barrier else []) + list(self._stages or []):
            out[st.node_id] = set(st.reasons())
        return out

    def _node_ids(self, shard: dict[str, Any]) -> list[str]:
        ids = [shard["input"]] if shard.get("input") else []
        return ids + ([self.cfg["barrier"]] if self.cfg.get("barrier") else []) + list(self.cfg["chain"])

    def _pipeline(self):
        if self._barrier is not None:
            b = self._barrier
            loaded = loaded_state(b, self.cfg["state_token"], self.cfg["state"])
            yield b, (lambda t: b.process(t, loaded))
        for st in self._stages or []:
            yield st, st.process

    def _batches(self, shard: dict[str, Any], record):
        cfg = self.cfg
        if shard.get("input"):
            sh = Shard(**shard)
            inp = InputSpec.model_validate(cfg["inputs"][sh.input])
            renames = cfg.get("id_renames", {}).get(sh.input)
            it = read_shard(sh, inp, cfg["batch_size"], cfg["max_doc_bytes"],
                            renames=None if renames is None else renames.get(sh.path, {}))
            while True:
                w0, p0 = time.perf_counter(), time.process_time()
                try:
                    clean, rej = next(it)
                except StopIteration:
                    break
                dt, dc = time.perf_counter() - w0, time.process_time() - p0
                res = MapResult(clean, rej)
                # The input "node" sees clean + quarantined rows.
                src = clean if rej is None else pa.concat_tables(
                    [clean, rej.drop_columns([schema.REASON, schema.DETAIL])], promote_options="permissive"
                )
                record(sh.input, src, res, dt, dc)
                yield clean
        else:
            target = cfg.get("source_schema")
            for t in iter_file_batches(shard["path"], None, cfg["batch_size"]):
                yield t if target is None else conform_table(t.replace_schema_metadata(None), target)
            if pq.ParquetFile(shard["path"]).metadata.num_rows == 0:
                t = pq.read_schema(shard["path"]).empty_table()
                yield t if target is None else conform_table(t.replace_schema_metadata(None), target)


def _value_counts(arr: pa.ChunkedArray | pa.Array) -> tuple[list[str], list[int]]:
    vc = pc.value_counts(arr)
    return vc.field("values").to_pylist(), vc.field("counts").to_pylist()


def load_done(job_dir: jobfs.JobPath | str, step_id: str, key: str, fingerprint: str) -> dict | None:
    """The completion record of a shard, if it exists and matches the step fingerprint."""
    root = jobfs.path(job_dir)
    p = root / "_done" / step_id / f"{key}.json"
    try:
        rec = json.loads(p.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    if rec.get("fingerprint") != fingerprint:
        return None
    if rec.get("output") and not jobfs.path(rec["output"]).exists():
        return None
    for node, c in rec.get("nodes", {}).items():  # a lost rejects file means: redo the shard
        if c.get("rejected") and not (root / "rejects" / node / f"part-{key}.parquet").exists():
            return None
    return rec
