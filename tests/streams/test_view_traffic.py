"""TrafficView: volume and latency anomalies of a journey as escalations whose resolutions match them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry

from streams.aggregate import Aggregator
from streams.alertmanager_payload import alert_from_escalation, alert_labels
from streams.emit import SEP
from streams.metrics import Metrics
from streams.views.traffic import TrafficView

T0 = 1_789_999_980.0  # a minute boundary


class Journey:
    """Turns of one journey through the view, minute by minute; the escalations it publishes."""

    def __init__(self) -> None:
        metrics = Metrics(CollectorRegistry())
        self.aggregator = Aggregator(metrics, views=[TrafficView(metrics)])
        self.escalations: list[dict[str, Any]] = []
        self.offset = 0

    def minute(self, minute: int, turns: int) -> None:
        for i in range(turns):
            self.offset += 1
            turn = {
                "kind": "turn",
                "src": ["chats/0", self.offset, 0],
                "turn_id": f"t{self.offset}",
                "ts": T0 + minute * 60 + i * 60 / turns,
                "segment": {"journey": "shopper"},
                "latency_ms": None,
            }
            self.escalations += [e.value for e in self.aggregator.apply(turn, 0)]


def test_a_drop_resolves_with_the_labels_it_fired_with() -> None:
    """It fired high and resolved medium: Alertmanager's sink resolved another label set, and the drop's
    alert lived on until its endsAt."""
    journey = Journey()
    for minute, turns in [(m, 50) for m in range(40)] + [(m, 5) for m in range(40, 45)]:
        journey.minute(minute, turns)
    for minute in range(45, 80):
        journey.minute(minute, 50)
    drop, resolved = journey.escalations
    assert (drop["status"], drop["severity"], resolved["status"]) == ("firing", "high", "resolved")
    assert resolved["escalation_id"] == drop["escalation_id"]
    assert alert_labels(resolved) == alert_labels(drop)


def test_a_surge_closed_by_a_gap_says_its_own_minute_and_the_drop_after_it_has_an_id_of_its_own() -> None:
    journey = Journey()
    for minute in range(40):
        journey.minute(minute, 50)
    journey.minute(40, 300)
    journey.minute(50, 1)  # ten minutes later
    surge, surge_resolved, drop = journey.escalations
    assert (surge["status"], surge_resolved["status"], drop["status"]) == ("firing", "resolved", "firing")
    assert surge_resolved["escalation_id"] == surge["escalation_id"] != drop["escalation_id"]
    assert surge["summary"].startswith("Traffic surge in journey shopper: 300 turns in the minute")
    assert drop["summary"].startswith("Traffic drop in journey shopper: 0 turns in the minute")


def test_journeys_past_the_first_hundred_share_one_watch_and_a_restart_keeps_the_mapping() -> None:
    """A producer sending a new journey with every turn grew a watch (an aggregate) per journey."""
    metrics = Metrics(CollectorRegistry())
    aggregator = Aggregator(metrics, views=[TrafficView(metrics)])
    for i in range(300):
        turn = {
            "kind": "turn",
            "src": ["chats/0", i, 0],
            "turn_id": f"t{i}",
            "ts": T0 + i,
            "segment": {"journey": f"journey-{i:03d}"},
            "latency_ms": None,
        }
        aggregator.apply(turn, 0)
    watched = sorted(key.split(SEP, 1)[1] for key, _ in aggregator.records("traffic"))
    assert len(watched) == 101 and watched[-1] == "other"
    restarted = TrafficView(metrics)
    restarted.rebalanced(aggregator)
    assert restarted.journeys.fold("journey-099", None) == "journey-099"
    assert restarted.journeys.fold("journey-100", None) == "other"


def test_a_drop_is_dated_from_the_silences_first_minute_not_from_the_turn_that_raised_it() -> None:
    """Its minutes close only with the journey's next turn: the drop was dated then, 30 minutes late, and
    its alert started when the silence ended."""
    journey = Journey()
    for minute in range(60):
        journey.minute(minute, 20)
    for minute in range(90, 130):  # silent from minute 60 to 89
        journey.minute(minute, 20)
    drop, resolved = journey.escalations
    assert (drop["status"], resolved["status"]) == ("firing", "resolved")
    silence = datetime.fromtimestamp(T0 + 60 * 60, UTC)
    assert datetime.fromisoformat(drop["event_time"]) == silence
    assert drop["evidence"]["since"] == drop["event_time"]
    raised_by = int(drop["turn_ids"][0][1:])  # the first turn after the silence (offsets count the turns)
    assert raised_by == 60 * 20 + 1
    assert datetime.fromisoformat(resolved["event_time"]) > datetime.fromtimestamp(T0 + 90 * 60, UTC)
    alert = alert_from_escalation(drop, None)
    assert datetime.fromisoformat(alert["startsAt"]) == silence
