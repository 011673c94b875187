"""Loaded barrier states, once per worker process.

A barrier's ``load(state)`` (a decision table, fitted weights...) runs once per worker
and fit; every later shard of the step on that worker reuses it. Entries are keyed by
node id and the fit's token (a fresh token per fit, recorded in ``state.json``), so a
refit in the same job directory, or another job's node of the same name, never sees a
stale entry. The cache holds a few entries: a worker runs one step at a time.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from curate.stage import BarrierStage

MAX_ENTRIES = 4
_LOADED: OrderedDict[tuple[str, str], Any] = OrderedDict()
_LOCK = threading.Lock()


def loaded_state(stage: BarrierStage, token: str, state: dict[str, Any]) -> Any:
    """``stage.load(state)``, computed once per (node, fit token) in this process."""
    key = (stage.node_id, token)
    with _LOCK:
        if key in _LOADED:
            _LOADED.move_to_end(key)
            return _LOADED[key]
    loaded = stage.load(state)  # outside the lock: loading may take a while
    with _LOCK:
        _LOADED[key] = loaded
        while len(_LOADED) > MAX_ENTRIES:
            _LOADED.popitem(last=False)
    return loaded


def clear() -> None:
    """Forget every loaded state (tests)."""
    with _LOCK:
        _LOADED.clear()
