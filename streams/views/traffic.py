"""Volume and latency anomalies per journey (``volume_anomaly``, ``latency_anomaly`` escalations)."""

from __future__ import annotations

from typing import Any

from detectors.traffic_watch import TrafficWatch
from streams.aggregate import Aggregator
from streams.emit import SEP, UNKNOWN_SEGMENT, Emit, iso
from streams.metrics import Metrics
from streams.policy import escalation_id
from streams.views.agreement import finite_or_none


class TrafficView:
    kinds: tuple[str, ...] = ("turn",)

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def apply(self, aggregator: Aggregator, turn: dict[str, Any], partition: int | None) -> list[Emit]:
        journey = turn["segment"]["journey"]
        watch = aggregator.update(
            f"traffic{SEP}{journey}",
            turn,
            partition,
            TrafficWatch,
            lambda w: w.update(turn["ts"], turn.get("latency_ms")),
        )
        if watch is None:
            return []
        emits = []
        for event, since, turns, direction in watch.volume_events:
            emits.append(
                self._escalation("volume_anomaly", event, since, watch, journey, turn, turns, direction)
            )
        if watch.latency_event:
            emits.append(
                self._escalation(
                    "latency_anomaly", watch.latency_event, watch.latency_event_since, watch, journey, turn
                )
            )
        return emits

    def _escalation(
        self,
        kind: str,
        event: str,
        since: float | None,
        watch: TrafficWatch,
        journey: str,
        turn: dict[str, Any],
        turns: int = 0,
        direction: str = "up",
    ) -> Emit:
        firing = event != "resolved"
        eid = escalation_id(kind, f"{journey}|{since}")
        severity = "medium"
        if kind == "volume_anomaly":
            detail = f"{turns} turns in the minute against a usual {watch.volume_baseline:.0f}"
            what = {"up": "Traffic surge", "down": "Traffic drop"}.get(event, "Traffic back to normal")
            if direction == "down":  # a drop is high, and so is its resolution (an alert keeps its labels)
                severity = "high"
        else:
            detail = f"usual latency {watch.latency_baseline_ms:.0f} ms"
            what = "Latency rise" if firing else "Latency back to normal"
        if firing:
            self.metrics.escalations.labels(kind, severity).inc()
        value = {
            "schema_version": 1,
            "escalation_id": eid,
            "kind": kind,
            "severity": severity,
            "status": "firing" if firing else "resolved",
            "revision": 1 if firing else 2,
            "dimension": None,
            "segment": {**UNKNOWN_SEGMENT, "journey": journey},
            "event_time": iso(turn["ts"]),
            "turn_ids": [turn["turn_id"]],
            "summary": f"{what} in journey {journey}: {detail}",
            "evidence": {
                "direction": event,
                "since": iso(since) if since is not None else None,
                "volume_baseline_per_minute": finite_or_none(watch.volume_baseline),
                "latency_baseline_ms": finite_or_none(watch.latency_baseline_ms),  # NaN: no latency seen
            },
        }
        return Emit("escalations", eid, value)
