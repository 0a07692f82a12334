"""A worker's stop ends in bounded time, whatever Faust waits for.

On SIGTERM Faust finishes the batch in flight, flushes its producer and commits: about a second with the
broker up. With the broker down it waited for ever ("Wait for streams..." behind a batch that cannot be
published, its clients retrying their metadata at about 90% of a core), until the orchestrator's SIGKILL,
or for good where nothing sends one (found on 2026-11-26: 60 s after SIGTERM the worker still ran). So the
stop has a deadline, ``CONVOWATCH_SHUTDOWN_TIMEOUT_SECONDS``: past it the worker says what it was waiting
for and exits :data:`EX_TEMPFAIL`. This loses nothing: what was not committed is read again at the next
start, as after a crash, and the outputs' ids make the replay idempotent (README, Delivery guarantee).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any

import faust

log = logging.getLogger("convowatch.shutdown")

EX_TEMPFAIL = 75  # sysexits.h: temporary failure, the user is invited to retry


class ShutdownDeadline:
    """Exits the process :data:`EX_TEMPFAIL` ``timeout`` seconds after :meth:`start` unless it has exited.

    ``waiting_for`` says, when the deadline passes, what the stop was probably waiting for (None: nothing
    known), e.g. the broker's outage. :meth:`start` is idempotent: the deadline counts from the first call.
    """

    def __init__(self, timeout: float, waiting_for: Callable[[], str | None] = lambda: None) -> None:
        self.timeout = timeout
        self.waiting_for = waiting_for
        self._started: float | None = None
        self._lock = threading.Lock()

    def start(self) -> None:
        with self._lock:
            if self._started is not None:
                return
            self._started = time.monotonic()
        timer = threading.Timer(self.timeout, self._expire)
        timer.name, timer.daemon = "convowatch-shutdown-deadline", True
        timer.start()

    def _expire(self) -> None:
        cause = self.waiting_for()
        log.critical(
            "still stopping %.1f s after the stop began (CONVOWATCH_SHUTDOWN_TIMEOUT_SECONDS %g)%s; exiting "
            "%d. Records not committed are read again at the next start; their outputs keep their ids",
            time.monotonic() - (self._started or 0.0),
            self.timeout,
            f": {cause}" if cause else "",
            EX_TEMPFAIL,
        )
        logging.shutdown()
        os._exit(EX_TEMPFAIL)


class Worker(faust.Worker):
    """A Faust worker whose stop (on a signal, or after its service crashed) is bounded by ``deadline``."""

    def __init__(self, app: Any, *args: Any, deadline: ShutdownDeadline, **kwargs: Any) -> None:
        super().__init__(app, *args, **kwargs)
        self.deadline = deadline

    def _schedule_shutdown(self, signal: signal.Signals) -> None:  # mode: SIGTERM and SIGINT
        self.deadline.start()
        super()._schedule_shutdown(signal)

    def on_worker_shutdown(self) -> None:  # mode: before it stops the services, whatever ended the run
        self.deadline.start()
        super().on_worker_shutdown()
