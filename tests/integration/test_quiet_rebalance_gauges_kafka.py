"""State gauges on a real broker after a scale-out and a takeover, while the workers are quiet: each worker's
``convowatch_conversations_tracked`` and ``convowatch_join_kept_for_review_turns`` equal what it holds.

Until 2026-11-26 both were counted again only when traffic came (a partition's next observation, the join's
next eviction pass): after the split the first worker kept its count from before it, the second showed 0, and
after the takeover the second still showed 0 while holding everything. What each holds is read from the
changelogs (the compacted state: the last value of each key) and the partitions each worker logs it owns."""

from __future__ import annotations

import ast
import itertools
import re
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest

from schemas import Stream
from streams.emit import SEP
from streams.generator import TrafficGenerator, to_records
from streams.views.outcomes import CONVERSATION
from tests.integration.test_aggregate_counts_kafka import drained
from tests.support.broker import KafkaBroker
from tests.support.verify import read_raw
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, produce_records

pytestmark = pytest.mark.kafka

ASSIGNED = re.compile(r"assigned input partitions: (\{.*\})")


def compacted(bootstrap: str, topic: str) -> dict[str, bytes]:
    """The last value of each key on a changelog, tombstones removed."""
    table: dict[str, bytes] = {}
    for key, value in read_raw(bootstrap, topic):
        name = orjson.loads(key or b'""')
        if value is None:
            table.pop(name, None)
        else:
            table[name] = value
    return table


def owned_turn_partitions(worker: WorkerProcess) -> set[int]:
    """The chat-turn partitions the worker last said it owns (the join's entries are partitioned as they)."""
    found = ASSIGNED.findall(worker.log_path.read_text(errors="replace"))
    return set(ast.literal_eval(found[-1])[Stream.CHAT_TURNS.value]) if found else set()


def gauge(worker: WorkerProcess, name: str, **labels: str) -> float | None:
    return worker.scrape().get((name, tuple(sorted(labels.items()))))


def test_quiet_workers_export_what_they_hold_after_a_scale_out_and_a_takeover(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    bootstrap = kafka_broker.bootstrap
    app_id = unique_name("app")
    env = {
        "CONVOWATCH_TOPIC_PREFIX": unique_name("quiet") + ".",
        "CONVOWATCH_APP_ID": app_id,
        "CONVOWATCH_LAG_INTERVAL_SECONDS": "0.5",
    }
    records = itertools.islice(to_records(TrafficGenerator(seed=13, rate=20.0).records(600)), 3000)
    streams = produce_records(bootstrap, env, tmp_path, ((r[2], r[3]) for r in records))

    first = make_worker(bootstrap, env)
    wait_until(lambda: drained(first), timeout=120, interval=0.5, ignore=(OSError,), message=first.log_tail)
    conversations = sum(
        k.startswith(CONVERSATION + SEP) for k in compacted(bootstrap, f"{app_id}-aggregates-changelog")
    )
    pending = compacted(bootstrap, f"{app_id}-pending-changelog")
    kept = {k: orjson.loads(v)["p"] for k, v in pending.items() if orjson.loads(v).get("keep")}
    assert conversations == len({c["conversation_id"] for c in streams["chats"]}) == 535
    assert len(kept) > 0

    def holds(worker: WorkerProcess) -> dict[str, float]:
        """What the worker holds: its conversations (counted by its table's store, on a timer) and the turns
        kept for review of the partitions it owns (as the changelog has them)."""
        owned = owned_turn_partitions(worker)
        return {
            "conversations_tracked": gauge(worker, "convowatch_aggregates", kind=CONVERSATION) or 0.0,
            "join_kept_for_review_turns": float(sum(p in owned for p in kept.values())),
        }

    def shows(worker: WorkerProcess) -> dict[str, float]:
        return {
            "conversations_tracked": gauge(worker, "convowatch_conversations_tracked") or 0.0,
            "join_kept_for_review_turns": gauge(worker, "convowatch_join_kept_for_review_turns") or 0.0,
        }

    def report(*workers: WorkerProcess) -> Callable[[], str]:
        return lambda: "\n".join(
            f"worker {i}: shows {shows(w)}, holds {holds(w)}\n{w.log_tail(40)}" for i, w in enumerate(workers)
        )

    total = {"conversations_tracked": float(conversations), "join_kept_for_review_turns": float(len(kept))}
    assert shows(first) == total

    # a second worker joins: no traffic comes, and each shows what it holds of the partitions it owns
    second = make_worker(bootstrap, env)

    def split() -> bool:
        a, b = holds(first), holds(second)
        return (
            0 < a["conversations_tracked"] < conversations
            and {k: a[k] + b[k] for k in a} == total
            and shows(first) == a
            and shows(second) == b
        )

    wait_until(split, timeout=60, interval=0.5, ignore=(OSError,), message=report(first, second))
    first.stop()

    # the second takes every partition over
    wait_until(
        lambda: holds(second) == total and shows(second) == total,
        timeout=60,
        interval=0.5,
        ignore=(OSError,),
        message=report(second),
    )
