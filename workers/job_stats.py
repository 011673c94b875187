"""``stats.json``: the job's per-node statistics, written on success and on failure."""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import xxhash

import curate
from curate.parquet_io import write_json_atomic
from curate.registry import get_stage_class
from curate.spec import PipelineSpec

STATS_FILE = "stats.json"


def fingerprint(obj: Any) -> str:
    """A stable hash of a JSON-able value (spec hashes, step fingerprints)."""
    return xxhash.xxh3_64_hexdigest(json.dumps(obj, sort_keys=True, default=str).encode())


def write_stats(
    job_dir: Path,
    spec: PipelineSpec,
    node_stats: dict[str, dict[str, Any]],
    *,
    executor: str,
    started: float,
    state: str,
    error: str | None,
    outputs: dict | None,
    skipped: list[dict],
    warnings: list[str],
) -> dict:
    nodes = {}
    for name in spec.inputs:
        if name in node_stats:
            nodes[name] = {"stage": "input", "kind": "input", "inputs": [], **node_stats[name]}
    for n in spec.nodes:
        kind = get_stage_class(n.stage).kind
        nodes[n.id] = {"stage": n.stage, "kind": kind, "inputs": n.inputs, **node_stats.get(n.id, {})}
    for ns in nodes.values():
        ns.setdefault("fit_stats", None)
        ns.setdefault("run_stats", {})
        ns.setdefault("counts", {})
        ns.setdefault("warnings", [])
    stats = {
        "job": {
            "name": spec.name,
            "seed": spec.seed,
            "curate_version": curate.__version__,
            "spec_hash": fingerprint(spec.model_dump(mode="json")),
            "executor": executor,
            "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
            "finished_at": datetime.now(timezone.utc).isoformat(),
            "wall_s": time.time() - started,
            "state": state,
            "error": error,
            "job_dir": str(job_dir),
        },
        "nodes": nodes,
        "outputs": outputs or {},
        "skipped_shards": skipped,
        "warnings": warnings,
    }
    write_json_atomic(job_dir / STATS_FILE, stats)
    return stats
