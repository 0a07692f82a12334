"""The views keyed by judge drop a retired judge's aggregates, and their gauges, on the worker's clock.

A view looked for a judge's idle aggregates at the judge's own observations, which a retired (replaced) judge
never sends: until 2026-11-26 its aggregates and gauges stayed for good, and a restart exported them again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streams.emit import SEP
from streams.metrics import Metrics
from streams.views.drift import JudgeDriftView
from streams.views.live_model import LiveModelView
from streams.views.perceptual import PerceptualView
from streams.views.ppi import DefectRateView
from streams.views.version_calibrated import VersionCalibratedView
from streams.views.versions import VersionView
from tests.support.restartable import RestartableView

DAY = 86400.0
OLD, NEW = "judge-old", "judge-new"

#: view name: (make the view, its aggregates' key prefix)
VIEWS: dict[str, tuple[Callable[[Metrics], Any], str]] = {
    "drift": (lambda m: JudgeDriftView(m), "drift"),
    "ppi": (lambda m: DefectRateView(m, refresh_every=1), "ppi"),
    "live_model": (lambda m: LiveModelView(m, refresh_every=1), "guardrail_judge"),
    "perceptual": (
        lambda m: PerceptualView(m, reference_size=20, window_size=10, check_every=5),
        "perceptual",
    ),
    "versions": (lambda m: VersionView(m), "versions"),
    "version_calibrated": (lambda m: VersionCalibratedView(m), "version_calibrated"),
}


class Worker(RestartableView):
    """One view over an aggregator whose state is stored as JSON; each turn brings the observations of the
    kinds it takes: the judge's verdict, a human label's pair, and the turn's contact."""

    def __init__(self, view: str) -> None:
        self.make, self.prefix = VIEWS[view]
        super().__init__(seed=5)

    def make_view(self, metrics: Metrics) -> Any:
        return self.make(metrics)

    def turn(self, ts: float, judge: str | None, journey: str | None = None) -> None:
        """A turn at ``ts`` judged by ``judge`` (None: a judge of another worker's shard: only the turn's
        contact comes here, as on Kafka), of ``journey`` (by default shopper and driver in turn)."""
        self.offset += 1
        n, rng = self.offset, self.rng
        journey = journey or ("shopper" if n % 2 else "driver")
        segment = {"journey": journey, "model_version": f"m{int(ts // (7 * DAY))}", "modality": "image"}
        failed = rng.random() < 0.2
        label = "fail" if failed else "pass"
        human = label if rng.random() < 0.9 else ("pass" if failed else "fail")
        common = {"turn_id": f"t{n}", "ts": ts, "segment": {**segment, "intent": "refund"}}
        observations: dict[str, dict[str, Any]] = {
            "contact": {"conversation_id": f"c{n}", "outcome": {}},
        }
        if judge is not None:
            observations["judged"] = {
                "judge_id": judge,
                "labels": {"safety": label},
                "guardrail_flags": ["pii"] if failed else [],
                "scores": {"artifact": rng.random()},
            }
            observations["pair"] = {
                "judge_id": judge,
                "judge_version": "v1",
                "dimension": "safety",
                "judge_label": label,
                "human_label": human,
                "inclusion_probability": None,
                "confidence": None,
            }
        for kind, fields in observations.items():
            if kind in self.view.kinds:
                self.aggregator.apply({"kind": kind, **common, **fields, "src": [kind, n, 0]})

    def keys(self, judge: str) -> set[str]:
        return {k for k in self.state(self.prefix + SEP) if judge in k.split(SEP)}

    def series(self, judge: str) -> set[tuple[str, ...]]:
        return {
            (s.name, *s.labels.values())
            for family in self.registry.collect()
            for s in family.samples
            if s.labels.get("judge_id") == judge
        }

    def restart_and_export(self) -> None:
        """Restart, and export the recovered state's gauges, every label admitted first (the old judge's
        too: its figures would be exported again if they were still there)."""
        self.restart()
        metrics = self.aggregator.metrics
        for name, values in {
            "judge_id": (OLD, NEW),
            "dimension": ("safety",),
            "journey": ("shopper", "driver"),
            "model_version": tuple(f"m{week}" for week in range(6)),
        }.items():
            for value in values:
                metrics.label(name, value)
        self.aggregator.export_owned([k for k, _ in self.store.items()], lambda shard: True)


def _traffic(worker: Worker, start: float, end: float, new_judge: bool = True) -> None:
    """The old judge's turns until day 3, then the new judge's (or other shards' contacts), every 2 hours."""
    ts = start
    while ts < end:
        worker.turn(ts, OLD if ts < 3 * DAY else (NEW if new_judge else None))
        ts += 7200.0


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_a_retired_judges_aggregates_and_gauges_go_after_the_idle_period(view: str) -> None:
    worker = Worker(view)
    _traffic(worker, 0.0, 32 * DAY)
    assert worker.keys(OLD)  # 30 days after its last observation, not before
    old_series = worker.series(OLD)
    _traffic(worker, 32 * DAY, 35 * DAY)
    assert worker.keys(OLD) == set()
    assert worker.series(OLD) == set()
    assert worker.keys(NEW)
    assert bool(worker.series(NEW)) == bool(old_series)  # the views with gauges keep the active judge's
    worker.restart_and_export()
    assert worker.series(OLD) == set()
    exported = hasattr(worker.view, "export_owned")  # perceptual series come again with scores
    assert bool(worker.series(NEW)) == (bool(old_series) and exported)


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_a_worker_holding_only_the_retired_judges_shard_drops_it_on_its_contacts(view: str) -> None:
    worker = Worker(view)
    _traffic(worker, 0.0, 35 * DAY, new_judge=False)
    assert worker.keys(OLD) == set()
    assert worker.series(OLD) == set()


@pytest.mark.parametrize("view", sorted(VIEWS))
def test_a_restart_drops_as_a_run_without_one(view: str) -> None:
    once, restarted = Worker(view), Worker(view)
    for worker in (once, restarted):
        _traffic(worker, 0.0, 20 * DAY)
    restarted.restart_and_export()
    for worker in (once, restarted):
        _traffic(worker, 20 * DAY, 33.5 * DAY)
    assert restarted.state() == once.state()
    assert restarted.keys(OLD) == set()


def test_an_idle_journeys_calibrated_rate_gauges_go_with_its_estimators() -> None:
    worker = Worker("ppi")
    for hours in range(0, 35 * 24, 2):
        worker.turn(hours * 3600.0, NEW, None if hours < 3 * 24 else "shopper")
    journeys = {labels[3] for labels in worker.series(NEW)}
    assert journeys == {"*", "shopper"}


def test_an_idle_model_versions_guardrail_gauges_go_with_its_figures() -> None:
    worker = Worker("live_model")
    for hours in range(0, 40 * 24, 2):
        worker.turn(hours * 3600.0, NEW)
    versions = {
        s.labels["model_version"]
        for family in worker.registry.collect()
        for s in family.samples
        if s.name.startswith("convowatch_guardrail_")
    }
    assert versions == {"*", "m1", "m2", "m3", "m4", "m5"}  # m0: no turn since day 7
