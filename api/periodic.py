"""A daemon thread that calls ``tick()`` every ``interval`` seconds until stopped (shared by
the job supervisor and the scheduler)."""

from __future__ import annotations

import logging
import threading

log = logging.getLogger("curate.api")


class Periodic:
    """Mixin: ``start()`` runs ``tick()`` on a daemon thread every ``_interval()`` seconds;
    an exception in one tick is logged and the next tick still runs."""

    _thread_name = "curate-periodic"

    def _init_periodic(self) -> None:
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def tick(self) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def _interval(self) -> float:  # pragma: no cover - interface
        raise NotImplementedError

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # pragma: no cover - keep going whatever happens
                log.exception("%s tick failed", self._thread_name)
            self._stop.wait(self._interval())
