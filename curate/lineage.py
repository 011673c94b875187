"""Per-document lineage: ``curate explain JOB_DIR DOC_ID``.

:func:`explain` answers "why is this document not in the output?" (or "how did it get
in?") from what the job already wrote — ``rejects/<node>/`` (every rejected row with its
stage, reason and detail), the materialized ``nodes/<node>/`` parts and the named
outputs — without rerunning anything. Every lookup is a ``pyarrow.dataset`` scan with a
filter on ``id`` (or ``source_id`` for copies a stage added), so only matching rows are
ever materialized, whatever the size of the job. What a stage knows about a document
(a dedup cluster, mixing repeats...) comes from its ``explain_row`` hook.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from curate import schema
from curate.jobdata import JobData

_MAX_STR = 160
# keys of every explanation; what a stage's explain_row adds cannot replace them
_BASE_KEYS = (
    "doc_id",
    "source_id",
    "status",
    "rejected",
    "path",
    "final",
    "outputs",
    "text_preview",
    "message",
)


def _scalar(v: Any) -> Any:
    """A JSON-safe, short rendering of one cell (the API returns these as JSON)."""
    if isinstance(v, str):
        return v if len(v) <= _MAX_STR else v[:_MAX_STR] + "…"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, bytes):
        v = v.decode("utf-8", "replace")
    return _scalar(str(v))


def _row(t: pa.Table, i: int = 0, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    return {c: _scalar(t.column(c)[i].as_py()) for c in t.column_names if c not in skip}


def _id_value(job: JobData, doc_id: str, files: list[str]) -> Any:
    """``doc_id`` converted to the id column's type (ids may be integers in user data)."""
    import pyarrow.parquet as pq

    for f in files:
        try:
            typ = pq.read_schema(f).field(schema.ID).type
        except (KeyError, OSError):
            continue
        if pa.types.is_integer(typ):
            try:
                return int(doc_id)
            except ValueError:
                return doc_id
        return doc_id
    return doc_id


def _lookup(job: JobData, files: list[str], doc_id: str) -> pa.Table | None:
    if not files:
        return None
    val = _id_value(job, doc_id, files)
    return job.find_rows(files, pc.field(schema.ID) == val, [schema.ID])


def explain(job_dir: str, doc_id: str) -> dict[str, Any]:
    """Lineage of one document in a job directory (see module docstring).

    Returns a dict with ``status`` (``kept`` / ``rejected`` / ``not_found``), ``rejected``
    (node, stage, reason, detail), ``path`` (each node the document passed, with the
    columns that node's stage requires or provides), ``final`` (its last row), ``outputs``
    (the named outputs holding it) and ``source_id`` (the original's id, for a copy).
    Each stage on the path may add keys (``Stage.explain_row``): ``dedup`` (cluster,
    cluster size, the id kept in its place), ``mix`` (bucket, repeat count, the ids of its
    copies) for the built-in stages.
    """
    job = JobData(job_dir)
    text_cols = {schema.TEXT} | {
        (i or {}).get("text_column", schema.TEXT) for i in (job.spec.get("inputs") or {}).values()
    }
    skip = tuple(text_cols)
    out: dict[str, Any] = {
        "doc_id": doc_id,
        "source_id": doc_id,
        "status": "not_found",
        "rejected": None,
        "path": [],
        "final": {},
        "outputs": [],
    }

    # 1. the rejects sink: at most one node rejected this document
    rejected_at, row = None, None
    for n in job.reject_nodes():
        t = _lookup(job, job.reject_files(n), doc_id)
        if t is not None and t.num_rows:
            rejected_at, row = n, t
            break
    # 2. the final outputs
    found_in: dict[str, pa.Table] = {}
    if rejected_at is None:
        for s in job.sinks:
            t = _lookup(job, job.node_files(s), doc_id)
            if t is not None and t.num_rows:
                found_in[s] = t
        out["outputs"] = [
            name
            for name, o in (job.spec.get("outputs") or {}).items()
            if isinstance(o, dict) and o.get("node") in found_in
        ]
    if rejected_at is None and not found_in:
        out["message"] = f"document {doc_id!r} is in neither the rejects nor the outputs of this job"
        return out
    end = rejected_at or next(iter(found_in))
    final = row if row is not None else found_in[end]
    final_row = _row(final, 0, skip)
    out["final"] = final_row
    out["text_preview"] = next(
        (_scalar(final.column(c)[0].as_py()) for c in text_cols if c in final.column_names), None
    )
    # a copy a stage added carries its original's id (the copies contract, curate.schema)
    if schema.SOURCE_ID in final.column_names and final.column(schema.SOURCE_ID)[0].is_valid:
        out["source_id"] = final.column(schema.SOURCE_ID)[0].as_py()
    lookup_id = str(out["source_id"])

    # 3. the path: every upstream node, checked against its materialized parts when it has them
    inputs = job.spec.get("inputs") or {}
    labels = {i: (v or {}).get("domain") for i, v in inputs.items()}
    ancestors = job.ancestors(end)
    unmat_inputs = [n for n in ancestors if n in inputs and n != end and not job.node_files(n)]
    doc_domain = final_row.get(schema.DOMAIN)
    for n in ancestors:
        files = job.node_files(n) if n != end else []
        hit = _lookup(job, files, lookup_id) if files else None
        if files and (hit is None or not hit.num_rows):
            continue  # materialized but without this document: another branch
        other_label = labels.get(n) is not None and labels[n] != doc_domain
        if n in unmat_inputs and len(unmat_inputs) > 1 and doc_domain is not None and other_label:
            continue  # another input's domain label: not where this document came from
        src = _row(hit, 0, skip) if hit is not None else final_row
        st = job.stage(n)
        provided = set(st.provided_columns()) | set(st.required_columns()) if st is not None else set()
        status = "rejected" if n == rejected_at else ("kept" if n in found_in else "passed")
        if status == "rejected":
            provided = {c for c in provided if c in final_row}
        out["path"].append(
            {
                "node": n,
                "stage": job.stage_of(n),
                "status": status,
                "materialized": bool(files),
                "scores": {c: src[c] for c in sorted(provided) if c in src},
            }
        )

    if rejected_at is not None:
        out["status"] = "rejected"
        out["rejected"] = {
            "node": rejected_at,
            "stage": job.stage_of(rejected_at),
            "reason": final_row.get(schema.REASON),
            "detail": final_row.get(schema.DETAIL),
        }
    else:
        out["status"] = "kept"

    # 4. what each stage on the path says about the document (upstream first)
    for p in out["path"]:
        st = job.stage(p["node"])
        if st is not None:
            extra = st.explain_row(job, p["node"], final_row, p["node"] == rejected_at)
            out.update({k: v for k, v in extra.items() if k not in _BASE_KEYS})
    return out


def _fact(v: Any) -> str:
    return ", ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v)


def format_explanation(e: dict[str, Any]) -> str:
    """A short human-readable rendering of :func:`explain`'s result."""
    lines = [
        f"document {e['doc_id']}" + (f" (copy of {e['source_id']})" if e["source_id"] != e["doc_id"] else "")
    ]
    if e["status"] == "not_found":
        return "\n".join(lines + [e.get("message", "not found")])
    if e["rejected"]:
        r = e["rejected"]
        lines.append(
            f"REJECTED at node '{r['node']}' ({r['stage']}): reason={r['reason']} detail={r['detail']}"
        )
    else:
        lines.append(f"KEPT in outputs: {', '.join(e['outputs']) or '(sink nodes)'}")
    lines.append("path:")
    for p in e["path"]:
        sc = ", ".join(f"{k}={v}" for k, v in p["scores"].items())
        lines.append(f"  {p['status']:>8}  {p['node']} ({p['stage']}){'  ' + sc if sc else ''}")
    for key, val in e.items():  # what the stages added (explain_row)
        if key in _BASE_KEYS or val is None:
            continue
        if isinstance(val, dict):
            facts = [f"{k}={_fact(v)}" for k, v in val.items() if v is not None and v != [] and v != ""]
            lines.append(f"{key}: " + (" ".join(facts) or "-"))
        else:
            lines.append(f"{key}: {_fact(val)}")
    return "\n".join(lines)
