"""A short-lived cache of rendered read responses, invalidated by any store write."""

from __future__ import annotations

import time
from collections.abc import Callable

from api import store as st


class ReadCache:
    """Rendered responses keyed by request, valid while the store has seen no write and for
    at most ``ttl`` seconds. Many clients polling the same job cost one render per change."""

    def __init__(self, store: st.Store, ttl: float = 1.0, max_entries: int = 2048):
        self.store, self.ttl, self.max_entries = store, ttl, max_entries
        self.entries: dict[tuple, tuple[int, float, bytes]] = {}

    def get(self, key: tuple, render: Callable[[], bytes]) -> bytes:
        """The cached body for ``key``, or ``render()`` (stored under the current generation)."""
        gen, now = self.store.generation, time.monotonic()
        hit = self.entries.get(key)
        if hit is not None and hit[0] == gen and now - hit[1] < self.ttl:
            return hit[2]
        body = render()
        if len(self.entries) >= self.max_entries:
            self.entries.clear()
        self.entries[key] = (gen, now, body)
        return body
