"""Read-only access to a finished (or failed) job directory, for the report and lineage.

Everything streams: Parquet files are opened one at a time with column projection, and
lookups by id use ``pyarrow.dataset`` filters, so a job with millions of documents is
never loaded into memory. See docs/architecture.md for the layout.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate import jobfs, schema

if TYPE_CHECKING:  # pragma: no cover
    from curate.stage import Stage


def _read_json(path: jobfs.JobPath) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class JobData:
    """A job directory: its JSON records and its Parquet node outputs and rejects."""

    def __init__(self, job_dir: str | Path | jobfs.RemotePath):
        self.dir = jobfs.path(job_dir)
        if not self.dir.is_dir():
            raise FileNotFoundError(f"job directory {self.dir} does not exist")
        self._stages: dict[str, Stage | None] = {}

    @cached_property
    def stats(self) -> dict[str, Any]:
        return _read_json(self.dir / "stats.json") or {"job": {}, "nodes": {}, "outputs": {}}

    @cached_property
    def spec(self) -> dict[str, Any]:
        return _read_json(self.dir / "spec.json") or {}

    @cached_property
    def plan(self) -> dict[str, Any]:
        return _read_json(self.dir / "plan.json") or {}

    @property
    def nodes(self) -> dict[str, dict[str, Any]]:
        return self.stats.get("nodes") or {}

    @cached_property
    def node_params(self) -> dict[str, dict[str, Any]]:
        """Spec params of every DAG node (``{}`` for inputs)."""
        return {n["id"]: n.get("params") or {} for n in self.spec.get("nodes", []) if "id" in n}

    @cached_property
    def order(self) -> list[str]:
        """Node ids in topological order (inputs first; ties keep the stats order)."""
        ins = {k: list(v.get("inputs") or []) for k, v in self.nodes.items()}
        for n in self.spec.get("nodes", []):
            ins.setdefault(n["id"], list(n.get("inputs") or []))
        for i in self.spec.get("inputs", {}):
            ins.setdefault(i, [])
        done: list[str] = []
        seen: set[str] = set()

        def visit(n: str, stack: tuple = ()) -> None:
            if n in seen or n in stack:
                return
            for p in ins.get(n, []):
                visit(p, stack + (n,))
            seen.add(n)
            done.append(n)

        for n in ins:
            visit(n)
        return done

    def inputs_of(self, node: str) -> list[str]:
        ns = self.nodes.get(node)
        if ns is not None:
            return list(ns.get("inputs") or [])
        for n in self.spec.get("nodes", []):
            if n.get("id") == node:
                return list(n.get("inputs") or [])
        return []

    def stage(self, node: str) -> Stage | None:
        """The configured stage of ``node`` (bound to it), or None for inputs, unknown stages
        and params this curate cannot read (an old job); built once per node."""
        if node not in self._stages:
            from curate.registry import get_stage_class

            try:
                st = get_stage_class(self.stage_of(node))(self.node_params.get(node, {})).bind(node, 0)
            except Exception:  # noqa: BLE001 - an input, an unknown stage or unreadable params
                st = None
            self._stages[node] = st
        return self._stages[node]

    def state_dir(self, node: str) -> jobfs.JobPath:
        """``state/<node>/``: what a barrier's fit persisted (may not exist)."""
        return self.dir / "state" / node

    def stage_of(self, node: str) -> str:
        ns = self.nodes.get(node) or {}
        if ns.get("stage"):
            return ns["stage"]
        for n in self.spec.get("nodes", []):
            if n.get("id") == node:
                return n.get("stage", "")
        return "input" if node in self.spec.get("inputs", {}) else ""

    @cached_property
    def consumers(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {n: [] for n in self.order}
        for n in self.order:
            for i in self.inputs_of(n):
                out.setdefault(i, []).append(n)
        return out

    @property
    def sinks(self) -> list[str]:
        return [n for n in self.order if not self.consumers.get(n)]

    def ancestors(self, node: str) -> list[str]:
        """``node`` and everything upstream of it, in topological order."""
        want: set[str] = set()
        stack = [node]
        while stack:
            n = stack.pop()
            if n not in want:
                want.add(n)
                stack.extend(self.inputs_of(n))
        return [n for n in self.order if n in want]

    def descendants(self, node: str) -> list[str]:
        """Every node downstream of ``node`` (not itself), in topological order."""
        want: set[str] = set()
        stack = list(self.consumers.get(node, []))
        while stack:
            n = stack.pop()
            if n not in want:
                want.add(n)
                stack.extend(self.consumers.get(n, []))
        return [n for n in self.order if n in want]

    # -- files -------------------------------------------------------------------------
    def node_files(self, node: str) -> list[str]:
        """Materialized output parts of ``node``: ``nodes/<node>/`` or a named output of it."""
        files = sorted(str(p) for p in (self.dir / "nodes" / node).glob("part-*.parquet"))
        if files:
            return files
        for name, out in (self.spec.get("outputs") or {}).items():
            if isinstance(out, dict) and out.get("node") == node:
                path = (self.stats.get("outputs") or {}).get(name) or out.get("path")
                if path:
                    p = jobfs.path(path)
                    for cand in (p, self.dir / str(p)) if isinstance(p, Path) and not p.is_absolute() else (p,):
                        got = sorted(str(x) for x in cand.glob("part-*.parquet")) if cand.is_dir() else []
                        if got:
                            return got
        return []

    def reject_files(self, node: str) -> list[str]:
        return sorted(str(p) for p in (self.dir / "rejects" / node).glob("part-*.parquet"))

    def reject_nodes(self) -> list[str]:
        d = self.dir / "rejects"
        found = {p.name for p in d.iterdir() if p.is_dir()} if d.is_dir() else set()
        return [n for n in self.order if n in found] + sorted(found - set(self.order))

    @staticmethod
    def columns(path: str) -> list[str]:
        try:
            return pq.read_schema(path).names
        except (OSError, pa.ArrowInvalid):
            return []

    def files_after(self, node: str) -> list[str]:
        """Files holding every document that passed ``node`` (once per branch): its
        materialized parts, else the rejects of every node downstream plus the downstream
        sinks' outputs."""
        own = self.node_files(node)
        if own:
            return own
        down = self.descendants(node)
        rejected = set(self.reject_nodes())
        files = [f for n in down if n in rejected for f in self.reject_files(n)]
        return files + [f for n in down if n in self.sinks for f in self.node_files(n)]

    def sink_files(self) -> list[tuple[str, str]]:
        """(node, file) for the final outputs of the DAG (every sink node)."""
        return [(n, f) for n in self.sinks for f in self.node_files(n)]

    @staticmethod
    def iter_column_batches(
        path: str,
        columns: Sequence[str],
        originals_only: bool = True,
        filter_expr: Any = None,
        batch_size: int = 65536,
    ) -> Iterator[pa.Table]:
        """Stream ``columns`` of one file; ``originals_only`` drops copies a stage added
        (``schema.COPY_INDEX`` > 0), so each document is counted once."""
        import pyarrow.dataset as ds

        names = JobData.columns(path)
        cols = [c for c in columns if c in names]
        copy = schema.COPY_INDEX
        need_copy = originals_only and copy in names
        read = cols + ([copy] if need_copy and copy not in cols else [])
        expr = filter_expr
        if need_copy:
            e = (pc.field(copy) == 0) | pc.field(copy).is_null()
            expr = e if expr is None else (expr & e)
        dataset = ds.dataset(path, format="parquet")
        for rb in dataset.to_batches(columns=read, filter=expr, batch_size=batch_size):
            if rb.num_rows:
                yield pa.Table.from_batches([rb]).select(cols)

    def find_rows(
        self, files: Sequence[str], expr: Any, fields: Sequence[str], columns: Sequence[str] | None = None
    ) -> pa.Table | None:
        """Rows of ``files`` matching a dataset expression (predicate pushdown; streamed).

        ``fields`` are the columns ``expr`` refers to; files lacking any of them are skipped.
        Row groups are pruned by their statistics, then scanned reading only ``fields``;
        the other columns (e.g. the text) are read only from row groups that hold a match.
        """
        import pyarrow.dataset as ds

        parts = []
        for f in files:
            names = self.columns(f)
            if not set(fields) <= set(names):
                continue
            cols = None if columns is None else [c for c in columns if c in names]
            for frag in ds.dataset(f, format="parquet").get_fragments():
                for rg in frag.split_by_row_group(filter=expr):
                    if not rg.count_rows(filter=expr):
                        continue
                    for rb in rg.to_batches(columns=cols, filter=expr):
                        if rb.num_rows:
                            parts.append(pa.Table.from_batches([rb]))
        if not parts:
            return None
        return pa.concat_tables(parts, promote_options="permissive")
