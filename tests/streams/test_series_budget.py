"""Series budgets: every family's series stay bounded whatever combination of admitted label values arrives,
an admitted combination keeps its own series, and what goes past a budget is counted."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry, generate_latest

from schemas import QUALITY_DIMENSIONS, Stream
from streams.config import Settings
from streams.generator import TrafficGenerator, to_records
from streams.metrics import Metrics
from streams.pipeline import REASONS, Pipeline
from streams.series_budget import (
    DEFECT_COMBINATIONS,
    KEPT_FOLDS,
    OUTCOME_SEGMENTS,
    PERCEPTUAL_SCORES,
    SPIKE_SLICES,
    CappedCounter,
    CappedFamily,
    CappedGauge,
    CappedHistogram,
)

#: The bound the README's "Metrics" section states for the whole exposition at full budgets.
STATED_BOUND = 50_000
START = datetime(2026, 11, 2, 8, tzinfo=UTC)
MODALITIES = ["text", "image", "audio", "video", "3d"]
#: The values the per-combination labels take (agreement windows: the default configuration's).
PER_COMBINATION_VALUES = {
    "source": ["judge", "human"],
    "bound": ["lower", "upper"],
    "statistic": ["percent_agreement", "cohen_kappa", "gwet_ac1"],
    "arm": ["control", "treatment"],
    "sample": ["judged", "labelled"],
    "window": list(Settings().agreement_windows),
    "quantile": ["0.5", "0.9"],
    "severity": ["critical"],  # a spike's: its category's, so one per combination
    "sla": ["labels_per_hour", "turnaround", "gold_accuracy", "judge_agreement", "consensus_agreement"],
    "reason": ["high_risk", "segment_coverage", "disagreement", "uncertain", "random"],
    "step": ["add_to_cart", "purchase"],
    "feedback": ["up", "down"],
    "outcome": ["escalated_to_agent", "thumbs_down", "contained", "task_completed"],
}
#: Labels whose values come from code or configuration (stream, topic...), in families without a budget.
FIXED = {"stream", "reason", "topic", "kind", "severity", "result", "stage", "table", "role", "partition"}


def _series(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


def _samples(registry: CollectorRegistry, name: str) -> list[Any]:
    return [s for family in registry.collect() for s in family.samples if s.name == name]


def _folded(registry: CollectorRegistry, metric: str) -> float | None:
    return registry.get_sample_value("convowatch_series_folded_total", {"metric": metric})


# -- the families ------------------------------------------------------------------------------------


def test_a_combination_admitted_keeps_its_series_and_later_ones_fold_into_other() -> None:
    registry = CollectorRegistry()
    counter = CappedCounter("c_total", "", ["journey", "model_version"], registry=registry, combinations=3)
    for journey, version in itertools.product(["a", "b"], ["v1", "v2", "v3"]):  # 6 combinations of 2 x 3
        counter.labels(journey, version).inc()
    counter.labels("a", "v1").inc(5)  # admitted first: still its own series
    counter.labels("b", "v3").inc(2)  # past the budget: folded again
    values = {
        (s.labels["journey"], s.labels["model_version"]): s.value for s in _samples(registry, "c_total")
    }
    assert values == {("a", "v1"): 6.0, ("a", "v2"): 1.0, ("a", "v3"): 1.0, ("other", "other"): 5.0}
    assert counter.folded == 4  # updates, not combinations: b/v3 twice


def test_a_histogram_past_its_budget_observes_into_the_folded_series() -> None:
    registry = CollectorRegistry()
    histogram = CappedHistogram("h", "", ["score"], buckets=(0.5, 1.0), registry=registry, combinations=1)
    for score, value in [("clip", 0.2), ("artifact", 0.7), ("aesthetic", 0.9), ("clip", 0.4)]:
        histogram.labels(score).observe(value)
    counts = {s.labels["score"]: s.value for s in _samples(registry, "h_count")}
    assert counts == {"clip": 2.0, "other": 2.0}
    assert histogram.folded == 2


def test_per_combination_labels_take_every_value_and_a_dropped_gauge_is_not_exported() -> None:
    registry = CollectorRegistry()
    gauge = CappedGauge(
        "g", "", ["judge_id", "bound"], registry=registry, combinations=2, per_combination=["bound"]
    )
    gauge.labels("judge-a", "lower").set(0.1)
    gauge.labels("judge-b", "lower").set(0.2)
    gauge.labels("judge-c", "lower").set(0.3)  # a third judge: a figure in "other" would be meaningless
    gauge.labels("judge-a", "upper").set(0.4)  # the bounds of an admitted judge come together
    gauge.labels("judge-c", "upper").set(0.5)
    exported = {(s.labels["judge_id"], s.labels["bound"]) for s in _samples(registry, "g")}
    assert exported == {("judge-a", "lower"), ("judge-a", "upper"), ("judge-b", "lower")}
    assert gauge.folded == 2


def test_removed_and_cleared_children_give_their_room_back() -> None:
    gauge = CappedGauge("g", "", ["judge_id"], registry=CollectorRegistry(), combinations=1)
    gauge.labels("judge-a").set(1)
    gauge.labels("judge-b").set(1)
    assert list(gauge._metrics) == [("judge-a",)]
    gauge.remove("judge-a")  # its shard moved to another worker
    gauge.labels("judge-b").set(1)
    assert list(gauge._metrics) == [("judge-b",)]
    gauge.clear()
    gauge.labels("judge-c").set(1)
    assert list(gauge._metrics) == [("judge-c",)]


def test_labels_by_name_and_bad_labels_behave_as_in_prometheus_client() -> None:
    counter = CappedCounter("c_total", "", ["a", "b"], registry=CollectorRegistry(), combinations=1)
    assert counter.labels(a="x", b="y") is counter.labels("x", "y")
    with pytest.raises(ValueError, match="Incorrect label count"):
        counter.labels("x")
    with pytest.raises(ValueError, match="Incorrect label names"):
        counter.labels(a="x", c="y")
    with pytest.raises(ValueError, match="combinations"):
        CappedCounter("d_total", "", ["a"], registry=CollectorRegistry(), combinations=0)
    with pytest.raises(ValueError, match="per_combination"):
        CappedCounter(
            "e_total", "", ["a"], registry=CollectorRegistry(), combinations=1, per_combination=["z"]
        )


def test_every_family_with_a_guarded_label_has_a_budget() -> None:
    metrics = Metrics(CollectorRegistry())
    for name, family in vars(metrics).items():
        labels = set(getattr(family, "_labelnames", ()))
        if labels and not isinstance(family, CappedFamily):
            # spike_turns and spike_budget_turns: source is "judges" or "humans"
            assert labels <= FIXED | ({"source"} if name.startswith("spike_") else set()), name


def test_at_full_budgets_the_exposition_stays_under_the_stated_bound() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    # the families without a budget: every stream, dead-letter reason, and 30 output topics
    metrics.zero_known_children(
        [s.value for s in Stream], [*REASONS, "internal_error"], [f"t{i}" for i in range(30)]
    )
    for family in metrics.capped:
        per = family.per_combination
        # every combination with every per-combination value, then 10 past the budget, or past KEPT_FOLDS
        # too for a family whose folded series keep some labels (whatever CONVOWATCH_LABEL_MAX_VALUES admits)
        extra = KEPT_FOLDS + 10 if family.kept_on_fold else 10
        for i in range(family.combinations + extra):
            for fixed in itertools.product(*(PER_COMBINATION_VALUES[name] for name in per)):
                values = dict(zip(per, fixed, strict=True))
                child = family.labels(*(values.get(name, f"{name}-{i}") for name in family._labelnames))
                if family._type == "histogram":
                    child.observe(0.5)
                elif family._type == "counter":
                    child.inc()
                else:
                    child.set(1.0)
        per_values = 1
        for name in per:
            per_values *= len(PER_COMBINATION_VALUES[name])
        # one folded series, or one per value of the labels kept on folding up to KEPT_FOLDS, then one more
        folded = (KEPT_FOLDS + 1 if family.kept_on_fold else 1) if family.overflow == "fold" else 0
        assert len(family._metrics) == (family.combinations + folded) * per_values, family._name
        assert family.folded == extra * per_values, family._name
    total = _series(registry)
    assert total <= STATED_BOUND
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert f"{STATED_BOUND:,} series" in readme


# -- the review's scenarios, through the pipeline ------------------------------------------------------


def _perceptual_traffic(pipeline: Pipeline, judges: int, versions: int, names: int) -> int:
    """Turns of every model version and modality, each judged by ``judges`` judges with 16 score names
    out of ``names`` (the first 16 on a version's first turn, the last 16 on its second): every value
    within its label guard (5 judges: 10,000 combinations). Returns the scores observed."""
    observed = 0
    segments = itertools.product(range(versions), MODALITIES, range(2))
    for n, (version, modality, half) in enumerate(segments, start=1):
        ts = (START + timedelta(seconds=n)).isoformat()
        turn = {
            "turn_id": f"t{n}",
            "conversation_id": f"c{n}",
            "ts": ts,
            "journey": "shopper",
            "channel": "chat",
            "model_version": f"m-v{version}",
            "modality": modality,
        }
        pipeline.process(Stream.CHAT_TURNS, orjson.dumps(turn), source_topic="in", offset=3 * n)
        scored = range(16) if half == 0 else range(names - 16, names)
        for judge in range(judges):
            verdict = {
                "turn_id": f"t{n}",
                "ts": ts,
                "judge_id": f"judge-{judge}",
                "judge_version": "1",
                "verdicts": [{"dimension": "relevance", "label": "pass"}],
                "scores": {f"score_{k}": 0.5 for k in scored},
            }
            pipeline.process(
                Stream.JUDGE_VERDICTS, orjson.dumps(verdict), source_topic="in", offset=3 * n + 1 + judge
            )
            observed += len(scored)
    return observed


def test_perceptual_scores_of_admitted_values_stay_within_the_budget() -> None:
    # 1,200 valid records made 244,057 series (29.8 MB of exposition) before the budget
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(), Metrics(registry))
    observed = _perceptual_traffic(pipeline, judges=5, versions=20, names=20)
    counts = {
        tuple(s.labels[k] for k in ("judge_id", "modality", "model_version", "score")): s.value
        for s in _samples(registry, "convowatch_perceptual_score_count")
    }
    assert len(counts) <= PERCEPTUAL_SCORES + 1
    assert _series(registry) <= STATED_BOUND
    assert len(generate_latest(registry)) < 2_000_000
    # nothing lost: every score is in a series, the folded ones in "other" and counted
    assert sum(counts.values()) == observed
    folded = counts[("other",) * 4]
    assert folded > 0 and _folded(registry, "convowatch_perceptual_score") == folded
    # the first combination keeps its series: scores 4-15 of m-v0 were scored on both of its turns
    assert counts["judge-0", "text", "m-v0", "score_4"] == 2.0
    assert counts["judge-0", "text", "m-v0", "score_0"] == 1.0


def test_defects_of_every_combination_of_admitted_segments_stay_within_the_budget() -> None:
    # 1,000 turns, one per combination of 10 journeys x 10 model versions x 5 modalities x 2 channels, each
    # failed on the 8 quality dimensions: 8,000 defect series before the budget
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(), Metrics(registry), batched=True)
    combinations = itertools.product(range(10), range(10), MODALITIES, ["chat", "voice"])
    for n, (journey, version, modality, channel) in enumerate(combinations):
        ts = (START + timedelta(seconds=n)).isoformat()
        turn = {
            "turn_id": f"t{n}",
            "conversation_id": f"c{n}",
            "ts": ts,
            "journey": f"j{journey}",
            "model_version": f"m{version}",
            "modality": modality,
            "channel": channel,
        }
        verdict = {
            "turn_id": f"t{n}",
            "ts": ts,
            "judge_id": "judge-a",
            "judge_version": "1",
            "verdicts": [{"dimension": d, "label": "fail"} for d in sorted(QUALITY_DIMENSIONS)],
        }
        pipeline.process(Stream.CHAT_TURNS, orjson.dumps(turn), source_topic="c", offset=n)
        pipeline.process(Stream.JUDGE_VERDICTS, orjson.dumps(verdict), source_topic="v", offset=n)
    pipeline.flush()
    defects = _samples(registry, "convowatch_defects_total")
    assert len(defects) <= DEFECT_COMBINATIONS + 1
    assert sum(s.value for s in defects) == 1_000 * len(QUALITY_DIMENSIONS)
    # j0's turns came first: each of its 100 turns has its 8 series, one defect each
    first = [s.value for s in defects if s.labels["journey"] == "j0"]
    assert first == [1.0] * 100 * len(QUALITY_DIMENSIONS)
    folded = [s.value for s in defects if s.labels["journey"] == "other"]
    assert folded and _folded(registry, "convowatch_defects_total") == sum(folded)


def test_generated_traffic_folds_nothing() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    pipeline = Pipeline(Settings(), metrics, batched=True)
    for _, _, stream, raw, source, offset in to_records(TrafficGenerator(seed=3, rate=20).records(900)):
        pipeline.process(stream, raw, source_topic=source, offset=offset)
    pipeline.flush()
    assert _samples(registry, "convowatch_defects_total")  # the traffic reached the metrics
    assert [family._name for family in metrics.capped if family.folded] == []
    assert _samples(registry, "convowatch_series_folded_total") == []


def test_a_journey_keeps_its_name_and_a_slice_its_stars_when_their_combination_folds() -> None:
    # the review's case: a new model version past the outcome budget made every journey's own series go
    # flat and ConvowatchJourneySilent page them all; a spike slice folded to other/other/other/other
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for version in range(OUTCOME_SEGMENTS):
        metrics.conversations.labels("shopper", f"v{version}", "chat").inc()
    metrics.conversations.labels("shopper", "v-new", "chat").inc(3)
    metrics.conversations.labels("driver", "v-new", "voice").inc(2)
    total = "convowatch_conversations_total"
    assert (
        registry.get_sample_value(total, {"journey": "shopper", "model_version": "other", "channel": "other"})
        == 3
    )
    assert (
        registry.get_sample_value(total, {"journey": "driver", "model_version": "other", "channel": "other"})
        == 2
    )
    assert metrics.conversations.folded == 2
    flags = metrics.spike_active
    for i in range(SPIKE_SLICES):
        flags.labels(f"c{i}", "shopper", "*", "*", "judge-a", "medium").set(0)
    # the severity (the category's) is kept: the backstop alert routes on it
    assert flags.series("unsafe", "driver", "v-new", "*", "humans", "critical") == (
        "unsafe",
        "driver",
        "other",
        "*",
        "other",
        "critical",
    )
    assert flags.series("unsafe", "driver", "*", "*", "humans", "critical") == (
        "unsafe",
        "driver",
        "*",
        "*",
        "other",
        "critical",
    )


def test_folded_series_of_kept_values_are_bounded_whatever_the_guards_admit() -> None:
    # a review's case: with CONVOWATCH_LABEL_MAX_VALUES at 1,000, every journey had a folded series of its
    # own in every outcome family (1,200 children for a budget of 200)
    metrics = Metrics(CollectorRegistry(), label_max_values=1_000)
    conversations = metrics.conversations
    for version in range(OUTCOME_SEGMENTS):
        conversations.labels("shopper", f"v{version}", "chat").inc()
    for journey in range(1_000):
        conversations.labels(f"journey-{journey}", "v-new", "chat").inc()
    assert len(conversations._metrics) == OUTCOME_SEGMENTS + KEPT_FOLDS + 1
    assert conversations.folded == 1_000
    total = sum(s.value for s in conversations.collect()[0].samples if s.name.endswith("_total"))
    assert total == OUTCOME_SEGMENTS + 1_000  # every conversation counted somewhere
