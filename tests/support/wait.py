"""Deadline-based polling for tests: use :func:`wait_until` instead of fixed sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float,
    interval: float = 0.05,
    message: str | Callable[[], object] | None = None,
    ignore: tuple[type[Exception], ...] = (),
) -> T:
    """Call ``predicate`` every ``interval`` seconds until it returns a truthy value, and return that value.

    Exceptions listed in ``ignore`` count as "not yet". After ``timeout`` seconds an ``AssertionError`` is
    raised with ``message`` (a string, or a callable evaluated at failure time to describe the state), the
    last value returned and the last ignored exception.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    last_exc: Exception | None = None
    while True:
        try:
            value = predicate()
        except ignore as exc:
            last_exc = exc
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    detail = message() if callable(message) else message
    parts = [f"condition not met within {timeout}s", f"last value: {last!r}"]
    if detail is not None:
        parts.insert(1, str(detail))
    if last_exc is not None:
        parts.append(f"last exception: {last_exc!r}")
    raise AssertionError("; ".join(parts))
