"""The conservation ledger: per-node document counts merged from shard results, and the
checks that every document is accounted for.

Every node: ``in == kept + rejected``. Every edge: a consumer's ``in`` equals what its
producers kept (plus copies they added). On disk: a node's part files hold ``kept + copies``
rows and its rejects sink holds ``rejected`` rows (Parquet footers only). A job whose ledger
does not balance fails with :class:`LedgerError` naming each node.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from curate.plan import Step
from curate.spec import PipelineSpec, build_stage
from workers.job_errors import LedgerError

COUNT_KEYS = ("in", "kept", "rejected", "bytes_in", "bytes_kept", "bytes_rejected", "copies_added", "wall_s", "cpu_s")
LEDGER_KEYS = ("in", "kept", "rejected", "copies_added")

NodeStats = dict[str, dict[str, Any]]


def merge_shard_results(node_stats: NodeStats, step: Step, results: list[dict], wall: float) -> list[dict]:
    """Add a step's shard results to ``node_stats``; returns the shards a worker skipped as bad."""
    skipped = []
    for r in sorted(results, key=lambda r: r["key"]):  # Ray returns them in completion order
        if r.get("skipped"):
            skipped.append(r["skipped"])
        for nid, c in r["nodes"].items():
            ns = node_stats.setdefault(nid, {})
            for k in COUNT_KEYS:
                ns[k] = ns.get(k, 0) + c.get(k, 0)
            rb = ns.setdefault("rejects_by_reason", {})
            for reason, n in c["rejects_by_reason"].items():
                rb[reason] = rb.get(reason, 0) + n
            if c.get("counts"):
                counts = ns.setdefault("counts", {})
                for name, n in c["counts"].items():
                    counts[name] = counts.get(name, 0) + n
    for nid in (step.sources if step.source_kind == "input" else []) + step.nodes:
        ns = node_stats.setdefault(nid, {})
        for k in COUNT_KEYS:
            ns.setdefault(k, 0)
        ns.setdefault("rejects_by_reason", {})
        ns["step"] = step.id
    node_stats.setdefault(step.output, {})["step_wall_s"] = wall
    node_stats[step.output]["shards"] = len(results)
    return skipped


def check_ledger(
    spec: PipelineSpec, node_stats: NodeStats, node_dirs: dict[str, Path], job_dir: Path
) -> dict[str, dict[str, int]]:
    """The ledger (node -> in/kept/rejected/copies_added), or :class:`LedgerError`."""
    ledger: dict[str, dict[str, int]] = {}
    problems = []
    for nid, ns in node_stats.items():
        if "in" not in ns:
            continue
        ledger[nid] = {k: ns[k] for k in LEDGER_KEYS}
        if ns["in"] != ns["kept"] + ns["rejected"]:
            problems.append(f"node '{nid}': in {ns['in']} != kept {ns['kept']} + rejected {ns['rejected']}")
    for n in spec.nodes:
        if n.id not in ledger:
            continue
        stage = build_stage(n, spec.seed)
        data_ins = stage.data_inputs(n.inputs) if stage.kind == "barrier" else n.inputs
        upstream = sum(ledger[i]["kept"] + ledger[i]["copies_added"] for i in data_ins if i in ledger)
        if upstream != ledger[n.id]["in"]:
            problems.append(f"node '{n.id}': in {ledger[n.id]['in']} != upstream kept {upstream}")
    problems += _check_files(ledger, node_dirs, job_dir)
    if problems:
        raise LedgerError("ledger does not balance:\n" + "\n".join("  - " + p for p in problems))
    return ledger


def _rows(d: Path) -> int:
    return sum(pq.ParquetFile(str(f)).metadata.num_rows for f in d.glob("part-*.parquet"))


def _check_files(ledger: dict[str, dict[str, int]], node_dirs: dict[str, Path], job_dir: Path) -> list[str]:
    problems = []
    for nid, c in ledger.items():
        d = node_dirs.get(nid)
        if d is not None and _rows(d) != c["kept"] + c["copies_added"]:
            problems.append(f"node '{nid}': {_rows(d)} rows in {d} != kept {c['kept'] + c['copies_added']}")
        r = _rows(job_dir / "rejects" / nid)
        if r != c["rejected"]:
            problems.append(f"node '{nid}': {r} rows in the rejects sink != rejected {c['rejected']}")
    return problems
