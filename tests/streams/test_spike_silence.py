"""An open defect spike whose slice has gone silent closes (``closed_without_traffic``).

Until 2026-11-26 a spike open when its slice's traffic stopped stayed open for good: a model version rolled
back, or a judge replaced (its whole shard silent), the usual reactions to a spike, left
``convowatch_defect_spike_active`` at 1, the alert paging, and the escalation re-sent to Alertmanager after
every restart (a long-haul review: ``/tmp/s24/longhaul/rolled_back_version_alarm.py`` and
``retired_judge_alarm.py``).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest

from schemas import Stream
from streams.alertmanager import AlertmanagerSink
from streams.emit import SEP, Emit, iso
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.state import DictStore, encode_json
from streams.taxonomy import load_taxonomy
from streams.views.spike_silence import SILENCE_FLOOR_SECONDS, SWEEP_SECONDS
from streams.views.spikes import SpikeView
from tests.streams.test_open_alerts import resent
from tests.streams.test_views import START, _pipeline, _turn, _verdict
from tests.support.restartable import JsonStore, RestartableView, with_and_without_a_restart
from tests.support.webhook import WebhookServer

HOUR, DAY = 3600.0, 86400.0
T0 = START.timestamp()


class Worker(RestartableView):
    """The spike view alone over an aggregator whose state is stored as JSON; ``out`` keeps what it emits
    across restarts."""

    def __init__(self, store: DictStore | None = None, idle_seconds: float = 30 * DAY) -> None:
        self.out: list[Emit] = []
        self.idle_seconds = idle_seconds
        self.partitions: dict[str, int] | None = None
        super().__init__(store)

    def make_view(self, metrics: Metrics) -> SpikeView:
        return SpikeView(metrics, load_taxonomy(), idle_seconds=self.idle_seconds)

    def _start(self) -> None:
        super()._start()
        if self.partitions is not None:  # on Kafka: a shard key's observation partition
            self.aggregator.partition_of = self.partitions.__getitem__

    def turn(self, ts: float, version: str, failed: bool = False, judge: str = "judge-a") -> None:
        self.offset += 1
        obs = {
            "kind": "judged",
            "judge_id": judge,
            "turn_id": f"t{self.offset}",
            "ts": ts,
            "labels": {"relevance": "fail" if failed else "pass"},
            "segment": {"journey": "shopper", "model_version": version, "intent": "refund"},
            "src": ["observations:0", self.offset, 0],
        }
        partition = None if self.partitions is None else self.partitions[judge]
        self.out += self.aggregator.apply(obs, partition)

    def label(self, ts: float, version: str, failed: bool = False) -> None:
        """A human label (without a sampling probability: every one counts) of a turn at ``ts``."""
        self.offset += 1
        obs = {
            "kind": "labelled",
            "turn_id": f"t{self.offset}",
            "ts": ts,
            "segment": {"journey": "shopper", "model_version": version, "intent": "refund"},
            "labels": {"relevance": "fail" if failed else "pass"},
            "first_dimensions": ["relevance"],
            "effective_inclusion_probability": None,
            "src": ["observations:1", self.offset, 0],
        }
        self.out += self.aggregator.apply(obs)

    def feed(self, ts: float, what: str) -> None:
        """``what``: judge/version/failed (0 or 1)."""
        judge, version, failed = what.split("/")
        self.turn(ts, version, failed == "1", judge)

    def spikes(self, version: str | None = None, judge: str = "judge-a") -> list[dict[str, Any]]:
        """The defect_spike escalations of ``judge``'s slice of model ``version`` (None: of its journey)."""
        return [
            e.value
            for e in self.out
            if e.topic == "escalations"
            and e.value["evidence"]["source"] == judge
            and e.value["segment"]["model_version"] == version
            and e.value["segment"]["intent"] is None
        ]

    def active(self, version: str, judge: str = "judge-a") -> float | None:
        return self.registry.get_sample_value(
            "convowatch_defect_spike_active",
            {
                "category": "irrelevant",
                "journey": "shopper",
                "model_version": version,
                "intent": "*",
                "source": judge,
                "severity": "medium",
            },
        )


def traffic(rng: random.Random, stop: float, gone: str = "version") -> Iterator[tuple[float, str]]:
    """judge-a: m-1 and m-2, a turn of each every 30 s; m-1 at 2% defective for 2,300 turns, then 30%; at
    ``stop`` m-1's traffic stops (``gone="version"``: rolled back) or judge-a's (``"judge"``: judge-b judges
    from then on), and m-2 goes on at 2% for 10 hours."""
    ts, i = T0, 0
    while ts < stop + 10 * HOUR:
        judge = "judge-b" if gone == "judge" and ts >= stop else "judge-a"
        if ts < stop:
            yield ts, f"{judge}/m-1/{int(rng.random() < (0.3 if i >= 2_300 else 0.02))}"
        yield ts + 15.0, f"{judge}/m-2/{int(rng.random() < 0.02)}"
        ts, i = ts + 30.0, i + 1


STOP = T0 + 2_600 * 30.0  # 300 turns of m-1's spike


def _statuses(escalations: list[dict[str, Any]]) -> list[tuple[str, bool]]:
    return [(e["status"], e["evidence"].get("closed_without_traffic", False)) for e in escalations]


def test_a_rolled_back_model_versions_spike_closes_an_hour_after_its_last_turn() -> None:
    worker = Worker()
    events = list(traffic(random.Random(1), STOP))
    closed_at = None
    for ts, what in events:
        worker.feed(ts, what)
        if closed_at is None and len(worker.spikes("m-1")) == 2:
            closed_at = ts
    last_m1 = max(ts for ts, what in events if "/m-1/" in what)
    m1 = worker.spikes("m-1")
    assert _statuses(m1) == [("firing", False), ("resolved", True)]  # until 2026-11-26: firing alone
    assert m1[1]["escalation_id"] == m1[0]["escalation_id"] and m1[1]["revision"] == 2
    assert m1[1]["event_time"] == iso(last_m1 + SILENCE_FLOOR_SECONDS)  # a turn every 30 s: the floor
    assert "closed without traffic" in m1[1]["summary"] and "for 1.0 h" in m1[1]["summary"]
    assert m1[1]["turn_ids"] and m1[1]["evidence"]["spike_rate"] > 0.2  # the episode it ends
    assert worker.active("m-1") == 0.0
    # closed at the first look after the hour (a look every 10 minutes of the worker's clock)
    assert closed_at is not None and last_m1 + HOUR <= closed_at < last_m1 + HOUR + SWEEP_SECONDS + 30
    detector = worker.aggregator.detector(f"spike{SEP}judge-a{SEP}journey=shopper{SEP}model_version=m-1")
    assert detector is not None and not detector.in_alarm  # kept: dropped once idle for 30 days


def test_a_retired_judges_spikes_close() -> None:
    worker = Worker()
    events = list(traffic(random.Random(1), STOP, gone="judge"))
    for ts, what in events:
        worker.feed(ts, what)
    m1, journey = worker.spikes("m-1"), worker.spikes(None)
    assert _statuses(m1) == [("firing", False), ("resolved", True)]
    assert [s for s, _ in _statuses(journey)][-1:] in ([], ["resolved"])  # nothing left open
    assert not worker.spikes("m-1", judge="judge-b")
    assert worker.active("m-1") == 0.0
    worker.restart()
    assert resent_by(worker) == []


def test_a_retired_judges_detectors_are_dropped_after_idle_seconds_as_with_a_restart() -> None:
    # its own observations, which look for its idle detectors, never come: the worker's clock looks (until
    # 2026-11-26 they were kept for good)
    events = list(traffic(random.Random(1), STOP, gone="judge"))
    ts = events[-1][0]
    while ts < STOP + 11 * DAY:  # judge-b goes on, a turn an hour
        ts += HOUR
        events.append((ts, "judge-b/m-2/0"))
    once, restarted = with_and_without_a_restart(
        lambda: Worker(idle_seconds=10 * DAY), events, Worker.feed, STOP + 10 * DAY + 7 * HOUR
    )
    assert {key.split(SEP)[1] for key in once.state()} == {"judge-b"}
    assert restarted.state() == once.state()


def resent_by(worker: Worker) -> list[tuple[str, dict[str, Any]]]:
    view = worker.view
    assert isinstance(view, SpikeView)
    keys = list(worker.state())
    return list(view.open_escalations(worker.aggregator, keys, lambda shard: True, STOP + 20 * DAY))


@pytest.mark.parametrize("gone", ["version", "judge"])
@pytest.mark.parametrize("after_stop", [-2 * HOUR, 0.5 * HOUR, SILENCE_FLOOR_SECONDS + 5 * 60, 3 * HOUR])
def test_a_restart_in_the_silence_ends_as_a_run_without_it(gone: str, after_stop: float) -> None:
    events = list(traffic(random.Random(2), STOP, gone))
    once, restarted = with_and_without_a_restart(Worker, events, Worker.feed, STOP + after_stop)
    assert [e.value for e in restarted.out] == [e.value for e in once.out]
    assert restarted.state() == once.state()
    assert _statuses(once.spikes("m-1")) == [("firing", False), ("resolved", True)]
    assert restarted.active("m-1") is None or restarted.active("m-1") == 0.0
    still_open = [value["segment"] for _, value in resent_by(restarted)]
    assert all(segment["model_version"] is None for segment in still_open)  # judge-a's journey, if m-2 is
    assert gone == "version" or still_open == []


def test_a_sparse_slice_does_not_close_between_its_turns_and_closes_once_silent() -> None:
    # m-1 gets a turn every 2 hours at random (a niche slice), m-2 one every 10 minutes; m-1's rate rises
    # from 2% to 50% after 2,100 turns, for 20 days. A silence of the floor alone (an hour) would close it
    # at most of its gaps and open a new spike at each run of failures after; 5 typical gaps do not
    rng, worker = random.Random(4), Worker()
    ts, sparse, dense, gaps = T0, T0, T0, []
    n = 0
    spike_from = None
    while n < 2_100 + 240:
        if sparse <= dense:
            ts = sparse
            if n == 2_100:
                spike_from = ts
            worker.turn(ts, "m-1", rng.random() < (0.5 if n >= 2_100 else 0.02))
            gap = rng.expovariate(1 / (2 * HOUR))
            if n >= 2_100:
                gaps.append(gap)
            sparse, n = sparse + gap, n + 1
        else:
            ts = dense
            worker.turn(ts, "m-2", rng.random() < 0.02)
            dense += 600.0
    assert spike_from is not None
    m1 = worker.spikes("m-1")
    assert _statuses(m1) == [("firing", False)]  # one spike, open through its 240 turns
    assert max(gaps[:-1]) > 4 * SILENCE_FLOOR_SECONDS  # the floor alone would have closed it

    while dense < ts + 3 * DAY:  # m-1 goes silent
        worker.turn(dense, "m-2", rng.random() < 0.02)
        dense += 600.0
    m1 = worker.spikes("m-1")
    assert _statuses(m1) == [("firing", False), ("resolved", True)]
    silence = datetime.fromisoformat(m1[1]["event_time"]).timestamp() - ts
    assert 14 * HOUR < silence < 30 * HOUR  # 5 typical gaps: about 10 mean gaps of 2 hours


def test_human_labels_a_day_behind_the_judges_close_their_spike_only_once_they_stop() -> None:
    # labels carry their turns' event time, a day behind the judges' here: against it, every human slice
    # would look a day silent; they arrive on the worker's clock as they come
    worker, rng = Worker(), random.Random(9)
    clock = T0 + DAY
    for i in range(2_700):
        clock += 30.0
        worker.turn(clock, "m-2", rng.random() < 0.02)
        worker.label(clock - DAY, "m-1", rng.random() < (0.3 if i >= 2_300 else 0.02))
    assert _statuses(worker.spikes("m-1", judge="humans")) == [("firing", False)]
    assert worker.active("m-1", judge="humans") == 1.0
    last_label = clock
    for _ in range(240):  # the labels stop; the judge goes on
        clock += 30.0
        worker.turn(clock, "m-2", rng.random() < 0.02)
    humans = worker.spikes("m-1", judge="humans")
    assert _statuses(humans) == [("firing", False), ("resolved", True)]
    assert humans[1]["event_time"] == iso(last_label + SILENCE_FLOOR_SECONDS)
    assert worker.active("m-1", judge="humans") == 0.0


def test_a_slice_whose_traffic_comes_back_at_the_spike_rate_raises_a_new_spike() -> None:
    worker, rng = Worker(), random.Random(5)
    events = list(traffic(rng, STOP))
    for ts, what in events:
        worker.feed(ts, what)
    ts = events[-1][0]
    for _ in range(400):  # m-1 is back, still at 30%
        ts += 30.0
        worker.turn(ts, "m-1", rng.random() < 0.3)
        worker.turn(ts + 15.0, "m-2", rng.random() < 0.02)
    m1 = worker.spikes("m-1")
    assert _statuses(m1)[:3] == [("firing", False), ("resolved", True), ("firing", False)]
    assert m1[2]["escalation_id"] != m1[0]["escalation_id"] and m1[2]["evidence"]["episode"] == 2
    assert worker.active("m-1") == 1.0


def test_a_spike_open_in_state_from_before_closes_once_silent_from_the_first_look() -> None:
    # state written before arrivals were kept: the slice's silence counts from the first look after the
    # upgrade (written so, a restart keeps it)
    worker = Worker()
    events = list(traffic(random.Random(1), STOP))
    for ts, what in events:
        if ts >= STOP:
            break
        worker.feed(ts, what)
    assert _statuses(worker.spikes("m-1")) == [("firing", False)]
    worker.aggregator.flush()
    for key, raw in list(worker.store.items()):
        value = orjson.loads(raw)
        for field in ("_last_arrival", "_gaps", "_longest"):
            value["detector"]["state"].pop(field)
        worker.store.put(key, encode_json(value), None)
    worker.restart()
    first = None
    for ts, what in events:
        if ts >= STOP + 10 * 60:
            first = ts if first is None else first
            worker.feed(ts, what)
    assert first is not None
    m1 = worker.spikes("m-1")
    assert _statuses(m1) == [("firing", False), ("resolved", True)]
    looked = first // SWEEP_SECONDS * SWEEP_SECONDS
    assert m1[1]["event_time"] == iso(looked + SILENCE_FLOOR_SECONDS)


class PartitionedStore(JsonStore):
    """Records the changelog partition each key was last written to."""

    def __init__(self) -> None:
        super().__init__()
        self.partitions: dict[str, int | None] = {}

    def put(self, key: str, value: Any, partition: int | None) -> None:
        super().put(key, value, partition)
        self.partitions[key] = partition


def test_on_kafka_a_retired_judges_closed_spikes_are_written_to_its_own_partition() -> None:
    store = PartitionedStore()
    worker = Worker(store)
    worker.partitions = {"judge-a": 3, "judge-b": 5}
    worker.restart()
    events = list(traffic(random.Random(1), STOP, gone="judge"))
    closed_at = None
    for ts, what in events:
        worker.feed(ts, what)
        if closed_at is None and len(worker.spikes("m-1")) == 2:
            closed_at = ts
            worker.aggregator.flush()
            m1 = f"spike{SEP}judge-a{SEP}journey=shopper{SEP}model_version=m-1"
            assert store.partitions[m1] == 3  # closed by an observation of judge-b's partition, 5
    assert closed_at is not None


def test_pipeline_rolled_back_version_resolves_in_alertmanager_and_is_not_sent_again() -> None:
    pipeline, registry = _pipeline()
    out, last_m1 = _judged_traffic(pipeline, stop=2_600, gone="version")
    m1 = [e for e in out if e["segment"]["model_version"] == "m1" and e["evidence"]["source"] == "judge-a"]
    assert _statuses(m1) == [("firing", False), ("resolved", True)]
    assert m1[1]["event_time"] == iso(last_m1 + SILENCE_FLOOR_SECONDS)
    labels = {
        "category": "irrelevant",
        "journey": "shopper",
        "model_version": "m1",
        "intent": "*",
        "source": "judge-a",
        "severity": "medium",
    }
    assert registry.get_sample_value("convowatch_defect_spike_active", labels) == 0.0
    alerts = posted(out)[m1[0]["escalation_id"]]
    ends = [datetime.fromisoformat(a["endsAt"]) for a in (alerts[0], alerts[-1])]
    assert ends[0] > datetime.now(UTC) >= ends[1]  # fired (valid for a while), then resolved (ended now)
    assert alerts[-1]["annotations"]["revision"] == "2"
    assert all(a["labels"].get("model_version") != "m1" for a in resent(pipeline))  # not sent again


def test_pipeline_retired_judge_resolves_every_open_spike_of_its_shard() -> None:
    pipeline, registry = _pipeline()
    out, _ = _judged_traffic(pipeline, stop=2_600, gone="judge")
    firing = {
        e["escalation_id"] for e in out if e["evidence"]["source"] == "judge-a" and e["status"] == "firing"
    }
    closed = {e["escalation_id"] for e in out if e["evidence"]["closed_without_traffic"]}
    assert firing and firing <= {e["escalation_id"] for e in out if e["status"] == "resolved"}
    assert closed and all(e["evidence"]["source"] == "judge-a" for e in out if e["escalation_id"] in closed)
    open_series = [
        s.labels
        for family in registry.collect()
        if family.name == "convowatch_defect_spike_active"
        for s in family.samples
        if s.value == 1.0
    ]
    assert open_series == []
    assert resent(pipeline) == []


def _judged_traffic(pipeline: Pipeline, stop: int, gone: str) -> tuple[list[dict[str, Any]], float]:
    """The defect_spike escalations of turns every 10 s through ``pipeline``, every other one on model m1,
    the others on m0, judged by judge-a, and the event time of m1's last turn. m1 at 2% irrelevant, then at
    25% from its 2,300th turn; from its ``stop``-th on, for 4 hours, m1 is rolled back (``gone="version"``:
    all turns on m0) or judge-b judges instead of judge-a (``"judge"``)."""
    rng = random.Random(6)
    out: list[Emit] = []
    last_m1 = 0.0
    for n in range(2 * stop + 4 * 360):
        ts = START + timedelta(seconds=10 * n)
        after = n >= 2 * stop
        version = "m0" if n % 2 or (after and gone == "version") else "m1"
        judge = "judge-b" if after and gone == "judge" else "judge-a"
        rate = 0.25 if version == "m1" and n >= 2 * 2_300 else 0.02
        if version == "m1":
            last_m1 = ts.timestamp()
        relevance = "fail" if rng.random() < rate else "pass"
        out += pipeline.process(Stream.CHAT_TURNS, _turn(f"t{n}", ts, "shopper", version), source_topic="c")
        verdict = _verdict(f"t{n}", ts, judge_id=judge, relevance=relevance)
        out += pipeline.process(Stream.JUDGE_VERDICTS, verdict, source_topic="v")
    return [e.value for e in out if e.topic == "escalations" and e.value["kind"] == "defect_spike"], last_m1


def posted(escalations: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """The alerts an Alertmanager sink posts for ``escalations`` (published in order), by escalation id."""
    with WebhookServer() as alertmanager:
        sink = AlertmanagerSink(alertmanager.url, batch_delay=0).start()
        try:
            for value in escalations:
                sink.publish(value)
                assert sink.flush(10)
        finally:
            sink.close()
        by_id: dict[str, list[dict[str, Any]]] = {}
        for body in alertmanager.bodies():
            for alert in body:
                by_id.setdefault(alert["labels"]["escalation_id"], []).append(alert)
    return by_id
