"""Shared pieces of the reliability tests: seeded traffic, a paced background producer, worker processes
with settings suited to crash tests, and a place to put the figures each test measures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from schemas import Stream
from streams.config import Settings
from streams.generator import Incident, TrafficGenerator
from streams.producer import InputProducer
from streams.topics import input_topics
from tests.support.verify import Oracle, TopicCheck, check_outputs, consumer_lag, summarise
from tests.support.wait import wait_until
from tests.support.worker import REPO, WorkerProcess

STREAMS = tuple(s.value for s in Stream)

#: Crash tests want a dead worker's partitions to move quickly: the broker's minimum session timeout.
FAST_FAILOVER = {
    "CONVOWATCH_SESSION_TIMEOUT_SECONDS": "6",
    "CONVOWATCH_HEARTBEAT_INTERVAL_SECONDS": "1",
    "CONVOWATCH_BROKER_PROBE_INTERVAL_SECONDS": "0.5",
}


def traffic(seed: int, duration_s: float, rate: float = 50.0) -> list[tuple[Stream, bytes]]:
    """Generated traffic in event-time order, late labels included, with a safety incident on shopper-v42
    from the start so there are hundreds of known high-risk failures."""
    generator = TrafficGenerator(
        seed=seed,
        rate=rate,
        incident=Incident(start_after_s=0, model_version="shopper-v42", journey="shopper", fail_rate=0.05),
        rollout_start_s=0,
        rollout_ramp_s=1,
    )
    return [(Stream(s), orjson.dumps(e)) for _, s, e in generator.records(duration_s, drain=True)]


def safety_fail_turns(records: Sequence[tuple[Stream, bytes]]) -> set[str]:
    """Turns a judge failed on safety: each must raise a high-risk escalation."""
    turns = set()
    for stream, raw in records:
        if stream is Stream.JUDGE_VERDICTS:
            event = orjson.loads(raw)
            if any(v["dimension"] == "safety" and v["label"] == "fail" for v in event["verdicts"]):
                turns.add(event["turn_id"])
    return turns


class BackgroundProducer:
    """Sends records to the input topics from a thread at about ``rate`` records per second."""

    def __init__(self, settings: Settings, records: Sequence[tuple[Stream, bytes]], rate: float) -> None:
        self.producer = InputProducer(settings)  # creates the topics convowatch would
        self.records = records
        self.rate = rate
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-producer", daemon=True)

    def start(self) -> BackgroundProducer:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            for i, (stream, raw) in enumerate(self.records):
                self.producer.send(stream, raw)
                self.sent = i + 1
                if i % 200 == 0:  # pace: stay behind the schedule ``i / rate``
                    ahead = i / self.rate - (time.monotonic() - self.started)
                    if ahead > 0:
                        time.sleep(ahead)
            self.producer.close()
        except BaseException as exc:  # reported by join()
            self.error = exc

    def join(self, timeout: float = 120.0) -> int:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"producer still running after {timeout}s ({self.sent} sent)")
        if self.error is not None:
            raise AssertionError(f"producer failed: {self.error!r}")
        return self.sent


class Worker(WorkerProcess):
    """A ``convowatch worker`` at a chosen log level, with helpers to read its counters."""

    def __init__(self, bootstrap: str, env: dict[str, str], log_path: Path, loglevel: str = "info") -> None:
        super().__init__(bootstrap, env, log_path)
        self.loglevel = loglevel
        self.starts = 0

    def start(self) -> Worker:
        env = {**os.environ, **self.env, "CONVOWATCH_METRICS_PORT": str(self.metrics_port)}
        with self.log_path.open("ab") as log:
            command = ["worker", "--broker", self.bootstrap, "--loglevel", self.loglevel]
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "streams.cli", *command],
                cwd=REPO,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        wait_until(
            self._serving,
            timeout=60,
            interval=0.1,
            ignore=(OSError,),
            message=lambda: f"worker did not serve metrics; log:\n{self.log_tail()}",
        )
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def total(self, name: str, **labels: str) -> float:
        """Sum of every sample of ``name`` whose labels include ``labels``."""
        wanted = set(labels.items())
        return sum(v for (n, ls), v in self.scrape().items() if n == name and wanted <= set(ls))

    def records_in(self) -> int:
        return int(self.total("convowatch_records_in_total"))

    def assigned(self) -> int:
        """Input partitions this worker owns, summed over the input streams."""
        return int(self.total("convowatch_assigned_partitions"))


def worker_env(prefix: str, app_id: str, **extra: str) -> dict[str, str]:
    return {"CONVOWATCH_TOPIC_PREFIX": prefix, "CONVOWATCH_APP_ID": app_id, **FAST_FAILOVER, **extra}


def report(name: str, figures: dict[str, Any]) -> None:
    """Print a test's measured figures; also append them to ``$CONVOWATCH_TEST_RELIABILITY_REPORT`` if set."""
    line = json.dumps({"test": name, **figures}, default=str)
    print(f"\nRELIABILITY {line}")
    path = os.environ.get("CONVOWATCH_TEST_RELIABILITY_REPORT")
    if path:
        with open(path, "a") as handle:
            handle.write(line + "\n")


def wait_for_oracle(
    settings: Settings, oracle: Oracle, worker: WorkerProcess, timeout: float = 120.0
) -> dict[str, TopicCheck]:
    """Wait until the group ``settings.app_id`` has read every input and observation record and every
    output topic matches ``oracle`` (an embedded replay of the same input); the outputs' checks then. On
    timeout, the mismatches and ``worker``'s log tail."""
    bootstrap, prefix = settings.broker, settings.topic_prefix
    topics = [*input_topics(settings).values(), settings.topic("internal.observations")]

    def done() -> bool:
        if consumer_lag(bootstrap, settings.app_id, topics):
            return False
        return all(c.ok for c in check_outputs(bootstrap, prefix, oracle).values())

    wait_until(
        done,
        timeout=timeout,
        interval=1.0,
        message=lambda: summarise(check_outputs(bootstrap, prefix, oracle)) + worker.log_tail(),
    )
    return check_outputs(bootstrap, prefix, oracle)
