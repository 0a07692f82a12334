"""The defect-spike false-alarm budget is shared over every source's traffic: each judge's and the humans'."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from streams.config import Settings
from streams.metrics import Metrics
from streams.taxonomy import load_taxonomy
from streams.views import default_views
from streams.views.spikes import SLICES, SpikeView


def _spike_view(settings: Settings, registry: CollectorRegistry) -> SpikeView:
    views = default_views(settings, Metrics(registry), load_taxonomy())
    (view,) = [v for v in views if isinstance(v, SpikeView)]
    return view


def _false_alarms_per_day(view: SpikeView, events_per_day_by_source: list[float]) -> float:
    """Expected false alarms a day of ``view``'s detectors: every source has a detector per (slice value,
    category) and each of its events is one event of one detector per (slice, category)."""
    streams = len(SLICES) * len(set(view.category_of.values()))
    return sum(streams * events / view.arl0 for events in events_per_day_by_source)


@pytest.mark.parametrize(("judges", "labelled"), [(1, 0.0), (1, 100_000.0), (3, 250_000.0)])
def test_the_budget_holds_over_every_judge_and_the_humans(judges: int, labelled: float) -> None:
    settings = Settings(
        spike_false_alarms_per_day=2.0,
        spike_turns_per_day=1_000_000,
        spike_judges=judges,
        spike_labelled_turns_per_day=labelled,
    )
    view = _spike_view(settings, CollectorRegistry())
    traffic = [1_000_000.0] * judges + [labelled]
    assert _false_alarms_per_day(view, traffic) == pytest.approx(2.0)


def test_a_second_judge_doubles_the_run_length_a_judge_alone_is_given() -> None:
    one = _spike_view(Settings(spike_judges=1, spike_labelled_turns_per_day=0), CollectorRegistry())
    two = _spike_view(Settings(spike_judges=2, spike_labelled_turns_per_day=0), CollectorRegistry())
    assert two.arl0 == pytest.approx(2 * one.arl0)


def test_the_budgets_traffic_is_exported_per_source() -> None:
    registry = CollectorRegistry()
    _spike_view(
        Settings(spike_turns_per_day=400_000, spike_judges=2, spike_labelled_turns_per_day=30_000), registry
    )
    turns = "convowatch_spike_budget_turns_per_day"
    assert registry.get_sample_value(turns, {"source": "judges"}) == 800_000
    assert registry.get_sample_value(turns, {"source": "humans"}) == 30_000


def test_a_budget_beyond_the_detectors_range_names_the_turns_setting() -> None:
    # 1,000 judges at 1e9 turns a day: a run length past what DefectRateSpike designs for
    with pytest.raises(ValueError, match="CONVOWATCH_SPIKE_FALSE_ALARMS_PER_DAY"):
        Settings(spike_turns_per_day=1e9, spike_judges=1000)
