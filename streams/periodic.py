"""A function called every few seconds from a daemon thread, outside Faust's event loop."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("convowatch.periodic")


class Periodic:
    """Calls ``tick`` every ``interval`` seconds from a daemon thread named ``name`` until :meth:`stop`.

    A tick that raises is logged (debug: monitors fail while the broker is away, and report that
    themselves) and the next one runs on time: a monitor thread must outlive the outages it reports.
    """

    def __init__(self, interval: float, name: str, tick: Callable[[], object]) -> None:
        self.interval = interval
        self.tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> Periodic:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for a stopped timer's thread to end; whether it has."""
        if self._thread.is_alive():
            self._thread.join(timeout)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.tick()
            except Exception:
                log.debug("%s: tick failed", self._thread.name, exc_info=True)
