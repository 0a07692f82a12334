"""Shared helpers for benchmarks: a private real broker, a real worker, percentiles, output."""

from __future__ import annotations

import json
import math
import platform
import statistics
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def quiet_gc() -> None:
    """Keep the load generator's own garbage collector from pausing it: freeze what exists (the generated
    records) out of collection and collect young objects rarely, as the worker does (``streams.cli.tune_gc``).
    A default-tuned harness holding a few hundred thousand records paused for up to 0.6 s per full
    collection while it offered load and timed outputs: latency it then charged to the worker."""
    import gc

    gc.collect()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)


@contextmanager
def role_workers(
    bootstrap: str, env: dict[str, str], roles: str, logdir: Path, prefix: str = ""
) -> Iterator[Any]:
    """Started ``convowatch worker`` processes for ``roles``: "all" (one worker) or "split" (a join and an
    aggregate worker), logging to ``logdir/<prefix><role>.log``; every one started is stopped on exit. The
    first reads the inputs."""
    from tests.support.worker import WorkerProcess

    workers: list[Any] = []
    try:
        for role in ["join", "aggregate"] if roles == "split" else ["all"]:
            log_path = logdir / f"{prefix}{role}.log"
            workers.append(WorkerProcess(bootstrap, env | {"CONVOWATCH_ROLE": role}, log_path).start())
        yield workers
    finally:
        for worker in workers:
            worker.stop()


def start_reader(consume: Any, ready: Any, producer: Any, timeout: float, settle: float) -> Any:
    """Start the output reader ``consume`` in a daemon thread; serve ``producer``'s callbacks until the
    reader's consumer is assigned (``ready`` set), then ``settle`` seconds more for it to resolve its start
    offsets before the first output arrives."""
    import threading
    import time

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    deadline = time.monotonic() + timeout
    while not ready.is_set():
        producer.poll(0.1)
        if time.monotonic() > deadline:
            raise RuntimeError(f"latency reader was not assigned in {timeout:g} s")
    time.sleep(settle)
    return reader


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), math.ceil(q / 100 * len(ordered) - 1e-9)))  # round() rounds half even
    return ordered[rank - 1]


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def emit(result: dict[str, Any], as_json: bool, table: list[tuple[str, str]]) -> None:
    """Print a human table, or the JSON result."""
    if as_json:
        print(json.dumps(result, indent=2, sort_keys=True))
        return
    width = max(len(k) for k, _ in table)
    for key, value in table:
        print(f"{key:<{width}}  {value}")


def mean(values: Sequence[float]) -> float:
    return statistics.fmean(values) if values else float("nan")
