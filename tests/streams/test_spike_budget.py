"""The defect-spike false-alarm budget is shared over every source's traffic: each judge's and the humans'."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def _judged(n: int, labels: dict[str, str], kind: str = "judged", **extra: object) -> dict[str, object]:
    segment = {"journey": "shopper", "model_version": "m-1", "intent": "refund"}
    obs = {"kind": kind, "judge_id": "judge-a", "turn_id": f"t{n}", "ts": float(n), "labels": labels}
    return obs | {"segment": segment, "src": ["in:0", n, 0]} | extra


def test_a_changed_budget_reaches_the_detectors_recovered_from_the_state() -> None:
    # the run length is stored with each detector: without a retune, a restarted worker with a corrected
    # budget went on with the old one on every segment it had seen
    from streams.aggregate import Aggregator
    from streams.state import DictStore

    store = DictStore()

    def worker(judges: int) -> tuple[SpikeView, Aggregator]:
        settings = Settings(spike_judges=judges, spike_labelled_turns_per_day=0)
        registry = CollectorRegistry()
        view = _spike_view(settings, registry)
        return view, Aggregator(view.metrics, store, views=[view])

    before, aggregator = worker(judges=1)
    aggregator.apply(_judged(1, {"safety": "pass", "relevance": "pass"}))
    aggregator.flush()
    after, recovered = worker(judges=3)
    recovered.rebalanced()
    recovered.apply(_judged(2, {"safety": "pass", "relevance": "pass"}))
    recovered.flush()
    spikes = list(recovered.items("spike"))
    assert spikes and after.arl0 == pytest.approx(3 * before.arl0)
    for _, category_spikes in spikes:
        assert category_spikes.arl0 == after.arl0
        for category in ("irrelevant", "unsafe"):
            assert category_spikes.detector(category).arl0 == after.arl0


def test_the_turns_the_detectors_take_are_counted_as_the_budget_counts_them() -> None:
    from streams.aggregate import Aggregator
    from streams.state import DictStore

    registry = CollectorRegistry()
    view = _spike_view(Settings(), registry)
    aggregator = Aggregator(view.metrics, DictStore(), views=[view])
    categories = len(set(view.category_of.values()))
    every = {d: "pass" for d in view.category_of}
    aggregator.apply(_judged(1, every))  # a whole verdict: one turn
    aggregator.apply(_judged(1, every))  # delivered again: not applied, not counted
    aggregator.apply(_judged(2, {"relevance": "fail"}))  # a judge prompted per dimension: a share
    human = {"vendor_id": "v", "annotator_id": "a", "label_ts": 9.0, "judges": {}}
    aggregator.apply(_judged(3, every, "labelled", first_dimensions=sorted(every), **human))
    # a second annotator's labels, and a gold item's: no first label of the turn, nothing for the detectors
    aggregator.apply(_judged(4, every, "labelled", first_dimensions=[], **human))

    def turns(source: str) -> float | None:
        return registry.get_sample_value("convowatch_spike_turns_total", {"source": source})

    assert turns("judges") == pytest.approx(1 + 1 / categories)
    assert turns("humans") == pytest.approx(1.0)


def test_a_changed_drift_budget_reaches_the_drift_detectors_recovered_from_the_state() -> None:
    from streams.aggregate import Aggregator
    from streams.state import DictStore
    from streams.views.drift import JudgeDriftView

    store = DictStore()

    def worker(pairs_per_day: float) -> tuple[JudgeDriftView, Aggregator]:
        metrics = Metrics(CollectorRegistry())
        view = JudgeDriftView(metrics, pairs_per_day=pairs_per_day)
        return view, Aggregator(metrics, store, views=[view])

    def pair(n: int) -> dict[str, object]:
        segment = {"journey": "shopper", "model_version": "m-1", "intent": None}
        return {
            "kind": "pair",
            "judge_id": "judge-a",
            "dimension": "safety",
            "judge_label": "pass",
            "human_label": "pass",
            "turn_id": f"t{n}",
            "ts": float(n),
            "segment": segment,
            "src": ["in:0", n, 0],
        }

    _, aggregator = worker(700_000)
    aggregator.apply(pair(1))
    aggregator.flush()
    after, recovered = worker(1_400_000)
    recovered.apply(pair(2))
    recovered.flush()
    drifts = list(recovered.items("drift"))
    assert len(drifts) == 2  # all journeys, and the turn's
    assert all(detector.arl0 == after.arl0 for _, detector in drifts)


def test_a_category_links_its_most_severe_dimensions_runbook_whatever_the_hash_seed() -> None:
    # "inaccurate" is execution_accuracy (high) and personalization (low): a spike links the former's runbook.
    # It took whichever the frozenset of quality dimensions iterated first, which PYTHONHASHSEED decides.
    program = (
        "from prometheus_client import CollectorRegistry\n"
        "from streams.metrics import Metrics\n"
        "from streams.taxonomy import load_taxonomy\n"
        "from streams.views.spikes import SpikeView\n"
        "view = SpikeView(Metrics(CollectorRegistry()), load_taxonomy())\n"
        "print(view.runbook['inaccurate'])\n"
    )
    root = Path(__file__).resolve().parents[2]
    links = set()
    for seed in range(8):
        env = {**os.environ, "PYTHONHASHSEED": str(seed), "PYTHONPATH": str(root)}
        done = subprocess.run(
            [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True, timeout=60
        )
        links.add(done.stdout.strip())
    assert links == {"https://runbooks.example.com/convowatch/inaccurate"}
