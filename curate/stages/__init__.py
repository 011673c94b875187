"""Built-in stages. Classes are importable by name, e.g. ``curate.stages.LengthFilter``."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    from curate.registry import _BUILTIN

    import importlib

    for ref in _BUILTIN:
        mod, cls = ref.split(":")
        if cls == name:
            return getattr(importlib.import_module(mod), cls)
    raise AttributeError(f"curate.stages has no stage class '{name}'")
