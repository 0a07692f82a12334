"""Throttled gauges once the flow stops, and after a rebalance.

The views recompute most gauges every 200 observations or 60 s of event time of an aggregate (agreement
intervals, windows and segments, calibration, PPI, raters, the live model) or every 50 turns of a comparison
(version tests). Until 2026-11-26 the tail of a burst since the last refresh never reached them (embedded:
segment pairs 126 where the detector held 144), and a worker that took over or regained a shard showed none
of them until the shard's next traffic."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detectors.agreement_breakdown import AgreementBreakdown
from detectors.calibration import BinaryCalibration
from detectors.keyed import KeyedDetectors
from detectors.msprt import LiveVersionPairs
from streams.config import Settings
from streams.embedded import run_records
from streams.emit import SEP
from streams.generator import TrafficGenerator, to_records
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.shard_gauges import clear_lost_children, export_agreement
from streams.views.version_common import VersionPairView
from streams.views.version_regression import TestKey as At

#: The gauges refreshed through a throttle, which a rebalance re-exports from the recovered state
THROTTLED = (
    "convowatch_judge_gwet_ac1",
    "convowatch_judge_agreement_bound",
    "convowatch_judge_window_agreement_pairs",
    "convowatch_judge_window_agreement_ratio",
    "convowatch_judge_segment_agreement_pairs",
    "convowatch_judge_segment_agreement_ratio",
    "convowatch_judge_sensitivity_ratio",
    "convowatch_calibrated_defect_rate_ratio",
    "convowatch_version_lift",
    "convowatch_version_turns",
    "convowatch_version_outcome_lift",
    "convowatch_version_outcome_turns",
    "convowatch_version_calibrated_lift",
    "convowatch_raters_items",
    "convowatch_guardrail_recall_ratio",
)


def burst(
    records: int = 20_000, seconds: float = 3600.0, label_max_values: int = 20
) -> tuple[Pipeline, CollectorRegistry]:
    """An embedded run of a burst (batched, as ``convowatch run`` and the demo run), ended."""
    settings = Settings(label_max_values=label_max_values)
    registry = CollectorRegistry()
    pipeline = Pipeline(settings, Metrics(registry, label_max_values=settings.label_max_values), batched=True)
    traffic = TrafficGenerator(seed=13, rate=5.0).records(seconds, drain=True)
    run_records(pipeline, itertools.islice(to_records(traffic), records), lambda emit: None)
    return pipeline, registry


@pytest.fixture(scope="module")
def ended() -> tuple[Pipeline, CollectorRegistry]:
    return burst()


def samples(registry: CollectorRegistry, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in registry.collect()
        for s in family.samples
        if s.name == name
    }


def same(a: float | None, b: float) -> bool:
    return a is not None and (a == b or (math.isnan(a) and math.isnan(b)))


def breakdowns(pipeline: Pipeline) -> Iterator[tuple[tuple[str, str], AgreementBreakdown]]:
    for (judge_id, dimension), breakdown in pipeline.aggregator.items("agreement_detail"):
        assert isinstance(breakdown, AgreementBreakdown)
        yield (judge_id, dimension), breakdown


def test_agreement_gauges_after_a_burst_are_what_the_detectors_hold(ended: tuple[Any, Any]) -> None:
    pipeline, registry = ended
    value = registry.get_sample_value
    checked = 0
    for (judge_id, dimension), breakdown in breakdowns(pipeline):
        labels = {"judge_id": judge_id, "dimension": dimension}
        assert same(value("convowatch_judge_gwet_ac1", labels), breakdown.overall().gwet_ac1)
        for name in breakdown.windows:
            window = breakdown.window(name)
            assert value("convowatch_judge_window_agreement_pairs", {**labels, "window": name}) == window.n
        segments = samples(registry, "convowatch_judge_segment_agreement_pairs")
        for series, n in segments.items():
            at = dict(series)
            if (at["judge_id"], at["dimension"]) == (judge_id, dimension) and at["segment"] != "vendor":
                stats = breakdown.segment_value(at["segment"], at["segment_value"])
                assert stats is not None and n == stats.n, at
                checked += 1
    assert checked > 20  # journeys, intents, model versions... of each judge and dimension


def test_divergence_gauges_after_a_burst_are_what_the_detectors_hold(ended: tuple[Any, Any]) -> None:
    pipeline, registry = ended
    value = registry.get_sample_value
    calibrations = list(pipeline.aggregator.items("calibration"))
    for (judge_id, dimension), calibration in calibrations:
        assert isinstance(calibration, BinaryCalibration)
        labels = {"judge_id": judge_id, "dimension": dimension}
        assert same(value("convowatch_judge_sensitivity_ratio", labels), calibration.sensitivity)
    estimators = 0
    for (judge_id,), keyed in pipeline.aggregator.items("ppi"):
        assert isinstance(keyed, KeyedDetectors)
        for inner, ppi in keyed.items():
            journey, dimension = inner.split(SEP)
            labels = {"judge_id": judge_id, "dimension": dimension, "journey": journey}
            assert same(value("convowatch_calibrated_defect_rate_ratio", labels), ppi.estimate), labels
            estimators += 1
    assert calibrations and estimators


def test_version_gauges_after_a_burst_are_what_the_tests_hold(ended: tuple[Any, Any]) -> None:
    pipeline, registry = ended
    tests = 0
    for view in pipeline.aggregator.views:
        if not isinstance(view, VersionPairView):
            continue
        gauge = getattr(pipeline.metrics, f"{view.gauge_prefix}_lift")
        for scope, comparison in pipeline.aggregator.items(view.prefix):
            assert isinstance(comparison, LiveVersionPairs)
            for control, treatment in comparison.live_pairs:
                for dim, test in view._pair_tests(comparison, control, treatment).items():
                    if math.isnan(test.lift):  # an arm without labels yet: not published
                        continue
                    at = At((scope[0], scope[1]), dim, control, treatment)
                    labels = dict(
                        zip(
                            gauge._labelnames,
                            (*view._scope_labels(at, pipeline.metrics.label), control, treatment),
                            strict=True,
                        )
                    )
                    assert registry.get_sample_value(gauge._name, labels) == test.lift, labels
                    tests += 1
    assert tests >= 10  # outcome tests, the judge's, the calibrated ones per dimension


def fresh_owner(pipeline: Pipeline, owns: Callable[[str], bool], warm: bool = True) -> CollectorRegistry:
    """A worker process that recovered ``pipeline``'s aggregates (its table) and owns the shards ``owns``
    accepts, after its rebalance handler's exports (streams/app.py): a fresh registry. ``warm``: a worker
    that was running, whose label guards passed the values of the traffic it had (here: ``pipeline``'s);
    else a restarted one, whose guards are empty."""
    settings = pipeline.settings
    registry = CollectorRegistry()
    metrics = Metrics(registry, label_max_values=settings.label_max_values)
    if warm:
        for name, guard in metrics.guards.items():
            guard.admit(pipeline.metrics.guards[name]._admitted)
    owner = Pipeline(settings, metrics, aggregate_store=pipeline.aggregator.store, batched=True)
    owner.aggregator.rebalanced()
    keys = [k for k, _ in owner.aggregator.store.items()]
    export_agreement(metrics, owner.aggregator, keys, owns)
    owner.aggregator.export_owned(keys, owns)
    return registry


def test_a_worker_that_takes_the_shards_over_shows_the_throttled_gauges_before_any_traffic(
    ended: tuple[Any, Any],
) -> None:
    pipeline, registry = ended
    taken = fresh_owner(pipeline, lambda shard: True)
    for name in THROTTLED:
        before, after = samples(registry, name), samples(taken, name)
        assert before, name
        assert before.keys() == after.keys(), name
        assert all(same(after[series], v) for series, v in before.items()), name


#: Gauges labelled by a segment value (journey, model version, intent, vendor), not only judge and dimension
BY_SEGMENT_VALUE = {
    "convowatch_judge_segment_agreement_pairs",
    "convowatch_judge_segment_agreement_ratio",
    "convowatch_calibrated_defect_rate_ratio",
    "convowatch_version_lift",
    "convowatch_version_turns",
    "convowatch_version_outcome_lift",
    "convowatch_version_outcome_turns",
    "convowatch_version_calibrated_lift",
    "convowatch_guardrail_recall_ratio",
}


def test_a_restarted_worker_shows_the_judges_gauges_and_leaves_the_label_guards_to_live_traffic(
    ended: tuple[Any, Any],
) -> None:
    """Re-exported in the state's order, values idle for up to 30 days took a restarted worker's label
    guards, and the model version live after the restart was ``other`` (found by the day's review of
    2026-11-26). A restarted worker re-exports the figures of its judges, and those of segment values once
    live traffic has brought the values."""
    pipeline, registry = ended
    restarted = fresh_owner(pipeline, lambda shard: True, warm=False)
    for name in THROTTLED:
        before, after = samples(registry, name), samples(restarted, name)
        if name in BY_SEGMENT_VALUE:  # only all versions' ("*"), if any: the values wait for their traffic
            assert after.keys() < before.keys(), name
            assert all(dict(series).get("model_version", "*") == "*" for series in after), name
        else:
            assert after.keys() == before.keys(), name
    for label in ("model_version", "journey", "intent", "vendor_id", "judge_id"):
        assert restarted.get_sample_value("convowatch_label_value_folds_total", {"label": label}) is None


def test_a_worker_shows_only_the_gauges_of_the_shards_it_owns_after_a_rebalance(
    ended: tuple[Any, Any],
) -> None:
    pipeline, registry = ended
    journeys = {dict(s)["journey"] for s in samples(registry, "convowatch_version_outcome_lift")}
    kept = sorted(journeys)[0]
    # the judges' shards and one journey's: not the humans' (raters), nor the other journeys'
    taken = fresh_owner(pipeline, lambda shard: shard.startswith("judge") or shard == kept)
    outcome = samples(taken, "convowatch_version_outcome_lift")
    assert outcome and {dict(s)["journey"] for s in outcome} == {kept}
    assert not samples(taken, "convowatch_raters_items")
    assert samples(taken, "convowatch_judge_window_agreement_pairs") == samples(
        registry, "convowatch_judge_window_agreement_pairs"
    )
    vendor_rows = [
        s for s in samples(taken, "convowatch_judge_segment_agreement_pairs") if "vendor" in dict(s).values()
    ]
    assert not vendor_rows  # per vendor: the humans' shard


def test_a_worker_that_regains_a_shard_exports_its_gauges_again_and_nothing_it_lost() -> None:
    pipeline, registry = burst(records=12_000)
    before = {name: samples(registry, name) for name in THROTTLED}
    # more traffic, not yet exported (the timer has not run): pending
    more = to_records(TrafficGenerator(seed=14, rate=5.0).records(600))
    for _, _, stream, raw, source, number in itertools.islice(more, 300):
        pipeline.process(stream, raw, source_topic=source, offset=number)
    pipeline.flush()
    aggregator = pipeline.aggregator
    # the worker loses every shard (as streams/app.py handles a rebalance): what was pending stays unexported
    clear_lost_children(pipeline.metrics, lambda shard: False)
    aggregator.rebalanced()
    aggregator.export_pending()
    assert not samples(registry, "convowatch_judge_window_agreement_pairs")
    assert not samples(registry, "convowatch_version_calibrated_lift")
    # and regains them: back before any new traffic
    aggregator.rebalanced()
    aggregator.export_owned([k for k, _ in aggregator.store.items()], lambda shard: True)
    for name in THROTTLED:
        assert samples(registry, name).keys() >= before[name].keys(), name
    for (judge_id, dimension), breakdown in breakdowns(pipeline):
        labels = {"judge_id": judge_id, "dimension": dimension, "window": "24h"}
        n = registry.get_sample_value("convowatch_judge_window_agreement_pairs", labels)
        assert n == breakdown.window("24h").n


def test_the_pending_gauges_of_a_quiet_worker_reach_the_timer_export() -> None:
    """On Kafka, the 10 s timer calls Aggregator.export_pending: a burst's tail with no later traffic."""
    pipeline, registry = burst(records=3_000, seconds=900.0)
    more = to_records(TrafficGenerator(seed=15, rate=5.0).records(600))
    for _, _, stream, raw, source, number in itertools.islice(more, 700):
        pipeline.process(stream, raw, source_topic=source, offset=number)
    pipeline.flush()
    pipeline.aggregator.export_pending()
    for (judge_id, dimension), breakdown in breakdowns(pipeline):
        labels = {"judge_id": judge_id, "dimension": dimension, "window": "24h"}
        n = registry.get_sample_value("convowatch_judge_window_agreement_pairs", labels)
        assert n == breakdown.window("24h").n


def test_after_a_restart_the_live_model_version_is_shown_not_folded_by_the_retired_ones() -> None:
    """The model version changes every 4 minutes, 8 in all, against a label guard of 5: the restarted
    worker's guards keep the room for the version of the traffic after the restart (before the fix the
    recovered state's first five took it, and the live version was ``other``). (The version tests' gauges
    of every pair still live, the retired versions' included, are published with the live one's and take
    room too: label guards are never freed, ``ConvowatchLabelValuesFolded``.)"""
    settings = Settings(label_max_values=5)

    def versions(records: Iterator[Any], last: int | None = None) -> Iterator[Any]:
        start = None
        for ts, offset, stream, raw, source, number in records:
            if stream.value == "chat_turns":
                start = ts if start is None else start
                version = min(int((ts - start) / 240), 7) if last is None else last
                turn = orjson.loads(raw)
                turn["model_version"] = f"mv{version}"
                raw = orjson.dumps(turn)
            yield ts, offset, stream, raw, source, number

    records = list(to_records(TrafficGenerator(seed=13, rate=5.0).records(40 * 60, drain=True)))
    cut = next(i for i, r in enumerate(records) if r[0] - records[0][0] >= 32 * 60)
    first = Pipeline(settings, Metrics(CollectorRegistry(), label_max_values=5), batched=True)
    run_records(first, versions(iter(records[:cut])), lambda emit: None)

    registry = CollectorRegistry()
    metrics = Metrics(registry, label_max_values=5)
    restarted = Pipeline(settings, metrics, aggregate_store=first.aggregator.store, batched=True)
    restarted.aggregator.rebalanced()
    keys = [k for k, _ in restarted.aggregator.store.items()]
    export_agreement(metrics, restarted.aggregator, keys, lambda shard: True)
    restarted.aggregator.export_owned(keys, lambda shard: True)
    run_records(restarted, versions(iter(records[cut:]), last=7), lambda emit: None)

    live = {
        value
        for name in ("convowatch_judge_segment_agreement_pairs", "convowatch_version_outcome_lift")
        for series in samples(registry, name)
        for label, value in series
        if label in ("segment_value", "treatment") and value == "mv7"
    }
    assert live, "the live model version has no series"


def test_a_worker_that_takes_over_shows_the_series_the_live_path_folds_into_other() -> None:
    """Label guards of 2 values: the version tests of the versions past them are published under ``other``
    by the live path, and a worker that takes the shards over shows them too (the day's last review: the
    re-export left every series with ``other`` out, 1 version lift, 4 outcome lifts, 7 calibrated lifts)."""
    pipeline, registry = burst(label_max_values=2)
    taken = fresh_owner(pipeline, lambda shard: True)
    folded = 0
    for name in THROTTLED:
        before, after = samples(registry, name), samples(taken, name)
        assert before.keys() == after.keys(), name
        folded += sum("other" in dict(series).values() for series in before)
    assert folded >= 10
