"""On Kafka, each aggregation worker's silence clock runs whatever observation partitions it holds.

Until 2026-11-26 the clock ran on ``turn`` observations, keyed by journey, and a judge's ``judged`` ones,
keyed by the judge, land elsewhere: the worker holding a retired judge's partition and none of a busy
journey's had its clock stop with the judge, and the judge's open spikes stayed open for good (a review:
``/tmp/s24/dayreview3/two_workers_clock.py``). Contacts, keyed by conversation, reach every partition.
"""

from __future__ import annotations

import random

import pytest

from streams.emit import iso
from streams.views.spike_silence import SILENCE_FLOOR_SECONDS
from tests.streams.test_spike_silence import HOUR, STOP, Worker, _statuses, traffic
from tests.support.restartable import with_and_without_a_restart

#: Observation partitions of the shard keys (4 partitions): the journey's turns and judge-b's verdicts on
#: the first worker's, judge-a's verdicts on the second's; a conversation's contacts on its number's.
PARTITIONS = {"shopper": 0, "judge-b": 1, "judge-a": 3}
#: Turns per conversation.
CONVERSATION_TURNS = 4


def partition_of(shard: str) -> int:
    if shard.startswith("conv-"):
        return int(shard.removeprefix("conv-")) % 4
    return PARTITIONS[shard]


class ShardWorker(Worker):
    """One of the aggregation workers: of each turn, the observations that land on the partitions it
    ``owns`` (the turn itself by journey, its verdict by judge, its contact by conversation)."""

    def __init__(self, owns: set[int]) -> None:
        self.owns = owns
        super().__init__()

    def _start(self) -> None:
        super()._start()
        self.aggregator.partition_of = partition_of

    def feed(self, ts: float, what: str) -> None:
        judge, version, failed = what.split("/")
        self.offset += 1
        segment = {"journey": "shopper", "model_version": version, "intent": "refund"}
        conversation = f"conv-{self.offset // CONVERSATION_TURNS}"
        common = {"turn_id": f"t{self.offset}", "ts": ts, "segment": segment}
        label = "fail" if failed == "1" else "pass"
        for shard, obs in (
            ("shopper", {"kind": "turn", "latency_ms": None, "outcome": {}, **common}),
            (judge, {"kind": "judged", "judge_id": judge, "labels": {"relevance": label}, **common}),
            (conversation, {"kind": "contact", "conversation_id": conversation, "outcome": {}, **common}),
        ):
            partition = partition_of(shard)
            if partition in self.owns:
                obs["src"] = [f"observations:{partition}", self.offset, 0]
                self.out += self.aggregator.apply(obs, partition)


def test_a_retired_judges_spike_closes_on_a_worker_without_its_journeys_turns() -> None:
    events = list(traffic(random.Random(1), STOP, gone="judge"))
    first, second = ShardWorker({0, 1}), ShardWorker({2, 3})
    for ts, what in events:
        first.feed(ts, what)
        second.feed(ts, what)
    last_m1 = max(ts for ts, what in events if "/m-1/" in what)
    m1 = second.spikes("m-1")
    assert _statuses(m1) == [("firing", False), ("resolved", True)]  # until 2026-11-26: firing alone
    assert m1[1]["event_time"] == iso(last_m1 + SILENCE_FLOOR_SECONDS)
    assert second.active("m-1") == 0.0
    assert first.spikes("m-1") == [] and first.spikes("m-1", judge="judge-b") == []


@pytest.mark.parametrize("after_stop", [0.5 * HOUR, 3 * HOUR])
def test_a_restart_of_the_retired_judges_worker_ends_as_a_run_without_it(after_stop: float) -> None:
    events = list(traffic(random.Random(2), STOP, gone="judge"))
    once, restarted = with_and_without_a_restart(
        lambda: ShardWorker({2, 3}), events, ShardWorker.feed, STOP + after_stop
    )
    assert [e.value for e in restarted.out] == [e.value for e in once.out]
    assert restarted.state() == once.state()
    assert _statuses(once.spikes("m-1")) == [("firing", False), ("resolved", True)]
