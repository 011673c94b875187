"""Small spec builders and file counters shared by the driver tests."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest


def one_node_spec(inp: str, out: str, node: dict) -> dict:
    """Input ``docs`` at ``inp`` -> ``node`` -> output ``o`` at ``out``."""
    return {"inputs": {"docs": {"path": inp}}, "nodes": [node], "outputs": {"o": {"node": node["id"], "path": out}}}


def validation_problems(spec: dict) -> list[str]:
    """The problems validate_spec reports (it must reject ``spec``)."""
    from curate.spec import SpecError, validate_spec

    with pytest.raises(SpecError) as ei:
        validate_spec(spec)
    return [str(p) for p in ei.value.problems]


def part_rows(d: Path) -> int:
    """Rows in every part file under ``d`` (footers only)."""
    return sum(pq.ParquetFile(f).metadata.num_rows for f in d.rglob("part-*.parquet"))


def two_inputs(tmp_path: Path, a: pa.Table, b: pa.Table) -> dict:
    """Inputs ``a`` (domain web) and ``b`` joined by a ``union`` node ``u``."""
    for d, t in (("a", a), ("b", b)):
        (tmp_path / d).mkdir()
        pq.write_table(t, tmp_path / d / "x.parquet")
    return {
        "inputs": {"a": {"path": str(tmp_path / "a/*.parquet"), "domain": "web"}, "b": {"path": str(tmp_path / "b/*.parquet")}},
        "nodes": [{"id": "u", "stage": "union", "inputs": ["a", "b"]}],
        "outputs": {"o": {"node": "u", "path": str(tmp_path / "out")}},
    }
