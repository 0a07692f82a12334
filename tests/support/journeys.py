"""Journeys that come and go (a campaign a week) through one view that keeps an aggregate per journey."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from streams.emit import SEP
from streams.metrics import Metrics
from tests.support.restartable import RestartableView

DAY = 86400.0
WEEK = 7 * DAY
JUDGE = "judge-a"
NEVER = 1e12  # idle_seconds of a view that drops nothing, as until 2026-11-26


def campaign(week: int) -> str:
    return f"campaign-{week:03d}"


class JourneyWorker(RestartableView):
    """The view ``make(metrics)`` makes over an aggregator whose state is stored as JSON; :meth:`turn` feeds
    it (and any other view of the aggregator) a turn's observations of the kinds it takes (the turn, the
    judge's verdict, a human label). With ``partition_of`` (journey -> observation partition) the aggregator
    has partitions, as on Kafka, and each turn's observations come from its journey's."""

    def __init__(
        self, make: Callable[[Metrics], Any], seed: int = 0, partition_of: Callable[[str], int] | None = None
    ) -> None:
        self.make = make
        self.partition_of = partition_of
        super().__init__(seed=seed)

    def make_view(self, metrics: Metrics) -> Any:
        return self.make(metrics)

    def _start(self) -> None:
        super()._start()
        self.aggregator.partition_of = self.partition_of

    def turn(
        self,
        ts: float,
        journey: str,
        version: str = "v1",
        fail: float = 0.1,
        disagree: float = 0.1,
        slow: float = 1.0,
    ) -> None:
        """A turn of ``journey`` served by ``version``, failed with probability ``fail``: its turn observation
        (latency, and the outcome: escalated to an agent and the task not completed if failed), the judge's
        verdict on ``safety`` (``fail`` if failed) and a human label (disagreeing with probability
        ``disagree``), each with its own source position; its latency about 665 ms times ``slow``."""
        self.offset += 1
        rng, n = self.rng, self.offset
        failed = rng.random() < fail
        judge_label = "fail" if failed else "pass"
        human_label = judge_label if rng.random() >= disagree else ("pass" if failed else "fail")
        segment = {"journey": journey, "model_version": version, "intent": "refund"}
        common = {"turn_id": f"t{n}", "ts": ts, "segment": segment}
        observations = {
            "turn": {
                "latency_ms": rng.lognormvariate(6.5, 0.2) * slow,
                "outcome": {"escalated_to_agent": failed, "task_completed": not failed},
            },
            "judged": {"judge_id": JUDGE, "labels": {"safety": judge_label}},
            "pair": {
                "judge_id": JUDGE,
                "dimension": "safety",
                "judge_label": judge_label,
                "human_label": human_label,
                "inclusion_probability": None,
                "confidence": None,
            },
        }
        partition = None if self.partition_of is None else self.partition_of(journey)
        kinds = {kind for view in self.aggregator.views for kind in view.kinds}
        for kind, fields in observations.items():
            if kind in kinds:
                src = [f"{kind}:0", n, 0]
                self.aggregator.apply({"kind": kind, **common, **fields, "src": src}, partition)

    def journeys(self, prefix: str, at: int) -> set[str]:
        """The journeys of the aggregates whose keys start with ``prefix``: their key part ``at`` (after the
        prefix)."""
        return {k.split(SEP)[1 + at] for k, _ in self.aggregator.records(prefix)}


def weekly_turns(weeks: int, turns_per_day: int = 12, days: int = 3) -> list[tuple[float, str]]:
    """(event time, journey) of a new journey each week, campaign-000 onwards, ``turns_per_day`` turns a day
    over its week's first ``days`` days, then none."""
    return [
        (week * WEEK + k * DAY / turns_per_day, campaign(week))
        for week in range(weeks)
        for k in range(days * turns_per_day)
    ]


def feed(worker: JourneyWorker, ts: float, journey: str) -> None:
    """One turn of ``journey`` at ``ts``: versions v1 and v2 serve it by turns of two hours."""
    worker.turn(ts, journey, version="v1" if int(ts // 7200) % 2 else "v2")


def weekly_campaigns(
    worker: JourneyWorker, weeks: int = 60, check: Callable[[JourneyWorker, int], None] | None = None
) -> None:
    """The turns of :func:`weekly_turns` through ``worker``; ``check(worker, week)`` after each week's."""
    week = 0
    for ts, journey in weekly_turns(weeks):
        if check is not None and ts >= (week + 1) * WEEK:
            check(worker, week)
            week += 1
        feed(worker, ts, journey)
    if check is not None:
        check(worker, week)
