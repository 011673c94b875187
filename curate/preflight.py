"""Preflight: does every path a valid spec names exist (or can it be written) right now?

:func:`validate_spec` checks a spec's shape; :func:`preflight` checks it against the
filesystem, cheaply enough to run on a large corpus before anything starts:

* every input path or glob matches at least one file (files are listed and counted,
  never opened; ``s3://`` and other fsspec URLs are listed too);
* every read-path stage parameter (the ``ReadPath`` / ``ReadGlob`` markers of
  :mod:`curate.params`) exists and is readable, unless the stage says it may be missing
  (:meth:`curate.stage.Stage.optional_read_paths`) or an upstream node writes it;
* every local write path (outputs, ``WritePath`` parameters, the job directory) has a
  nearest existing parent that is a writable directory. Object-store write paths are not
  checked: only a write would tell.

Problems are :class:`curate.spec.Problem` objects, by node, like the spec's own.
"""

from __future__ import annotations

import difflib
import glob as globlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curate.params import PathParam
from curate.spec import PipelineSpec, Problem, SpecError, build_stage
from curate.spec_paths import SpecPath, spec_paths

__all__ = ["PreflightError", "PreflightReport", "check_preflight", "preflight"]


class PreflightError(SpecError):
    """A valid spec names paths that are missing, unreadable or unwritable."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        ValueError.__init__(self, "preflight failed (paths the spec names):\n"
                            + "\n".join(f"  - {p}" for p in problems))


@dataclass
class PreflightReport:
    """What a preflight found: problems by node, and how many files each input matched."""

    problems: list[Problem] = field(default_factory=list)
    input_files: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems

    def raise_for_problems(self) -> None:
        if self.problems:
            raise PreflightError(self.problems)


def check_preflight(ps: PipelineSpec, *, job_dir: str | Path | None = None) -> PreflightReport:
    """:func:`preflight`, raising :class:`PreflightError` when it finds a problem."""
    rep = preflight(ps, job_dir=job_dir)
    rep.raise_for_problems()
    return rep


def preflight(ps: PipelineSpec, *, job_dir: str | Path | None = None) -> PreflightReport:
    """Check every path of a validated spec (and ``job_dir``, if given) against the
    filesystem. Never raises for a problem with a path: it is reported."""
    rep = PreflightReport()
    spec = ps.model_dump(mode="json")
    stages = {n.id: build_stage(n, ps.seed) for n in ps.nodes}
    produced = _upstream_writes(ps, stages)
    for sp in spec_paths(spec):
        field_name = _field(sp)
        if sp.is_input:
            n, problem = _count_files(sp.value, directory_of_parquet=True)
            rep.input_files[sp.node or ""] = rep.input_files.get(sp.node or "", 0) + n
        elif sp.kind.access == "read":
            st = stages.get(sp.node or "")
            if st is not None and (_is_node_ref(sp.kind, sp.value, st) or sp.value in st.optional_read_paths()):
                continue
            if _covered(sp.value, produced.get(sp.node or "", [])):
                continue
            problem = _count_files(sp.value)[1] if sp.kind.glob else _readable(sp.value)
        else:
            problem = _writable(sp.value, directory=sp.keys[0] == "outputs")
        if problem:
            rep.problems.append(Problem(node=sp.node, field=field_name, message=problem))
    if job_dir is not None:
        problem = _writable(str(job_dir), directory=True)
        if problem:
            rep.problems.append(Problem(node=None, field="job_dir", message=problem))
    return rep


def _field(sp: SpecPath) -> str:
    """The field a problem names: ``path`` for inputs/outputs, ``params.x`` for stages."""
    if sp.keys[0] == "nodes":
        return sp.where.split(".", 2)[2]
    return "path" if len(sp.keys) == 3 else f"path[{sp.keys[3]}]"


def _is_node_ref(kind: PathParam, value: str, stage: Any) -> bool:
    return kind.node_ref and value in stage.extra_inputs()


# -- what upstream nodes write ------------------------------------------------------------------
def _upstream_writes(ps: PipelineSpec, stages: dict[str, Any]) -> dict[str, list[str]]:
    """node id -> write-path parameter values of the nodes upstream of it (their files
    appear while the job runs, so a read of them need not exist before it starts)."""
    spec = ps.model_dump(mode="json")
    writes: dict[str, list[str]] = {}
    for sp in spec_paths(spec):
        if sp.keys[0] == "nodes" and sp.kind.access == "write" and sp.node:
            writes.setdefault(sp.node, []).append(sp.value)
    parents = {n.id: list(n.inputs) + list(stages[n.id].extra_inputs()) for n in ps.nodes}
    out: dict[str, list[str]] = {}
    for nid, direct in parents.items():
        seen: set[str] = set()
        todo = list(direct)
        while todo:
            u = todo.pop()
            if u in seen or u == nid:
                continue
            seen.add(u)
            todo += parents.get(u, [])
        out[nid] = [w for u in sorted(seen) for w in writes.get(u, [])]
    return out


def _covered(path: str, writes: list[str]) -> bool:
    """``path`` is one of ``writes`` or lies under one."""
    for w in writes:
        if _is_uri(path) or _is_uri(w):
            if path == w or path.startswith(w.rstrip("/") + "/"):
                return True
        elif Path(path).resolve().is_relative_to(Path(w).resolve()):
            return True
    return False


# -- reading ------------------------------------------------------------------------------------
def _is_uri(p: str) -> bool:
    return "://" in p


def _has_glob(p: str) -> bool:
    return any(c in p for c in "*?[")


def _count_files(path: str, directory_of_parquet: bool = False) -> tuple[int, str | None]:
    """Files a path, directory or glob matches (listed, not opened) and the problem, if
    none does. A directory counts its ``*.parquet`` files when ``directory_of_parquet``."""
    if _is_uri(path):
        return _count_remote(path, directory_of_parquet)
    if _has_glob(path):
        n = sum(1 for f in globlib.iglob(path, recursive=True) if os.path.isfile(f))
        return n, None if n else f"no files match '{path}'{_missing_hint(_fixed_prefix(path), True)}"
    p = Path(path)
    if p.is_dir():
        if not directory_of_parquet:
            return 1, _unreadable(p)
        n = sum(1 for _ in p.rglob("*.parquet"))
        return n, None if n else f"directory '{path}' holds no .parquet files"
    problem = _readable(path)
    return (0 if problem else 1), problem


def _count_remote(path: str, directory_of_parquet: bool) -> tuple[int, str | None]:
    import fsspec

    try:
        fs, fpath = fsspec.core.url_to_fs(path)
        if _has_glob(path):
            n = len(fs.glob(fpath))
        elif fs.isdir(fpath):
            n = len([f for f in fs.find(fpath) if f.endswith(".parquet") or not directory_of_parquet])
        else:
            n = 1 if fs.exists(fpath) else 0
    except Exception as e:  # noqa: BLE001 - credentials, endpoint, protocol: all say the same to the user
        return 0, f"cannot list '{path}': {type(e).__name__}: {e}"
    return n, None if n else f"no objects match '{path}'"


def _readable(path: str) -> str | None:
    """The problem with reading a file or directory, or None."""
    if _is_uri(path):
        return _count_remote(path, False)[1]
    p = Path(path)
    if not p.exists():
        kind = "directory" if path.endswith("/") else "file"
        return f"{kind} not found: '{path}'{_missing_hint(path)}"
    return _unreadable(p)


def _unreadable(p: Path) -> str | None:
    mode = os.R_OK | (os.X_OK if p.is_dir() else 0)
    return None if os.access(p, mode) else f"'{p}' is not readable (permissions)"


def _fixed_prefix(path: str) -> str:
    """The part of a glob before its first wildcard segment."""
    parts = path.split("/")
    fixed = []
    for part in parts:
        if _has_glob(part):
            break
        fixed.append(part)
    return "/".join(fixed) or "."


def _missing_hint(path: str, is_dir: bool = False) -> str:
    """'; directory X does not exist (did you mean Y?)' for the first missing component of
    ``path`` (a directory when ``is_dir``), from one listing of its nearest existing parent
    ('' when it exists)."""
    p = Path(path)
    missing = None
    while not p.exists():
        missing, p = p, p.parent
        if p == missing:
            return ""
    if missing is None:
        return ""
    try:
        names = [c.name for c in p.iterdir()]
    except OSError:
        names = []
    close = difflib.get_close_matches(missing.name, names, n=1)
    what = "directory" if is_dir or missing != Path(path) else "it"
    hint = f"; {what} '{missing}' does not exist" if what == "directory" else ""
    if close:
        hint += f" (did you mean '{p / close[0]}'?)" if hint else f"; did you mean '{p / close[0]}'?"
    return hint


# -- writing ------------------------------------------------------------------------------------
def _writable(path: str, directory: bool) -> str | None:
    """The problem with creating or writing ``path`` locally, or None (URIs: None)."""
    if _is_uri(path):
        return None
    p = Path(path).absolute()
    if p.exists():
        if directory and not p.is_dir():
            return f"'{path}' exists and is not a directory"
        mode = os.W_OK | (os.X_OK if p.is_dir() else 0)
        return None if os.access(p, mode) else f"'{path}' is not writable (permissions)"
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        return f"cannot create '{path}': '{parent}' is a file, not a directory"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"cannot create '{path}': directory '{parent}' is not writable (permissions)"
    return None
