"""Open escalations go to Alertmanager again after a restart or a rebalance.

Nothing else sends a spike, a drift or a traffic anomaly again before its next revision (its resolution,
hours later perhaps): a restarted worker's sink started empty, so Alertmanager resolved them after four
re-send periods while they were still open. ``resend_open_alerts`` gives the sink what the recovered
aggregates hold open, under the ids they fired with.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from schemas import Stream
from streams.alerting import resend_open_alerts
from streams.alertmanager import AlertmanagerSink
from streams.pipeline import Pipeline
from tests.streams.test_views import (
    START,
    _escalations,
    _label,
    _pipeline,
    _turn,
    _turn_with_latency,
    _verdict,
)
from tests.support.webhook import WebhookServer


def keys(pipeline: Pipeline) -> list[str]:
    pipeline.aggregator.flush()
    return [key for key, _ in pipeline.aggregator.store.items(raw=True)]


def resent(pipeline: Pipeline, owns: Any = lambda shard_key: True) -> list[dict[str, Any]]:
    """What a fresh sink (a restarted worker's) posts to Alertmanager for ``pipeline``'s aggregates."""
    with WebhookServer() as alertmanager:
        sink = AlertmanagerSink(alertmanager.url, batch_delay=0).start()
        try:
            count = resend_open_alerts(sink, pipeline.aggregator, keys(pipeline), owns, lambda key: key)
            assert sink.flush(10)
        finally:
            sink.close()
        alerts = [alert for body in alertmanager.bodies() for alert in body]
    assert len(alerts) == count
    return alerts


class Judged:
    """Turns of one segment and a judge's verdicts on them through ``pipeline``, one an event-second."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.rng = random.Random(3)
        self.n = 0

    def turns(self, n: int, rate: float) -> list[Any]:
        out: list[Any] = []
        for _ in range(n):
            self.n += 1
            ts, turn_id = START + timedelta(seconds=self.n), f"t{self.n}"
            relevance = "fail" if self.rng.random() < rate else "pass"
            turn = _turn(turn_id, ts, "shopper", "m1")
            out += self.pipeline.process(Stream.CHAT_TURNS, turn, source_topic="c", offset=self.n)
            verdict = _verdict(turn_id, ts, relevance=relevance)
            out += self.pipeline.process(Stream.JUDGE_VERDICTS, verdict, source_topic="v", offset=self.n)
        return out


def test_an_open_spike_is_sent_again_under_its_id_and_a_resolved_one_is_not() -> None:
    pipeline, _ = _pipeline()
    traffic = Judged(pipeline)
    out = traffic.turns(5_000, 0.02) + traffic.turns(1_500, 0.15)
    firing = [e for e in _escalations(out, "defect_spike") if e["status"] == "firing"]
    assert firing
    alerts = resent(pipeline)
    assert sorted(a["labels"]["escalation_id"] for a in alerts) == sorted(e["escalation_id"] for e in firing)
    assert {a["labels"]["alertname"] for a in alerts} == {"ConvowatchDefectSpike"}
    assert resent(pipeline, owns=lambda shard_key: shard_key != "judge-a") == []  # another worker's shard
    resolved: set[str] = set()
    for _ in range(30):  # back to normal until every spike resolves (a few thousand turns)
        out = traffic.turns(1_000, 0.02)
        resolved |= {
            e["escalation_id"] for e in _escalations(out, "defect_spike") if e["status"] == "resolved"
        }
        if resolved == {e["escalation_id"] for e in firing}:
            break
    assert resolved == {e["escalation_id"] for e in firing}
    assert resent(pipeline) == []


def test_an_open_judge_drift_is_sent_again_under_its_id() -> None:
    pipeline, _ = _pipeline()
    rng = random.Random(5)
    out: list[Any] = []
    for i in range(2_400):
        ts = START + timedelta(seconds=30 * i)
        human = "fail" if rng.random() < 0.1 else "pass"
        miss = 0.04 if i < 1_200 else 0.30  # the judge starts missing relevance failures
        judge = ("pass" if human == "fail" else "fail") if rng.random() < miss else human
        out += pipeline.process(
            Stream.CHAT_TURNS, _turn(f"t{i}", ts, "shopper", "m1"), source_topic="c", offset=i
        )
        out += pipeline.process(
            Stream.JUDGE_VERDICTS, _verdict(f"t{i}", ts, relevance=judge), source_topic="v", offset=i
        )
        label = _label(f"t{i}", ts + timedelta(hours=1), relevance=human)
        out += pipeline.process(Stream.HUMAN_LABELS, label, source_topic="h", offset=i)
    drift = _escalations(out, "judge_drift")
    still_open = {e["escalation_id"] for e in drift if e["status"] == "firing"} - {
        e["escalation_id"] for e in drift if e["status"] == "resolved"
    }
    assert still_open
    alerts = [a for a in resent(pipeline) if a["labels"]["alertname"] == "ConvowatchJudgeDrift"]
    assert {a["labels"]["escalation_id"] for a in alerts} == still_open


def test_an_open_volume_drop_is_sent_again_with_its_labels() -> None:
    pipeline, _ = _pipeline()
    rng = random.Random(8)
    out: list[Any] = []
    n = 0
    for minute in range(240):
        per_minute = rng.randint(40, 60) if minute < 180 else rng.randint(2, 6)  # traffic collapses
        for i in range(per_minute):
            ts = START + timedelta(minutes=minute, seconds=i * 60 / per_minute)
            n += 1
            turn = _turn_with_latency(f"t{n}", ts, "driver_support", rng.lognormvariate(6.5, 0.3))
            out += pipeline.process(Stream.CHAT_TURNS, turn, source_topic="c", offset=n)
    (drop,) = _escalations(out, "volume_anomaly")
    (alert,) = resent(pipeline)
    assert alert["labels"]["escalation_id"] == drop["escalation_id"]
    assert (alert["labels"]["alertname"], alert["labels"]["severity"]) == ("ConvowatchVolumeAnomaly", "high")
