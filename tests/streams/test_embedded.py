"""The embedded transport: ``convowatch_processing_seconds`` counts the pipeline's work only."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.config import Settings
from streams.embedded import BATCH_RECORDS, Record, run_records
from streams.emit import Emit
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from tests.factories import chat_turn, raw

#: What each wait adds to the clock: far more than the pipeline's real work on all the records together.
WAIT_SECONDS = 10.0
RECORDS = 2 * BATCH_RECORDS + 452


class WaitingClock:
    """``time.perf_counter`` plus the seconds the test declares spent waiting, so a wait takes no time."""

    def __init__(self) -> None:
        self.real = time.perf_counter
        self.waited = 0.0

    def __call__(self) -> float:
        return self.real() + self.waited


def _records() -> Iterator[Record]:
    """Chat turns, every other one unreadable (published at once as a dead letter)."""
    for n in range(RECORDS):
        body = raw(chat_turn(turn_id=f"turn-{n:05d}")) if n % 2 else b"{broken"
        yield (0.0, n, Stream.CHAT_TURNS, body, "chats.jsonl", n + 1)


def _run(monkeypatch: pytest.MonkeyPatch, *, wait_for_records: bool) -> CollectorRegistry:
    clock = WaitingClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(), Metrics(registry), batched=True)
    published: list[Emit] = []

    def paced() -> Iterator[Record]:  # the demo's pacing: each record is due WAIT_SECONDS after the last
        for record in _records():
            if wait_for_records:
                clock.waited += WAIT_SECONDS
            yield record

    def publish(emit: Emit) -> None:  # a slow sink
        published.append(emit)
        if not wait_for_records:
            clock.waited += WAIT_SECONDS

    assert run_records(pipeline, paced(), publish) == RECORDS
    assert sum(e.topic == "deadletter" for e in published) == RECORDS // 2  # publish did run
    assert clock.waited >= RECORDS // 2 * WAIT_SECONDS
    return registry


@pytest.mark.parametrize("wait_for_records", [True, False], ids=["waiting-for-records", "slow-publish"])
def test_processing_seconds_leave_out_waits_for_records_and_publishing(monkeypatch, wait_for_records):
    registry = _run(monkeypatch, wait_for_records=wait_for_records)
    count = registry.get_sample_value("convowatch_processing_seconds_count")
    total = registry.get_sample_value("convowatch_processing_seconds_sum")
    assert total is not None and 0 < total < WAIT_SECONDS, total  # the pipeline's real work only
    assert count == RECORDS // BATCH_RECORDS + 1  # full batches, and the end of input closing the last
