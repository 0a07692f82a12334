"""``convowatch_aggregates{kind}`` on a real broker: a worker counts the aggregates Faust recovered into its
table from the changelog (the counts are kept by the table's store, not by a scan), also once drained (they
are exported on a timer, not only at batches), and after a second worker joined, each counts those of the
partitions it owns (until 2026-11-26 the first kept counting, and holding, those it had created of the
partitions the second took: ``sum by (kind)`` over-counted)."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.emit import SEP
from streams.generator import TrafficGenerator, to_records
from tests.support.broker import KafkaBroker
from tests.support.verify import read_raw
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, produce_records

pytestmark = pytest.mark.kafka


def changelog_kinds(bootstrap: str, topic: str) -> dict[str, int]:
    """Entries by kind that the compacted changelog holds: the last value of each key, tombstones removed."""
    table: dict[str, Any] = {}
    for key, value in read_raw(bootstrap, topic):
        name = orjson.loads(key or b'""')
        if value is None:
            table.pop(name, None)
        else:
            table[name] = value
    return dict(Counter(name.split(SEP, 1)[0] for name in table))


def exported_kinds(worker: WorkerProcess) -> dict[str, int]:
    return {
        dict(labels)["kind"]: int(value)
        for (name, labels), value in worker.scrape().items()
        if name == "convowatch_aggregates"
    }


def drained(worker: WorkerProcess) -> bool:
    lags = [v for (name, _), v in worker.scrape().items() if name == "convowatch_consumer_lag"]
    return bool(lags) and not any(lags)


def test_workers_count_the_aggregates_of_the_partitions_they_own_after_a_scale_out_and_a_takeover(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    bootstrap = kafka_broker.bootstrap
    app_id = unique_name("app")
    env = {
        "CONVOWATCH_TOPIC_PREFIX": unique_name("counts") + ".",
        "CONVOWATCH_APP_ID": app_id,
        "CONVOWATCH_LAG_INTERVAL_SECONDS": "0.5",
    }
    records = itertools.islice(to_records(TrafficGenerator(seed=13, rate=20.0).records(600)), 3000)
    streams = produce_records(bootstrap, env, tmp_path, ((r[2], r[3]) for r in records))

    first = make_worker(bootstrap, env)
    wait_until(lambda: drained(first), timeout=120, interval=0.5, ignore=(OSError,), message=first.log_tail)
    changelog = f"{app_id}-aggregates-changelog"
    everything = changelog_kinds(bootstrap, changelog)
    # drained, the worker gets no batch: the gauge still comes to what it holds (until 2026-11-26 it kept the
    # counts of the last batch at least 10 s after the one before, often the burst's first: 8 conversations)
    wait_until(
        lambda: exported_kinds(first) == everything,
        timeout=30,
        interval=0.5,
        ignore=(OSError,),
        message=lambda: f"{exported_kinds(first)} != {everything}",
    )

    # a second worker joins: the two share the partitions, and each counts the aggregates it holds
    second = make_worker(bootstrap, env)

    def split() -> bool:
        first_kinds, second_kinds = exported_kinds(first), exported_kinds(second)
        return (
            bool(first_kinds)
            and bool(second_kinds)
            and Counter(first_kinds) + Counter(second_kinds) == everything
        )

    wait_until(
        split,
        timeout=90,
        interval=0.5,
        ignore=(OSError,),
        message=lambda: (
            f"{exported_kinds(first)} + {exported_kinds(second)} != {everything}\n"
            f"first worker:\n{first.log_tail(120)}\nsecond worker:\n{second.log_tail(120)}"
        ),
    )
    first.stop()

    # the second takes the first's partitions over, recovering their aggregates from the changelog
    wait_until(
        lambda: exported_kinds(second) == everything,
        timeout=90,
        interval=0.5,
        ignore=(OSError,),
        message=lambda: f"{exported_kinds(second)} != {everything}\nsecond worker:\n{second.log_tail(120)}",
    )
    kinds = exported_kinds(second)
    assert kinds["conversation"] == len({c["conversation_id"] for c in streams["chats"]}) == 535
    assert kinds == {
        "conversation": 535,
        "conversation_wm": 4,  # one per observation partition
        "traffic": 2,
        "version_outcomes": 8,
        "review": 1,
        "perceptual": 8,
        "spike": 14,
        "ppi": 1,
        "guardrail_judge": 1,
        "versions": 2,
        "version_calibrated": 2,
    }
