"""Stage parameters: the base model and typed path parameters.

Every stage has one pydantic ``Params`` model (a :class:`StageParams`). It is the single
source for the spec's keys, API validation, the stage catalogue and the docs.

A parameter that names a file or directory is typed with a :class:`PathParam` marker::

    class MyParams(StageParams):
        model: Annotated[str, ReadPath] = Field(description="fastText model file")
        out: Annotated[str | None, WritePath] = None
        extra: list[Annotated[str, ReadPath]] = []

Generic code (the service's data-root sandbox and relative-path resolution, ``curate
validate``'s preflight) finds every path of a spec from these markers with
:func:`param_paths`; it never guesses from a parameter's name or value. The marker also
shows in the JSON schema as ``"x-curate-path": {"access": ..., ...}``.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict

__all__ = [
    "Annotated",
    "PathParam",
    "ParamPath",
    "ReadGlob",
    "ReadPath",
    "ReadPathOrNode",
    "StageParams",
    "WritePath",
    "param_path_fields",
    "param_paths",
]


class StageParams(BaseModel):
    """Base class of every stage's parameter model. Unknown keys are an error."""

    model_config = ConfigDict(extra="forbid")

    def spec_warnings(self) -> list[str]:
        """Values that are valid but likely a mistake (a key the stage will never match,
        say): validation reports them by node as warnings (``curate validate``,
        ``POST /v1/validate``, the job's ``stats.json``) without refusing the spec."""
        return []


@dataclass(frozen=True)
class PathParam:
    """Marks a parameter whose value is a local path or an object-store URI.

    ``access`` is ``"read"`` (the stage reads it: it must exist before the job starts)
    or ``"write"`` (the stage creates or appends to it). ``glob`` allows glob patterns
    (every match must lie under a data root). ``node_ref`` means the value may instead
    name a DAG node of the spec, in which case it is not a path.
    """

    access: Literal["read", "write"]
    glob: bool = False
    node_ref: bool = False

    def __get_pydantic_json_schema__(self, core_schema: Any, handler: Any) -> dict[str, Any]:
        js = handler(core_schema)
        js = handler.resolve_ref_schema(js) if "$ref" in js else js
        js["x-curate-path"] = {"access": self.access, "glob": self.glob, "node_ref": self.node_ref}
        return js


ReadPath = PathParam("read")
"""A file or directory the stage reads."""
WritePath = PathParam("write")
"""A file or directory the stage writes (or appends to)."""
ReadGlob = PathParam("read", glob=True)
"""A path or glob pattern of files the stage reads."""
ReadPathOrNode = PathParam("read", node_ref=True)
"""A DAG node id, or else a file the stage reads."""


@dataclass(frozen=True)
class ParamPath:
    """One path value found in a node's params: where it is and how it is used."""

    keys: tuple[str | int, ...]  # key path inside ``params`` (e.g. ("models", 0))
    value: str
    kind: PathParam

    @property
    def label(self) -> str:
        """``a.b[0]``-style name of the parameter, for messages."""
        out = ""
        for k in self.keys:
            out += f"[{k}]" if isinstance(k, int) else (f".{k}" if out else str(k))
        return out


# shape of a marked field: how values sit inside the parameter
_Shape = Literal["scalar", "list", "dict"]


def _marker(annotation: Any) -> tuple[PathParam, _Shape] | None:
    """The path marker in a type annotation and where it applies (scalar, list items or
    dict values), or None."""
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        base, *meta = typing.get_args(annotation)
        for m in meta:
            if isinstance(m, PathParam):
                return m, "scalar"
        return _marker(base)
    if origin in (Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None):
                found = _marker(arg)
                if found:
                    return found
        return None
    if origin in (list, tuple, set, frozenset):
        for arg in typing.get_args(annotation):
            found = _marker(arg)
            if found and found[1] == "scalar":
                return found[0], "list"
        return None
    if origin is dict:
        args = typing.get_args(annotation)
        found = _marker(args[1]) if len(args) == 2 else None
        if found and found[1] == "scalar":
            return found[0], "dict"
    return None


def param_path_fields(params_cls: type[BaseModel]) -> dict[str, tuple[PathParam, _Shape]]:
    """Every path-typed field of a params model: name -> (marker, shape)."""
    out: dict[str, tuple[PathParam, _Shape]] = {}
    for name, f in params_cls.model_fields.items():
        found = None
        for m in f.metadata:
            if isinstance(m, PathParam):
                found = (m, "scalar")
        found = found or _marker(f.annotation)
        if found:
            out[f.alias or name] = found
    return out


def param_paths(params_cls: type[BaseModel], params: dict[str, Any], node_ids: Any = ()) -> Iterator[ParamPath]:
    """Every path value in a node's (unvalidated) ``params`` dict, from the model's
    markers. Values that are not strings are skipped (validation reports them); a
    ``node_ref`` value that names one of ``node_ids`` is a node, not a path."""
    if not isinstance(params, dict):
        return
    nodes = set(node_ids)
    for name, (kind, shape) in param_path_fields(params_cls).items():
        v = params.get(name)
        if v is None:
            continue
        if shape == "scalar":
            items: list[tuple[tuple[str | int, ...], Any]] = [((name,), v)]
        elif shape == "list" and isinstance(v, list):
            items = [((name, i), x) for i, x in enumerate(v)]
        elif shape == "dict" and isinstance(v, dict):
            items = [((name, k), x) for k, x in v.items()]
        else:
            items = []
        for keys, x in items:
            if isinstance(x, str) and x and not (kind.node_ref and x in nodes):
                yield ParamPath(keys, x, kind)
