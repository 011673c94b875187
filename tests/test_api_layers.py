"""The service's layering, read from its source: no import cycles inside ``api/``, and no
import of stage internals (the service talks to the registry, the spec and ``workers``)."""

from __future__ import annotations

import ast
from pathlib import Path

API = Path(__file__).resolve().parents[1] / "api"
STAGE_INTERNALS = ("curate.stages", "curate.text")


def _module(path: Path) -> str:
    parts = path.relative_to(API.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in sorted(API.rglob("*.py"))}


def _imports(path: Path) -> set[str]:
    """Every module an api file imports, anywhere in it (top level, functions, TYPE_CHECKING);
    ``from pkg import name`` counts as ``pkg.name`` when that is a module."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
            out.update(f"{node.module}.{a.name}" for a in node.names)
    return out


def test_api_imports_no_stage_internals():
    bad = {
        mod: sorted(i for i in _imports(p) if i.startswith(STAGE_INTERNALS))
        for mod, p in MODULES.items()
    }
    assert {m: i for m, i in bad.items() if i} == {}


def test_no_import_cycles_in_api():
    graph = {mod: sorted(i for i in _imports(p) if i in MODULES and i != mod) for mod, p in MODULES.items()}
    assert "api.routes.jobs" in graph and "api.service" in graph["api.routes.jobs"]
    done: set[str] = set()

    def visit(mod: str, stack: list[str]) -> None:
        if mod in stack:
            raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(mod) :] + [mod]))
        if mod in done:
            return
        for dep in graph[mod]:
            visit(dep, stack + [mod])
        done.add(mod)

    for mod in graph:
        visit(mod, [])
