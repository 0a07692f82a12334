"""After a rebalance a worker shows the gauges of the observation shards it owns, and only those."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry

from detectors import AgreementTracker
from detectors.agreement_breakdown import AgreementBreakdown
from streams.aggregate import Aggregator, key
from streams.metrics import Metrics
from streams.shard_gauges import SHARD_GAUGES, clear_lost_shards, export_agreement, export_spikes


def agreement_aggregator(metrics: Metrics, pairs: dict[tuple[str, str], list[tuple[str, str]]]) -> Aggregator:
    """An aggregator holding an agreement tracker per (judge, dimension), fed ``(judge, human)`` labels."""
    aggregator = Aggregator(metrics)
    for (judge_id, dimension), labels in pairs.items():
        for offset, (judge_label, human_label) in enumerate(labels):
            observation = {"kind": "pair", "src": ["judge_verdicts:0", offset, 0]}
            aggregator.update(
                key("agreement", judge_id, dimension),
                observation,
                None,
                AgreementTracker,
                lambda t, a=judge_label, b=human_label: t.update(a, b),
            )
    aggregator.flush()
    return aggregator


def test_agreement_gauges_are_exported_for_owned_judges_only_and_stale_ones_cleared() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    pairs = {
        ("judge-a", "safety"): [("pass", "pass"), ("fail", "fail"), ("pass", "fail"), ("pass", "pass")],
        ("judge-b", "safety"): [("pass", "pass")],
    }
    aggregator = agreement_aggregator(metrics, pairs)
    metrics.agreement_ratio.labels("judge-b", "safety").set(0.5)  # shown before the rebalance
    keys = [key("agreement", judge, dim) for judge, dim in pairs] + [key("spike", "unsafe", "shopper")]

    export_agreement(metrics, aggregator, keys, owns=lambda shard: shard == "judge-a")

    labels = {"judge_id": "judge-a", "dimension": "safety"}
    assert registry.get_sample_value("convowatch_judge_agreement_ratio", labels) == 0.75
    assert registry.get_sample_value("convowatch_judge_agreement_pairs", labels) == 4.0
    kappa = registry.get_sample_value("convowatch_judge_cohen_kappa", labels)
    assert kappa is not None and math.isclose(kappa, 0.5)
    lost = {"judge_id": "judge-b", "dimension": "safety"}
    assert registry.get_sample_value("convowatch_judge_agreement_ratio", lost) is None


def test_gauges_of_single_shard_aggregates_are_cleared_when_their_shard_is_lost() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.raters_alpha.labels("safety").set(0.8)
    metrics.review_expected_per_hour.set(42.0)

    clear_lost_shards(metrics, owns=lambda shard: shard == "review")

    assert registry.get_sample_value("convowatch_raters_krippendorff_alpha", {"dimension": "safety"}) is None
    assert registry.get_sample_value("convowatch_review_expected_requests_per_hour") == 42.0  # still owned

    clear_lost_shards(metrics, owns=lambda shard: False)
    # a gauge without labels cannot be removed: NaN, which max() across workers skips and alerts never match
    expected = registry.get_sample_value("convowatch_review_expected_requests_per_hour")
    assert expected is not None and math.isnan(expected)
    assert set(SHARD_GAUGES) == {"humans", "review"}


def test_open_spikes_are_exported_for_owned_sources_only_after_a_rebalance() -> None:
    from detectors.category_spikes import CategorySpikes
    from streams.taxonomy import load_taxonomy
    from streams.views.spikes import category_severities

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    aggregator = Aggregator(metrics)
    keys = []
    for source in ("judge-a", "judge-b", "humans"):
        spike_key = key("spike", source, "journey=shopper", "model_version=shop-v1")
        keys.append(spike_key)

        def alarm(spikes: CategorySpikes) -> None:
            for i in range(2_400):  # a 2% baseline, then every turn unsafe: an alarm
                spikes.update(["unsafe"], ["unsafe"] if i >= 2_300 or i % 50 == 0 else [], ref=i)

        aggregator.update(spike_key, {"kind": "judged", "src": [source, 0, 0]}, None, CategorySpikes, alarm)
    aggregator.flush()
    assert all(aggregator.detector(k).in_alarm == ["unsafe"] for k in keys)  # type: ignore[union-attr]
    metrics.spike_active.labels("unsafe", "shopper", "shop-v1", "*", "judge-b", "critical").set(
        1.0
    )  # before the rebalance

    severity = category_severities(load_taxonomy())
    export_spikes(metrics, aggregator, keys, lambda shard: shard in ("judge-a", "humans"), severity)

    def active(source: str) -> float | None:
        labels = {"category": "unsafe", "journey": "shopper", "model_version": "shop-v1", "intent": "*"}
        labels |= {"source": source, "severity": "critical"}  # unsafe's in the taxonomy
        return registry.get_sample_value("convowatch_defect_spike_active", labels)

    assert active("judge-a") == 1.0 and active("humans") == 1.0  # recovered in alarm: shown at once
    assert active("judge-b") is None  # its shard is another worker's now

    # restarted with unsafe's dimensions moved to another category: the recovered alarm is not shown (it
    # raised KeyError in the rebalance handler), and nothing else changes
    export_spikes(metrics, aggregator, keys, lambda shard: True, {"biased": "critical"})
    assert [active(source) for source in ("judge-a", "judge-b", "humans")] == [None] * 3


def test_children_of_lost_shards_are_removed_and_owned_or_folded_ones_kept() -> None:
    from streams.shard_gauges import clear_lost_children

    registry = CollectorRegistry()
    m = Metrics(registry)
    m.judge_ece.labels("judge-a", "safety").set(0.1)
    m.judge_ece.labels("judge-b", "safety").set(0.2)
    m.judge_ece.labels("other", "safety").set(0.3)  # folded judges: no one shard
    m.segment_agreement_ratio.labels("judge-b", "safety", "journey", "shopper").set(0.9)
    m.segment_agreement_ratio.labels("judge-b", "safety", "vendor", "acme").set(0.8)  # from human labels
    m.guardrail_recall.labels("human", "", "shop-v1").set(0.7)
    m.guardrail_recall.labels("judge", "judge-b", "shop-v1").set(0.6)
    m.version_outcome_decision.labels("shopper", "escalated", "v1", "v2").set(-1)
    m.version_outcome_decision.labels("driver_support", "escalated", "v1", "v2").set(1)

    owned = {"judge-a", "humans", "driver_support"}
    clear_lost_children(m, owns=lambda shard: shard in owned)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert value("convowatch_judge_expected_calibration_error", judge_id="judge-a", dimension="safety") == 0.1
    assert (
        value("convowatch_judge_expected_calibration_error", judge_id="judge-b", dimension="safety") is None
    )
    assert value("convowatch_judge_expected_calibration_error", judge_id="other", dimension="safety") == 0.3
    segment = {"judge_id": "judge-b", "dimension": "safety"}
    ratio = "convowatch_judge_segment_agreement_ratio"
    assert value(ratio, **segment, segment="journey", segment_value="shopper") is None
    assert value(ratio, **segment, segment="vendor", segment_value="acme") == 0.8
    assert (
        value("convowatch_guardrail_recall_ratio", source="human", judge_id="", model_version="shop-v1")
        == 0.7
    )
    assert (
        value(
            "convowatch_guardrail_recall_ratio", source="judge", judge_id="judge-b", model_version="shop-v1"
        )
        is None
    )
    decision = "convowatch_version_outcome_decision"
    outcome = {"outcome": "escalated", "control": "v1", "treatment": "v2"}
    assert value(decision, journey="shopper", **outcome) is None
    assert value(decision, journey="driver_support", **outcome) == 1.0


def test_every_labelled_gauge_says_how_it_is_refreshed_after_a_rebalance() -> None:
    # a gauge added later must be placed: sharded by its labels, on one shard, refreshed from the recovered
    # state, or not an aggregate's at all
    from prometheus_client import Gauge

    from streams.shard_gauges import KEYED_GAUGES

    refreshed = {"agreement_ratio", "cohen_kappa", "agreement_pairs", "spike_active"}
    per_worker = {"last_event_time", "aggregates", "consumer_lag", "assigned_partitions", "worker_role"}
    per_worker |= {"spike_budget_turns"}  # configuration, the same on every worker
    single_shard = {name for names in SHARD_GAUGES.values() for name in names}
    metrics = Metrics(CollectorRegistry())
    gauges = {name for name, value in vars(metrics).items() if isinstance(value, Gauge) and value._labelnames}
    placed = set(KEYED_GAUGES) | single_shard | refreshed | per_worker
    assert gauges - placed == set()
    assert set(KEYED_GAUGES) & (single_shard | refreshed | per_worker) == set()


def test_open_flags_forget_the_detectors_of_lost_shards() -> None:
    # a folded judge series ("other") held open by a judge whose shard moved away reads 0 once that judge
    # is forgotten, while one held by an owned judge stays 1; a removed series is not brought back
    registry = CollectorRegistry()
    m = Metrics(registry)
    flags = m.perceptual_open
    flags.set(("other", "image", "v1", "clip"), ("judge-lost", "image", "v1", "clip"), True)
    flags.set(("other", "audio", "v1", "clip"), ("judge-kept", "audio", "v1", "clip"), True)
    flags.set(("judge-lost", "image", "v1", "clip"), ("judge-lost", "image", "v1", "clip"), True)
    m.perceptual_drift_active.remove("judge-lost", "image", "v1", "clip")  # clear_lost_children did it

    flags.retain(lambda member: member[0] != "judge-lost")

    def active(judge: str, modality: str) -> float | None:
        labels = {"judge_id": judge, "modality": modality, "model_version": "v1", "score": "clip"}
        return registry.get_sample_value("convowatch_perceptual_drift_active", labels)

    assert active("other", "image") == 0.0
    assert active("other", "audio") == 1.0
    assert active("judge-lost", "image") is None


def test_after_a_restart_the_judges_with_the_newest_pairs_take_the_label_guards_room() -> None:
    # five judges, one after another (a judge id per judge version); room for two in the fresh process's
    # guard. In the state's order the oldest took the room, the newest showed as other, and the folds
    # counted at once raised ConvowatchLabelValuesFolded again after the restart its runbook advises.
    registry = CollectorRegistry()
    metrics = Metrics(registry, label_max_values=2)
    judges = [f"judge-{i}" for i in range(5)]
    aggregator = agreement_aggregator(metrics, {(j, "safety"): [("pass", "pass")] * 3 for j in judges})
    day = 1_798_000_000.0
    for i, judge in enumerate(judges):
        observation = {"kind": "pair", "src": ["judge_verdicts:1", i, 0]}
        aggregator.update(
            key("agreement_detail", judge, "safety"),
            observation,
            None,
            AgreementBreakdown,
            lambda b, ts=day + 3600 * i: b.update(ts, None, "pass", "pass"),
        )
    aggregator.flush()

    export_agreement(
        metrics, aggregator, [key("agreement", j, "safety") for j in judges], owns=lambda s: True
    )

    exported = {
        s.labels["judge_id"]
        for family in registry.collect()
        for s in family.samples
        if s.name == "convowatch_judge_agreement_pairs"
    }
    assert exported == {"judge-3", "judge-4"}
    assert registry.get_sample_value("convowatch_label_value_folds_total", {"label": "judge_id"}) is None
    assert metrics.label("judge_id", "judge-4") == "judge-4"  # its new pairs keep their own series
