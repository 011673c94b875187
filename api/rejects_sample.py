"""A sample of a job's rejected documents, read from its ``rejects/<node>/*.parquet``."""

from __future__ import annotations

from typing import Any

from curate import jobfs


def sample_rejects(
    job_dir: jobfs.JobPath, reason: str | None, node: str | None, limit: int, max_text: int = 2000
) -> dict[str, Any]:
    """Up to ``limit`` rejected rows from ``job_dir/rejects/*/*.parquet``, plus reason counts."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    root = job_dir / "rejects"
    files = sorted(root.glob("*/*.parquet")) if root.is_dir() else []
    if node:
        files = [f for f in files if f.parent.name == node]
    items: list[dict] = []
    reasons: dict[str, int] = {}
    for f in files:
        try:
            t = pq.read_table(str(f))
        except (OSError, pa.ArrowException):  # being written, or corrupt: not part of a sample
            continue
        if "reason" in t.column_names:
            for r, n in zip(*[x.to_pylist() for x in pc.value_counts(t["reason"]).flatten()]):
                reasons[str(r)] = reasons.get(str(r), 0) + int(n)
            if reason is not None:
                t = t.filter(pc.equal(t["reason"], reason))
        elif reason is not None:
            continue
        if len(items) < limit and t.num_rows:
            for row in t.slice(0, limit - len(items)).to_pylist():
                row = {
                    k: (v[:max_text] + "…" if isinstance(v, str) and len(v) > max_text else v)
                    for k, v in row.items()
                }
                row.setdefault("node", f.parent.name)
                items.append(_jsonable(row))
    return {"items": items, "count": len(items), "reasons": reasons}


def _jsonable(row: dict) -> dict:
    out = {}
    for k, v in row.items():
        if isinstance(v, bytes):
            v = v.decode("utf-8", "replace")
        elif not isinstance(v, (str, int, float, bool, type(None), list, dict)):
            v = str(v)
        out[k] = v
    return out
