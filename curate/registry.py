"""The stage catalogue: stage name -> class.

Stages are listed explicitly (no metaclass magic). Specs can name only these stages,
never arbitrary Python.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from curate.stage import Stage

# "module:Class" for every built-in stage. Keep sorted by module.
_BUILTIN = [
    "curate.stages.basic:LengthFilter",
    "curate.stages.basic:Sample",
    "curate.stages.basic:ThresholdFilter",
    "curate.stages.basic:Union",
    "curate.stages.dsir_resample:DsirResample",
    "curate.stages.exact_dedup:ExactDedup",
    "curate.stages.fasttext_score:FastTextScore",
    "curate.stages.heuristic_filter:HeuristicFilter",
    "curate.stages.language_id:LanguageId",
    "curate.stages.minhash_dedup:MinHashDedup",
    "curate.stages.mix:Mix",
    "curate.stages.perplexity:PerplexityFilter",
    "curate.stages.perplexity:PerplexityScore",
    "curate.stages.quality_signals:QualitySignals",
    "curate.stages.select_top:SelectTop",
]

_CACHE: dict[str, type["Stage"]] | None = None


def _load() -> dict[str, type["Stage"]]:
    global _CACHE
    if _CACHE is None:
        out: dict[str, type[Stage]] = {}
        for ref in _BUILTIN:
            mod, cls = ref.split(":")
            klass = getattr(importlib.import_module(mod), cls)
            out[klass.name] = klass
        _CACHE = dict(sorted(out.items()))
    return _CACHE


def register_stage(cls: type["Stage"]) -> type["Stage"]:
    """Add a stage class to this process's catalogue (for code that embeds curate, and
    tests). Specs still name only registered stages; the service registers nothing, and
    executors on other processes see only the built-in list."""
    cat = _load()
    if cls.name in cat and cat[cls.name] is not cls:
        raise ValueError(f"a stage named '{cls.name}' is already registered ({cat[cls.name].__qualname__})")
    cat[cls.name] = cls
    return cls


def unregister_stage(name: str) -> None:
    """Remove a stage added with :func:`register_stage` (built-ins come back on reload)."""
    _load().pop(name, None)


def stage_names() -> list[str]:
    return list(_load())


def get_stage_class(name: str) -> type["Stage"]:
    """The class registered under ``name``; ``KeyError`` if there is none."""
    return _load()[name]


def catalogue() -> list[dict]:
    """Every stage with its kind, docs and JSON schema (the ``curate stages`` output)."""
    return [cls.catalogue_entry() for cls in _load().values()]
