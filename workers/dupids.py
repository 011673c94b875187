"""Distributed detection of duplicate ids in user-supplied id columns, before any step runs.

``on_duplicate_ids: fail`` fails the job at once, naming them. Under ``warn`` every barrier
must still see unique ids (dedup decisions, top-k cuts and mixing copies are keyed by id),
so each repeat is renamed at ingest: the first occurrence of an id value (in spec input
order, then file order, then row order) keeps it, the k-th repeat becomes ``"<id>#dup<k>"``
(the id column of such an input is read as strings). The counts and examples are in
``stats.json`` (``nodes.<input>.duplicate_ids``) and in the job's warnings.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curate.fit import FitContext
from curate.spec import resolve_input_files
from curate.util import id_hashes
from workers.job_errors import JobFailed


class Job(Protocol):
    """What the duplicate-id checks read of the job driver (:class:`workers.job.Job` is one)."""

    spec: Any
    executor: Any
    job_dir: Any
    skipped: list[dict]
    node_stats: dict[str, dict[str, Any]]
    warnings: list[str]
    id_renames: dict[str, dict[str, dict[int, int]]]


def _id_files(job: Job, input_name: str) -> list[str]:
    """The input's readable files when it carries its own id column, else [] (ids assigned)."""
    inp = job.spec.inputs[input_name]
    files = [f for f in resolve_input_files(inp.path) if f not in {s["path"] for s in job.skipped}]
    try:
        return files if files and inp.id_column in pq.read_schema(files[0]).names else []
    except Exception:
        return []


def _fit_context(job: Job, node_id: str) -> FitContext:
    scratch = job.job_dir / "_scratch" / "dupids"
    return FitContext(runner=job.executor.task_runner(), state_dir=scratch, scratch_dir=scratch, seed=0,
                      node_id=node_id, num_partitions=job.spec.settings.shuffle_partitions)


class _IdMap:
    def __init__(self, column: str):
        self.column = column

    def __call__(self, path: str) -> pa.Table | None:
        try:
            t = pq.read_table(path, columns=[self.column])
        except Exception:
            return None  # bad shards are reported by ingest
        ids = t.column(self.column)
        ids = ids.filter(pc.is_valid(ids))
        return pa.table({"h": pa.array(id_hashes(ids), pa.uint64()), "id": pc.cast(ids, pa.string())})


def _reduce(t: pa.Table) -> pa.Table | None:
    h = t.column("h").to_numpy()
    order = np.argsort(h, kind="stable")
    hs = h[order]
    dup = np.zeros(len(hs), dtype=bool)
    dup[1:] = hs[1:] == hs[:-1]
    if not dup.any():
        return None
    ids = t.column("id").take(pa.array(order[dup]))
    return pa.table({"id": ids})


def find_duplicate_ids(job: Job, input_name: str) -> tuple[int, list[str]] | None:
    """(number of duplicate occurrences, a few examples), or None if ids are assigned."""
    files = _id_files(job, input_name)
    if not files:
        return None
    inp = job.spec.inputs[input_name]
    ctx = _fit_context(job, input_name)
    outs = ctx.shuffle(files, _IdMap(inp.id_column), "h", _reduce, ctx.num_partitions, name=f"dupids-{input_name}")
    count, examples = 0, []
    for o in outs:
        t = pq.read_table(o)
        count += t.num_rows
        examples += t.column("id").to_pylist()[: 10 - len(examples)]
    return count, sorted(set(examples))


class _TaggedIdMap:
    """Shuffle map over ``(path, id column, input index)``: (h, id, input) per row."""

    def __call__(self, src: tuple[str, str, int]) -> pa.Table | None:
        path, column, tag = src
        t = _IdMap(column)(path)
        if t is None or t.num_rows == 0:
            return None
        return t.append_column("input", pa.array(np.full(t.num_rows, tag, dtype=np.int32)))


def _reduce_shared(t: pa.Table) -> pa.Table | None:
    """One row per id value that occurs in more than one input."""
    h = t.column("h").to_numpy()
    tag = t.column("input").to_numpy()
    order = np.lexsort((tag, h))
    hs, ts = h[order], tag[order]
    start = np.ones(len(hs), dtype=bool)
    start[1:] = hs[1:] != hs[:-1]
    group = np.cumsum(start) - 1
    first_tag = ts[np.flatnonzero(start)][group]
    shared = np.unique(group[ts != first_tag])
    if not len(shared):
        return None
    return pa.table({"id": t.column("id").take(pa.array(order[np.flatnonzero(start)[shared]]))})


def find_shared_ids(job: Job, input_names: list[str]) -> tuple[int, list[str]] | None:
    """(number of id values found in more than one input, a few examples), over the inputs
    that carry their own id column; None when fewer than two do."""
    sources: list[tuple[str, str, int]] = []
    for tag, name in enumerate(input_names):
        sources += [(f, job.spec.inputs[name].id_column, tag) for f in _id_files(job, name)]
    if len({s[2] for s in sources}) < 2:
        return None
    ctx = _fit_context(job, "inputs")
    outs = ctx.shuffle(sources, _TaggedIdMap(), "h", _reduce_shared, ctx.num_partitions, name="dupids-shared")
    count, examples = 0, []
    for o in outs:
        t = pq.read_table(o)
        count += t.num_rows
        examples += t.column("id").to_pylist()[: 10 - len(examples)]
    return count, sorted(set(examples))


def check_duplicate_ids(job: Job, read: set[str]) -> None:
    """Detect duplicate ids in user-supplied id columns (assigned ids are unique), before any
    step runs: ``on_duplicate_ids: fail`` fails the job at once naming them; ``warn`` records them."""
    for name in job.spec.inputs:
        if name not in read:
            continue
        dups = find_duplicate_ids(job, name)
        if dups is None:
            continue
        count, examples = dups
        ns = job.node_stats.setdefault(name, {})
        ns["duplicate_ids"] = {"count": count, "examples": examples}
        if count:
            msg = f"input '{name}' has {count} duplicate id value(s), e.g. {examples[:5]}"
            if job.spec.settings.on_duplicate_ids == "fail":
                raise JobFailed(msg)
            ns.setdefault("warnings", []).append(msg)
            job.warnings.append(msg)
    # Ids must also be unique across inputs (e.g. two datasets both numbered from 0).
    names = [n for n in job.spec.inputs if n in read]
    shared = find_shared_ids(job, names) if len(names) > 1 else None
    if shared and shared[0]:
        msg = f"inputs {names} share {shared[0]} id value(s), e.g. {shared[1][:5]}"
        if job.spec.settings.on_duplicate_ids == "fail":
            raise JobFailed(msg)
        job.warnings.append(msg)
    repeated = any((job.node_stats.get(n, {}).get("duplicate_ids") or {}).get("count") for n in names)
    if repeated or (shared and shared[0]):
        job.id_renames = repeat_renames(job, names)
        n = sum(len(rows) for files in job.id_renames.values() for rows in files.values())
        job.warnings.append(f"{n} repeated id occurrence(s) renamed '<id>#dup<k>' so every stage sees unique ids "
                            "(the first occurrence keeps its id; on_duplicate_ids: fail refuses such input)")


class _OccurrenceMap:
    """Shuffle map over ``(input index, path, id column)``: (h, id, input, path, row) per id."""

    def __call__(self, src: tuple[int, str, str]) -> pa.Table | None:
        tag, path, column = src
        try:
            ids = pq.read_table(path, columns=[column]).column(column)
        except Exception:
            return None  # bad shards are reported by ingest
        valid = pc.is_valid(ids).to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(valid)
        if not len(rows):
            return None
        ids = ids.filter(pa.array(valid))
        n = len(rows)
        return pa.table({
            "h": pa.array(id_hashes(ids), pa.uint64()),
            "id": pc.cast(ids, pa.string()),
            "input": pa.array(np.full(n, tag, dtype=np.int32)),
            "path": pa.array([path] * n, pa.string()),
            "row": pa.array(rows.astype(np.int64)),
        })


def _reduce_repeats(t: pa.Table) -> pa.Table | None:
    """Every occurrence after the first of an id value, with its repeat number k >= 1."""
    t = t.take(pc.sort_indices(t, [("h", "ascending"), ("id", "ascending"), ("input", "ascending"),
                                   ("path", "ascending"), ("row", "ascending")]))
    h = t.column("h").to_numpy()
    ids = t.column("id").to_pylist()
    start = np.ones(len(h), dtype=bool)
    start[1:] = (h[1:] != h[:-1]) | np.array([a != b for a, b in zip(ids[1:], ids[:-1])], dtype=bool)
    first = np.maximum.accumulate(np.where(start, np.arange(len(h)), 0))
    k = np.arange(len(h)) - first
    rep = np.flatnonzero(k > 0)
    if not len(rep):
        return None
    out = t.select(["input", "path", "row"]).take(pa.array(rep))
    return out.append_column("k", pa.array(k[rep].astype(np.int64)))


def repeat_renames(job: Job, input_names: list[str]) -> dict[str, dict[str, dict[int, int]]]:
    """input -> file path -> row -> k for every repeated id occurrence (k-th repeat), over
    the inputs that carry their own id column (one id space across inputs); every such
    input has an entry, so all of them read their ids as strings."""
    sources: list[tuple[int, str, str]] = []
    for tag, name in enumerate(input_names):
        sources += [(tag, f, job.spec.inputs[name].id_column) for f in _id_files(job, name)]
    if not sources:
        return {}
    # every input of the id space reads its ids as strings, renamed or not (joins stay typed alike)
    renames: dict[str, dict[str, dict[int, int]]] = {input_names[tag]: {} for tag, _, _ in sources}
    ctx = _fit_context(job, "inputs")
    outs = ctx.shuffle(sources, _OccurrenceMap(), "h", _reduce_repeats, ctx.num_partitions, name="dupids-repeats")
    for o in outs:
        t = pq.read_table(o)
        for tag, path, row, k in zip(*(t.column(c).to_pylist() for c in ("input", "path", "row", "k"))):
            renames.setdefault(input_names[tag], {}).setdefault(path, {})[int(row)] = int(k)
    return renames
