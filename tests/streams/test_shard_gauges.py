"""After a rebalance a worker shows the gauges of the observation shards it owns, and only those."""

from __future__ import annotations

import math

from prometheus_client import CollectorRegistry

from detectors import AgreementTracker
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
    metrics.spike_active.labels("unsafe", "shopper", "shop-v1", "*", "judge-b").set(
        1.0
    )  # before the rebalance

    export_spikes(metrics, aggregator, keys, owns=lambda shard: shard in ("judge-a", "humans"))

    def active(source: str) -> float | None:
        labels = {"category": "unsafe", "journey": "shopper", "model_version": "shop-v1", "intent": "*"}
        return registry.get_sample_value("convowatch_defect_spike_active", labels | {"source": source})

    assert active("judge-a") == 1.0 and active("humans") == 1.0  # recovered in alarm: shown at once
    assert active("judge-b") is None  # its shard is another worker's now
