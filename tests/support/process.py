"""Server processes the tests start themselves: wait until they answer, stop their whole process group."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable


def wait_ready(
    proc: subprocess.Popen[bytes],
    url: str,
    timeout: float,
    name: str,
    tail: Callable[[], str],
    error: type[Exception],
) -> None:
    """Poll ``url`` (a ``/-/ready`` endpoint) until it answers 200; raise ``error`` with the log ``tail``
    if the process exits first or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    last = "no answer yet"
    while time.monotonic() < deadline:
        if (code := proc.poll()) is not None:
            raise error(f"{name} exited with code {code} during startup\n{tail()}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
                last = f"HTTP {response.status}"
        except (OSError, urllib.error.URLError) as exc:
            last = repr(exc)
        time.sleep(0.05)
    raise error(f"{name} at {url} not ready after {timeout:.0f}s ({last})\n{tail()}")


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM the process group of ``proc`` (started with ``start_new_session``), then SIGKILL it if still
    alive after ``timeout`` seconds; reap the process."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
        try:
            proc.wait(timeout)
            return
        except subprocess.TimeoutExpired:
            continue
