"""The stop deadline (streams/shutdown.py) in a real child process: it ends a stop that hangs, says why, and
does not hold up one that ends by itself."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

from streams.shutdown import EX_TEMPFAIL

REPO = Path(__file__).resolve().parents[2]


def run_child(body: str, timeout: float = 30.0) -> tuple[subprocess.CompletedProcess[str], float]:
    code = textwrap.dedent(
        """
        import logging, sys, time
        logging.basicConfig(stream=sys.stderr, level=logging.INFO)
        from streams.shutdown import ShutdownDeadline
        """
    ) + textwrap.dedent(body)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=timeout
    )
    return done, time.monotonic() - started


def test_a_stop_that_hangs_exits_75_at_the_deadline_saying_why() -> None:
    done, _ = run_child(
        """
        deadline = ShutdownDeadline(0.5, waiting_for=lambda: "the broker is away")
        began = time.monotonic()
        deadline.start()
        time.sleep(0.3)
        deadline.start()  # a second signal: the deadline still counts from the first
        time.sleep(20)  # a stop that never ends
        """
    )
    assert done.returncode == EX_TEMPFAIL, done.stderr
    assert "still stopping" in done.stderr and ": the broker is away; exiting 75" in done.stderr
    seconds = float(done.stderr.split("still stopping ")[1].split(" s after")[0])
    assert 0.5 <= seconds < 0.8  # from the first start, not the second


def test_a_stop_that_ends_in_time_is_not_held_up_nor_ended() -> None:
    done, elapsed = run_child(
        """
        ShutdownDeadline(10.0).start()
        time.sleep(0.2)
        print("done", flush=True)
        """
    )
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr
    assert "still stopping" not in done.stderr
    assert elapsed < 8.0  # the deadline's thread is a daemon: the process did not wait 10 s for it
