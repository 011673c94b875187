"""Every path a spec names: input globs, output directories and path-typed stage params.

Generic code that must know a spec's paths (the service's data-root sandbox and its
relative-path resolution, ``curate validate``'s preflight) walks this list. Stage
parameters come from each stage's ``Params`` markers (:mod:`curate.params`), never from
parameter names.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from curate.params import PathParam, ReadGlob, WritePath, param_paths
from curate.registry import get_stage_class


@dataclass(frozen=True)
class SpecPath:
    """One path in a spec dict: a readable name, its key path in the dict, its value and
    how it is used."""

    where: str  # e.g. "inputs.web.path", "nodes.ppl.params.model"
    keys: tuple[str | int, ...]
    value: str
    kind: PathParam
    node: str | None = None  # node id, input or output name the path belongs to

    @property
    def is_input(self) -> bool:
        return self.keys[0] == "inputs"


def spec_paths(spec: dict[str, Any]) -> Iterator[SpecPath]:
    """Every path-valued field of a (not yet validated) spec dict. Nodes with an unknown
    stage are skipped (validation reports them)."""
    inputs, outputs, nodes = spec.get("inputs"), spec.get("outputs"), spec.get("nodes")
    for name, inp in inputs.items() if isinstance(inputs, dict) else ():
        if not isinstance(inp, dict):
            continue
        p = inp.get("path")
        if isinstance(p, str):
            yield SpecPath(f"inputs.{name}.path", ("inputs", name, "path"), p, ReadGlob, name)
        elif isinstance(p, list):
            for i, x in enumerate(p):
                if isinstance(x, str):
                    yield SpecPath(f"inputs.{name}.path[{i}]", ("inputs", name, "path", i), x, ReadGlob, name)
    for name, out in outputs.items() if isinstance(outputs, dict) else ():
        if isinstance(out, dict) and isinstance(out.get("path"), str):
            yield SpecPath(f"outputs.{name}.path", ("outputs", name, "path"), out["path"], WritePath, name)
    node_list = nodes if isinstance(nodes, list) else []
    ids = {n["id"] for n in node_list if isinstance(n, dict) and isinstance(n.get("id"), str)}
    ids |= {k for k in (inputs if isinstance(inputs, dict) else ()) if isinstance(k, str)}
    for i, node in enumerate(node_list):
        if not isinstance(node, dict) or not isinstance(node.get("params"), dict):
            continue
        try:
            cls = get_stage_class(str(node.get("stage")))
        except KeyError:
            continue
        nid = node.get("id", i)
        for pp in param_paths(cls.Params, node["params"], ids):
            yield SpecPath(f"nodes.{nid}.params.{pp.label}", ("nodes", i, "params", *pp.keys), pp.value, pp.kind,
                           str(nid))


def set_spec_value(spec: dict[str, Any], keys: tuple[str | int, ...], value: Any) -> None:
    """Set ``spec[k0][k1]...`` to ``value``."""
    d: Any = spec
    for k in keys[:-1]:
        d = d[k]
    d[keys[-1]] = value
