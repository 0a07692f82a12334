"""Volume and latency anomalies per journey (``volume_anomaly``, ``latency_anomaly`` escalations).

Each observation partition watches ``max_journeys`` journeys apart; its others share one watch. A watch
that has seen no turn for ``idle_seconds`` of event time before the start of the day that looks (a retired
journey) is dropped, unless an alarm of its is open, and a journey none of the partition's watches has left
gives its room to the next new one (:func:`~streams.views.idle_journeys.drop_idle`, looked for at the
partition's first turn of each day and its first after a start; not while the partition's ``other`` watch
has an alarm open). Until 2026-11-26 each partition's first 100 journeys held their room for good, and
every journey ever seen kept its watch. A retired journey's minutes close only with its next turn, so its
silence raises no drop; a surge or latency rise open when it retired stays open, and is sent again after a
restart, for as long as no turn of it comes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from detectors.traffic_watch import TrafficWatch
from streams.aggregate import Aggregator
from streams.emit import SEP, UNKNOWN_SEGMENT, Emit, iso
from streams.labels import PartitionGuards, shard_partition, shown
from streams.metrics import Metrics
from streams.policy import escalation_id
from streams.views.agreement_report import finite_or_none
from streams.views.idle_journeys import drop_idle
from streams.views.idle_looks import IDLE_SECONDS, IdleLooks

#: Journeys watched apart per observation partition; the partition's others share one watch, ``other#<p>``
#: (``other`` embedded: :class:`~streams.labels.PartitionGuards`). A producer sending a new journey with
#: every turn grew an aggregate per journey, and escalations labelled with each.
MAX_JOURNEYS = 100


class TrafficView:
    kinds: tuple[str, ...] = ("turn",)

    def __init__(
        self, metrics: Metrics, max_journeys: int = MAX_JOURNEYS, idle_seconds: float = IDLE_SECONDS
    ) -> None:
        self.metrics = metrics
        self.max_journeys = max_journeys
        self.journeys = PartitionGuards(max_journeys)
        self.idle_seconds = idle_seconds
        # derived, never persisted: each observation partition's watch keys (those updated, and the recovered
        # ones), and when to look for its idle ones
        self._keys: dict[int | None, set[str]] = {}
        self._looks = IdleLooks.per_idle(idle_seconds)

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Admit the journeys of the watches this worker holds now first, each to its partition's guard (as
        ``SpikeView.rebalanced`` admits a judge's)."""
        self.journeys = PartitionGuards(self.max_journeys)
        parts = [traffic_key.split(SEP, 1)[1] for traffic_key, _ in aggregator.records("traffic")]
        partition_of = aggregator.partition_of
        self.journeys.admit(parts, partition_of)
        aggregator.drop_unpartitioned_folds("traffic")
        self._keys = {}
        for part in parts:
            owner = None if partition_of is None else shard_partition(part, partition_of)
            self._keys.setdefault(owner, set()).add(f"traffic{SEP}{part}")
        self._looks.forget()

    def apply(self, aggregator: Aggregator, turn: dict[str, Any], partition: int | None) -> list[Emit]:
        owner = aggregator.fold_partition(partition)
        journey = self.journeys.fold(turn["segment"]["journey"], owner)
        traffic_key = f"traffic{SEP}{journey}"
        watch = aggregator.update(
            traffic_key,
            turn,
            partition,
            TrafficWatch,
            lambda w: w.update(turn["ts"], turn.get("latency_ms")),
        )
        keys = self._keys.get(owner) or self._keys.setdefault(owner, set())
        keys.add(traffic_key)
        now = self._looks.due(owner, turn["ts"])
        if now is not None:
            kept = drop_idle(aggregator, keys, now, self.idle_seconds, partition, _journey, _in_alarm).kept
            if kept is not None:
                self.journeys(owner).retain(kept)
        if watch is None:
            return []
        emits = []
        for event, since, turns, direction in watch.volume_events:
            value = self._value("volume_anomaly", event, since, watch, journey, turn, turns, direction)
            emits.append(self._published(value))
        if event := watch.latency_event:
            value = self._value("latency_anomaly", event, watch.latency_event_since, watch, journey, turn)
            emits.append(self._published(value))
        return emits

    def open_escalations(
        self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool], at: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(shard key, escalation) of every volume or latency alarm open in the aggregates at ``keys`` of the
        journeys this worker ``owns`` (a folded watch's shard key is its key part, ``other#<partition>``), as
        if raised at ``at``: after a restart or a rebalance, for the Alertmanager sink to send again."""
        for (journey,), watch in aggregator.owned_detectors(keys, "traffic", owns):
            assert isinstance(watch, TrafficWatch)
            now = {"ts": at, "turn_id": None}
            if direction := watch.volume_alarm:
                since, turns = watch.volume_since, watch.volume_last
                yield (
                    journey,
                    self._value("volume_anomaly", direction, since, watch, journey, now, turns, direction),
                )
            if watch.latency_alarm:
                yield journey, self._value("latency_anomaly", "up", watch.latency_since, watch, journey, now)

    def _published(self, value: dict[str, Any]) -> Emit:
        """``value`` to the escalations topic, counted if it fires."""
        if value["status"] == "firing":
            self.metrics.escalations.labels(value["kind"], value["severity"]).inc()
        return Emit("escalations", value["escalation_id"], value)

    def _value(
        self,
        kind: str,
        event: str,
        since: float | None,
        watch: TrafficWatch,
        journey: str,
        turn: dict[str, Any],
        turns: int = 0,
        direction: str = "up",
    ) -> dict[str, Any]:
        """The escalation of ``event`` in the watch of ``journey`` (its key part: a folded watch's id names
        its partition, its labels and summary say ``other``); ``turn`` the turn that made it (a ``turn_id``
        of None: none, when an open alarm is sent again). An alarm is dated from its start, ``since``: a
        drop's first minute, not the turn after the silence that closed the minutes and raised it (until
        2026-11-26, up to the silence's length later); a resolution from the turn that made it."""
        firing = event != "resolved"
        eid = escalation_id(kind, f"{journey}|{since}")
        journey = shown(journey)
        severity = "medium"
        if kind == "volume_anomaly":
            detail = f"{turns} turns in the minute against a usual {watch.volume_baseline:.0f}"
            what = {"up": "Traffic surge", "down": "Traffic drop"}.get(event, "Traffic back to normal")
            if direction == "down":  # a drop is high, and so is its resolution (an alert keeps its labels)
                severity = "high"
        else:
            detail = f"usual latency {watch.latency_baseline_ms:.0f} ms"
            what = "Latency rise" if firing else "Latency back to normal"
        return {
            "schema_version": 1,
            "escalation_id": eid,
            "kind": kind,
            "severity": severity,
            "status": "firing" if firing else "resolved",
            "revision": 1 if firing else 2,
            "dimension": None,
            "segment": {**UNKNOWN_SEGMENT, "journey": journey},
            "event_time": iso(since if firing and since is not None else turn["ts"]),
            "turn_ids": [turn["turn_id"]] if turn["turn_id"] is not None else [],
            "summary": f"{what} in journey {journey}: {detail}",
            "evidence": {
                "direction": event,
                "since": iso(since) if since is not None else None,
                "volume_baseline_per_minute": finite_or_none(watch.volume_baseline),
                "latency_baseline_ms": finite_or_none(watch.latency_baseline_ms),  # NaN: no latency seen
            },
        }


def _journey(traffic_key: str) -> str:
    return traffic_key.split(SEP, 1)[1]


def _in_alarm(watch: TrafficWatch) -> bool:
    return bool(watch.volume_alarm or watch.latency_alarm)
