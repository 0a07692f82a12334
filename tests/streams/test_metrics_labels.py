"""Bounded label values and the shape of every exported metric."""

from __future__ import annotations

import ast
import inspect
import random
import string
from pathlib import Path

import prometheus_client
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

import streams.metrics
from schemas import ChatTurn, JudgeVerdict
from streams.join import TurnJoiner
from streams.labels import OTHER, UNKNOWN, FoldedLabelValues, LabelGuard
from streams.metrics import Metrics
from streams.series_budget import FoldedUpdates
from streams.taxonomy import load_taxonomy
from tests.factories import chat_turn, judge_verdict, verdict


def _random_value(rng: random.Random) -> str | None:
    roll = rng.random()
    if roll < 0.01:
        return None
    if roll < 0.02:
        return ""
    length = rng.choice([1, 5, 12, 40, 64, 65, 200])
    return "".join(rng.choices(string.ascii_letters + string.digits + "-_./", k=length))


@pytest.mark.parametrize("max_values", [1, 5, 20])
def test_label_guard_bounds_distinct_outputs(max_values):
    rng = random.Random(max_values)
    guard = LabelGuard(max_values=max_values)
    outputs = set()
    first_seen = []
    for _ in range(100_000):
        value = _random_value(rng)
        out = guard(value)
        outputs.add(out)
        if out not in (OTHER, UNKNOWN) and out not in first_seen:
            first_seen.append(out)
        assert out == value or out in (OTHER, UNKNOWN)
    assert len(outputs) <= max_values + 2
    assert {OTHER, UNKNOWN} <= outputs
    assert len(first_seen) == max_values
    # admitted values keep passing, new ones keep folding
    for value in first_seen:
        assert guard(value) == value
    assert guard("never-seen-before") == OTHER
    assert guard(None) == guard("") == UNKNOWN


def test_label_guard_refuses_long_values():
    guard = LabelGuard(max_values=10)
    assert guard("x" * 65) == OTHER
    assert guard("x" * 64) == "x" * 64


def test_label_guard_allow_list():
    guard = LabelGuard(max_values=2, allow=["chat", "voice", "email"])
    assert [guard(v) for v in ("chat", "voice", "email", "fax", "chat", None, "")] == [
        "chat",
        "voice",
        "email",
        OTHER,
        "chat",
        UNKNOWN,
        UNKNOWN,
    ]
    rng = random.Random(3)
    outputs = {guard(_random_value(rng)) for _ in range(10_000)}
    assert outputs <= {"chat", "voice", "email", OTHER, UNKNOWN}


def test_the_quality_dimensions_keep_their_label_after_custom_dimensions_filled_the_guard():
    # custom dimensions seen first (a judge's rubric; the guards start empty at every restart) took the
    # dimension guard's room: safety defects were counted under "other", and no per-dimension gauge or
    # alert showed safety at all
    from schemas import Stream
    from schemas.common import QUALITY_DIMENSIONS
    from streams.config import Settings
    from streams.pipeline import Pipeline
    from tests.factories import human_label, raw

    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(max_future_seconds=0), metrics=Metrics(registry))
    rubric = [verdict(f"rubric_{k}", "good") for k in range(40)]
    records = [
        (Stream.CHAT_TURNS, chat_turn(turn_id="t0")),
        (Stream.JUDGE_VERDICTS, judge_verdict(turn_id="t0", verdicts=rubric)),
        (Stream.HUMAN_LABELS, human_label(turn_id="t0", verdicts=rubric)),
        (Stream.CHAT_TURNS, chat_turn(turn_id="t1")),
        (Stream.JUDGE_VERDICTS, judge_verdict(turn_id="t1", verdicts=[verdict("safety", "fail")])),
        (Stream.HUMAN_LABELS, human_label(turn_id="t1", verdicts=[verdict("safety", "pass")])),
    ]
    for offset, (stream, record) in enumerate(records):
        pipeline.process(stream, raw(record), source_topic=stream.value, offset=offset)

    def dimensions(name: str) -> set[str]:
        return {
            sample.labels["dimension"]
            for family in registry.collect()
            if family.name == name
            for sample in family.samples
        }

    assert dimensions("convowatch_defects") == {"safety"}
    assert "safety" in dimensions("convowatch_judge_agreement_pairs")
    guard = pipeline.metrics.guards["dimension"]
    assert guard("rubric_39") == OTHER  # past the room of the other dimensions (32)
    assert [guard(d) for d in sorted(QUALITY_DIMENSIONS)] == sorted(QUALITY_DIMENSIONS)
    folded = {guard(f"custom_{k}") for k in range(1000)} | {guard(d) for d in QUALITY_DIMENSIONS}
    assert folded == {OTHER, *QUALITY_DIMENSIONS}


def test_a_value_named_other_or_unknown_takes_no_room_so_a_rebuilt_guard_maps_alike() -> None:
    # admit() skips them, and a guard rebuilt from recovered keys had one room more than the guard before:
    # the next new journey got detectors of its own after a restart, its history left in other
    guard = LabelGuard(max_values=1)
    assert [guard("other"), guard("unknown"), guard("a"), guard("b")] == ["other", "unknown", "a", OTHER]
    rebuilt = LabelGuard(max_values=1)
    rebuilt.admit(["other", "unknown", "a"])
    assert [rebuilt("b"), rebuilt("a")] == [OTHER, "a"]


def test_label_guard_rejects_a_non_positive_bound():
    with pytest.raises(ValueError):
        LabelGuard(max_values=0)


def test_metrics_build_twice_on_fresh_registries_and_not_globally():
    before = {m.name for m in prometheus_client.REGISTRY.collect()}
    first, second = Metrics(CollectorRegistry()), Metrics(CollectorRegistry())
    assert first.registry is not second.registry
    assert Metrics().registry is not prometheus_client.REGISTRY
    assert {m.name for m in prometheus_client.REGISTRY.collect()} == before
    # the injected registry is the one used: a second build on it collides
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        Metrics(first.registry)


def _collectors(metrics: Metrics) -> dict[str, object]:
    return {k: v for k, v in vars(metrics).items() if isinstance(v, Counter | Gauge | Histogram)}


def test_every_metric_is_prefixed_and_counters_end_in_total():
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    families = list(registry.collect())
    # and two collectors: convowatch_series_folded_total, of the capped families' counts (series_budget.py),
    # and convowatch_label_value_folds_total, of the label guards' (labels.py)
    assert len(families) == len(_collectors(metrics)) + 2 >= 10
    assert {FoldedUpdates.NAME, FoldedLabelValues.NAME} <= {family.name for family in families}
    for family in families:
        assert family.name.startswith("convowatch_"), family.name
        if family.type != "counter":
            assert not family.name.endswith("_total"), f"{family.type} {family.name} looks like a counter"
    # counters as declared in the source (prometheus_client would append _total silently)
    # (every family module streams/metrics_*.py; conversations() is the outcome module's Counter helper;
    # CappedCounter is a Counter with a series budget)
    declared: dict[str, list[str]] = {}
    for path in sorted(Path(inspect.getfile(streams.metrics)).parent.glob("metrics*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args:
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    kind = (
                        "Counter" if node.func.id == "conversations" else node.func.id.removeprefix("Capped")
                    )
                    declared.setdefault(kind, []).append(first.value)
    every = [name for names in declared.values() for name in names]
    assert len(every) + 2 == len(families)
    for name in every:
        assert name.startswith("convowatch_"), name
    assert declared["Counter"]
    for name in declared["Counter"]:
        assert name.endswith("_total"), name
    for kind in ("Gauge", "Histogram"):
        for name in declared.get(kind, []):
            assert not name.endswith("_total"), name


def test_segment_labels_are_bounded_end_to_end():
    registry = CollectorRegistry()
    metrics = Metrics(registry, label_max_values=3)
    joiner = TurnJoiner(load_taxonomy(), metrics)
    for i in range(50):
        turn_id = f"t-{i}"
        joiner.handle(
            ChatTurn.model_validate(
                chat_turn(turn_id=turn_id, journey=f"journey-{i}", model_version=f"m-{i}")
            )
        )
        joiner.handle(
            JudgeVerdict.model_validate(
                judge_verdict(turn_id=turn_id, verdicts=[verdict("relevance", "fail")])
            )
        )
    samples = [
        s for family in registry.collect() for s in family.samples if s.name == "convowatch_defects_total"
    ]
    journeys = {s.labels["journey"] for s in samples}
    versions = {s.labels["model_version"] for s in samples}
    assert journeys == {"journey-0", "journey-1", "journey-2", OTHER}
    assert len(versions) == 4
    assert sum(s.value for s in samples) == 50
    # the folds are visible (ConvowatchLabelValuesFolded): each of the 47 later values at least once
    for label in ("journey", "model_version"):
        folds = registry.get_sample_value("convowatch_label_value_folds_total", {"label": label})
        assert folds is not None and folds >= 47, (label, folds)
    assert registry.get_sample_value("convowatch_label_value_folds_total", {"label": "channel"}) is None
