"""The layers hold by construction: the import-linter contracts in pyproject.toml pass, they
catch a planted violation (an import hidden inside a function), and no module anywhere takes
part in an import cycle."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("curate", "workers", "api", "cli")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint(cwd: Path, env_path: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(cwd / "pyproject.toml"), "--no-cache"],
        cwd=cwd, capture_output=True, text=True, env={"PYTHONPATH": env_path, "PATH": "/usr/bin:/bin"},
    )


def test_contracts_pass_on_the_repository():
    r = _lint(ROOT, str(ROOT))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 broken" in r.stdout


@pytest.mark.parametrize(
    "planted, contract",
    [
        ("def f():\n    import workers.job_files\n", "layers"),
        ("def f():\n    import ray\n", "the library imports no executor"),
    ],
)
def test_contracts_catch_a_lazy_import(tmp_path, planted, contract):
    """A copy of the tree with one violation planted inside a function body fails lint-imports."""
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, tmp_path / pkg, ignore=shutil.ignore_patterns("__pycache__", "data"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    (tmp_path / "curate" / "planted_violation.py").write_text(planted)
    r = _lint(tmp_path, f"{tmp_path}:{':'.join(sys.path[1:])}")
    assert r.returncode != 0, r.stdout
    broken = [line for line in r.stdout.splitlines() if line.endswith("BROKEN")]
    assert any(contract in line for line in broken), r.stdout
    assert "curate.planted_violation" in r.stdout


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    adj = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in sorted(graph.modules)}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    for root in adj:
        if root in index:
            continue
        work = [(root, iter(adj[root]))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(adj.get(nxt, []))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                comp = []
                while True:
                    m = stack.pop()
                    on_stack.discard(m)
                    comp.append(m)
                    if m == node:
                        break
                if len(comp) > 1:
                    found.append(sorted(comp))
    return found


def test_no_import_cycles_anywhere():
    """Runtime imports only: an annotation-only import under TYPE_CHECKING cannot form a cycle."""
    graph = grimp.build_graph(*PACKAGES, exclude_type_checking_imports=True)
    assert "workers.job_files" in graph.modules and "cli.main" in graph.modules
    assert _cycles(graph) == []


def test_cycle_finder_finds_a_cycle():
    graph = grimp.ImportGraph()
    for a, b in (("p.a", "p.b"), ("p.b", "p.c"), ("p.c", "p.a"), ("p.c", "p.d")):
        graph.add_import(importer=a, imported=b)
    assert _cycles(graph) == [["p.a", "p.b", "p.c"]]
