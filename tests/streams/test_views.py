"""Detection through the whole embedded pipeline: defect spikes per segment, judge drift per dimension."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.aggregate import key
from streams.alertmanager_payload import alert_from_escalation
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline

START = datetime(2026, 11, 2, 8, tzinfo=UTC)


def _pipeline(**settings: Any) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    return Pipeline(Settings(**settings), Metrics(registry), batched=True), registry


def _turn(turn_id: str, ts: datetime, journey: str, model_version: str) -> bytes:
    return orjson.dumps(
        {
            "turn_id": turn_id,
            "conversation_id": turn_id,
            "ts": ts.isoformat(),
            "journey": journey,
            "channel": "chat",
            "model_version": model_version,
            "intent": f"{journey}-intent",
        }
    )


def _verdict(turn_id: str, ts: datetime, judge_id: str = "judge-a", **labels: str) -> bytes:
    return orjson.dumps(
        {
            "turn_id": turn_id,
            "ts": ts.isoformat(),
            "judge_id": judge_id,
            "judge_version": "1",
            "verdicts": [{"dimension": d, "label": v} for d, v in labels.items()],
        }
    )


def _label(turn_id: str, ts: datetime, **labels: str) -> bytes:
    return orjson.dumps(
        {
            "turn_id": turn_id,
            "ts": ts.isoformat(),
            "annotator_id": "ann-1",
            "vendor_id": "vendor-a",
            "verdicts": [{"dimension": d, "label": v} for d, v in labels.items()],
        }
    )


def _escalations(out: list[Any], kind: str) -> list[dict[str, Any]]:
    return [e.value for e in out if e.topic == "escalations" and e.value["kind"] == kind]


def test_spike_in_one_segment_among_many_quiet_ones() -> None:
    # 24 judged turns an event-second across 12 journeys x 2 model versions; budget 1 false alarm a day
    # no human labels here: the budget is all the judge's
    pipeline, registry = _pipeline(
        spike_turns_per_day=200_000, spike_labelled_turns_per_day=0, spike_false_alarms_per_day=1.0
    )
    rng = random.Random(11)
    segments = [(f"journey-{j}", f"model-{m}") for j in range(12) for m in range(2)]
    hot = ("journey-3", "model-1")
    change_at = 4_000  # turns per segment before the spike
    out: list[Any] = []
    n = 0
    for i in range(change_at + 1_500):  # the alarm's onset must be found within 1,500 turns of the change
        for journey, model in segments:
            rate = 0.10 if (journey, model) == hot and i >= change_at else 0.02
            ts = START + timedelta(seconds=n / 24)
            turn_id = f"t{n}"
            n += 1
            relevance = "fail" if rng.random() < rate else "pass"
            out += pipeline.process(
                Stream.CHAT_TURNS, _turn(turn_id, ts, journey, model), source_topic="c", offset=n
            )
            out += pipeline.process(
                Stream.JUDGE_VERDICTS,
                _verdict(turn_id, ts, relevance=relevance, safety="pass"),
                source_topic="v",
                offset=n,
            )
    spikes = _escalations(out, "defect_spike")
    firing = [e for e in spikes if e["status"] == "firing"]
    assert firing, "the spike was not detected"
    assert all(e["segment"]["journey"] == hot[0] for e in spikes), [e["summary"] for e in spikes]
    assert all(e["segment"]["model_version"] in (None, hot[1]) for e in spikes)
    assert all(e["evidence"]["category"] == "irrelevant" for e in spikes)
    exact = [e for e in firing if e["segment"]["model_version"] == hot[1]]
    assert len(exact) == 1
    alarm = exact[0]
    assert alarm["evidence"]["baseline_rate"] < 0.04 and alarm["evidence"]["spike_rate"] > 0.05
    assert 0 < alarm["evidence"]["onset_turns_ago"] < 1_500
    assert alarm["turn_ids"] and len(alarm["turn_ids"]) <= 20
    assert (
        registry.get_sample_value(
            "convowatch_defect_spike_active",
            {
                "category": "irrelevant",
                "journey": hot[0],
                "model_version": hot[1],
                "intent": "*",
                "source": "judge-a",
                "severity": "medium",  # the taxonomy's for irrelevant: the backstop alert routes on it
            },
        )
        == 1.0
    )


Labels = list[tuple[str, bool, dict[str, str]]]  # (annotator, gold item, dimension -> label) of a turn


def _label_turns(pipeline: Pipeline, turns: int, labels_of: Callable[[int], Labels]) -> None:
    """``turns`` turns of one journey, each labelled five minutes later as ``labels_of(i)`` says."""
    for i in range(turns):
        ts = START + timedelta(seconds=10 * i)
        turn_id = f"t{i}"
        pipeline.process(Stream.CHAT_TURNS, _turn(turn_id, ts, "shopper", "m1"), source_topic="c", offset=i)
        for n, (annotator, gold, labels) in enumerate(labels_of(i)):
            label = orjson.loads(_label(turn_id, ts + timedelta(minutes=5), **labels))
            label |= {"annotator_id": annotator, "is_gold": gold}
            pipeline.process(Stream.HUMAN_LABELS, orjson.dumps(label), source_topic="h", offset=10 * i + n)
    pipeline.flush()


def _human_figures(pipeline: Pipeline) -> tuple[Any, list[dict[str, Any]]]:
    """The human source's spike detectors of the journey, and the guardrail rows against humans."""
    spikes = pipeline.aggregator.detector(key("spike", "humans", "journey=shopper"))
    assert spikes is not None
    rows = pipeline.report()["live_model"]["guardrails"]
    return spikes, [row for row in rows if row["source"] == "human" and row["model_version"] == "*"]


def test_human_figures_count_each_turn_once_without_gold_items() -> None:
    # every turn labelled by three annotators (consensus) and served as a honeypot (a known failure) to a
    # fourth, whose gold label comes first on every other turn: the human figures see each turn once
    def labels_of(i: int) -> Labels:
        sampled = [(f"ann-{a}", False, {"relevance": "pass", "safety": "pass"}) for a in (1, 2, 3)]
        gold = ("gold-ann", True, {"relevance": "fail", "safety": "fail"})
        return [*sampled, gold] if i % 2 else [gold, *sampled]

    pipeline, _ = _pipeline()
    _label_turns(pipeline, 300, labels_of)
    spikes, humans = _human_figures(pipeline)
    assert spikes.detector("irrelevant").n == 300  # not 4 x 300 (nor 3 x 300)
    assert spikes.detector("irrelevant").current_rate == 0.0  # no gold label among them
    assert [(row["n"], row["fail_rate"]) for row in humans] == [(300, 0.0)]  # the live model's guardrails


def test_a_dimension_only_a_later_annotator_labelled_still_counts_for_humans() -> None:
    # annotator 1 labels relevance only, annotator 2 safety: the turn's first label on each dimension counts
    pipeline, _ = _pipeline()
    _label_turns(
        pipeline,
        50,
        lambda i: [("ann-1", False, {"relevance": "pass"}), ("ann-2", False, {"safety": "fail"})],
    )
    spikes, humans = _human_figures(pipeline)
    assert spikes.detector("irrelevant").n == spikes.detector("unsafe").n == 50
    assert [(row["n"], row["fail_rate"]) for row in humans] == [(50, 1.0)]


def test_a_later_annotators_failure_on_another_dimension_of_a_category_still_counts() -> None:
    # execution accuracy and personalization are both "inaccurate" (default taxonomy): labelled by two
    # annotators, each label counts the category for the dimension it is first on. The turn counts twice
    # (known, README); counting it once would drop the second label's failure, or wait for every annotator
    pipeline, _ = _pipeline()
    _label_turns(
        pipeline,
        50,
        lambda i: [
            ("ann-1", False, {"execution_accuracy": "pass"}),
            ("ann-2", False, {"personalization": "fail"}),
        ],
    )
    spikes, _ = _human_figures(pipeline)
    inaccurate = spikes.detector("inaccurate")
    assert (inaccurate.n, inaccurate.current_rate > 0.0) == (100, True)


def test_a_judge_prompted_per_dimension_counts_each_turn_on_every_dimension_and_once_as_a_turn() -> None:
    # one verdict per dimension: every category's spike detector gets the turn (before, only the first
    # verdict's dimension reached the aggregation), while turn counts (turns judged, the version test's
    # units) count it once
    pipeline, registry = _pipeline()
    dims = ("relevance", "safety", "bias")
    for i in range(60):
        ts = START + timedelta(seconds=10 * i)
        turn_id = f"t{i}"
        pipeline.process(
            Stream.CHAT_TURNS, _turn(turn_id, ts, "shopper", f"m{i % 2}"), source_topic="c", offset=i
        )
        for n, dim in enumerate(dims):
            label = "fail" if (dim, i % 10) == ("bias", 0) else "pass"
            verdict = _verdict(turn_id, ts + timedelta(seconds=n + 1), **{dim: label})
            pipeline.process(Stream.JUDGE_VERDICTS, verdict, source_topic="j", offset=3 * i + n)
    pipeline.flush()
    spikes = pipeline.aggregator.detector(key("spike", "judge-a", "journey=shopper"))
    assert spikes is not None
    biased = spikes.detector("biased")
    assert [spikes.detector(c).n for c in ("irrelevant", "unsafe", "biased")] == [60, 60, 60]
    assert biased.current_rate > 0.0  # the failures of the third verdicts
    judged = {"judge_id": "judge-a", "journey": "shopper"}
    assert registry.get_sample_value("convowatch_turns_judged_total", judged) == 60
    versions = pipeline.aggregator.detector(key("versions", "judge-a", "shopper"))
    assert versions is not None
    test = versions.test("m0", "m1")
    assert test.n_control + test.n_treatment == 59  # every turn once (the first, alone, is before the test)
    assert test.control_rate == test.treatment_rate == 0.0  # each turn's first verdict: relevance, passed


def test_a_judges_first_verdict_without_a_quality_dimension_leaves_the_turn_to_its_next_one() -> None:
    pipeline, _ = _pipeline()
    for i in range(40):
        ts = START + timedelta(seconds=10 * i)
        turn_id = f"t{i}"
        pipeline.process(
            Stream.CHAT_TURNS, _turn(turn_id, ts, "shopper", f"m{i % 2}"), source_topic="c", offset=i
        )
        verdicts = ({"intent": "search"}, {"relevance": "fail" if i % 2 else "pass"}, {"safety": "fail"})
        for n, labels in enumerate(verdicts):
            verdict = _verdict(turn_id, ts + timedelta(seconds=n + 1), **labels)
            pipeline.process(Stream.JUDGE_VERDICTS, verdict, source_topic="j", offset=3 * i + n)
    pipeline.flush()
    versions = pipeline.aggregator.detector(key("versions", "judge-a", "shopper"))
    assert versions is not None
    test = versions.test("m0", "m1")
    assert test.n_control + test.n_treatment == 39
    assert (test.control_rate, test.treatment_rate) == (0.0, 1.0)  # by relevance: the safety fails come after


def test_an_annotator_labelling_a_turn_in_two_records_is_scored_on_both_and_counted_once() -> None:
    pipeline, registry = _pipeline()
    for i in range(50):
        ts = START + timedelta(seconds=10 * i)
        turn_id = f"t{i}"
        pipeline.process(Stream.CHAT_TURNS, _turn(turn_id, ts, "shopper", "m1"), source_topic="c", offset=i)
        verdict = _verdict(turn_id, ts + timedelta(seconds=1), relevance="pass", safety="pass")
        pipeline.process(Stream.JUDGE_VERDICTS, verdict, source_topic="j", offset=i)
        for n, labels in enumerate(({"relevance": "pass"}, {"safety": "fail"})):
            label = _label(turn_id, ts + timedelta(minutes=5 + n), **labels)
            pipeline.process(Stream.HUMAN_LABELS, label, source_topic="h", offset=2 * i + n)
    pipeline.flush()
    spikes, _ = _human_figures(pipeline)
    assert spikes.detector("irrelevant").n == spikes.detector("unsafe").n == 50
    assert spikes.detector("unsafe").current_rate == pytest.approx(1.0)
    (vendor,) = pipeline.report()["vendors"]["vendors"]
    # one label per annotator and turn, compared with the judge on both of its dimensions
    assert (vendor["labels"], vendor["judge_total"], vendor["judge_agreeing"]) == (50, 100, 50)
    assert registry.get_sample_value("convowatch_human_labels_total", {"vendor_id": "vendor-a"}) == 50


def test_judge_drift_on_one_dimension_only() -> None:
    pipeline, _ = _pipeline()
    rng = random.Random(5)
    out: list[Any] = []
    for i in range(2_400):
        ts = START + timedelta(seconds=30 * i)
        turn_id = f"t{i}"
        human = {
            d: ("fail" if rng.random() < 0.1 else "pass") for d in ("relevance", "safety", "hallucination")
        }
        miss = {d: 0.04 for d in human}
        if i >= 1_200:
            miss["relevance"] = 0.30  # the judge starts missing relevance failures
        judge = {
            d: (("pass" if v == "fail" else "fail") if rng.random() < miss[d] else v)
            for d, v in human.items()
        }
        out += pipeline.process(
            Stream.CHAT_TURNS, _turn(turn_id, ts, "shopper", "m1"), source_topic="c", offset=i
        )
        out += pipeline.process(
            Stream.JUDGE_VERDICTS, _verdict(turn_id, ts, **judge), source_topic="v", offset=i
        )
        out += pipeline.process(
            Stream.HUMAN_LABELS, _label(turn_id, ts + timedelta(hours=1), **human), source_topic="h", offset=i
        )
    drift = [e for e in _escalations(out, "judge_drift") if e["status"] == "firing"]
    assert drift, "the judge's drift on relevance was not detected"
    assert {e["dimension"] for e in drift} == {"relevance"}
    assert {e["evidence"]["judge_id"] for e in drift} == {"judge-a"}
    assert all(e["evidence"]["spike_disagreement"] > e["evidence"]["baseline_disagreement"] for e in drift)


def _turn_with_latency(turn_id: str, ts: datetime, journey: str, latency_ms: float) -> bytes:
    return orjson.dumps(
        {
            "turn_id": turn_id,
            "conversation_id": turn_id,
            "ts": ts.isoformat(),
            "journey": journey,
            "channel": "voice",
            "model_version": "m1",
            "latency_ms": latency_ms,
        }
    )


def test_volume_drop_and_latency_rise_in_one_journey_only() -> None:
    pipeline, _ = _pipeline()
    rng = random.Random(8)
    out: list[Any] = []
    n = 0
    for minute in range(240):
        for journey in ("shopper", "driver_support"):
            per_minute = rng.randint(40, 60)
            if journey == "driver_support" and minute >= 180:
                per_minute = rng.randint(2, 6)  # traffic collapses
            slow = 4.0 if journey == "shopper" and 100 <= minute < 130 else 1.0
            for i in range(per_minute):
                ts = START + timedelta(minutes=minute, seconds=i * 60 / per_minute)
                latency = rng.lognormvariate(6.5, 0.3) * slow
                n += 1
                out += pipeline.process(
                    Stream.CHAT_TURNS,
                    _turn_with_latency(f"t{n}", ts, journey, latency),
                    source_topic="c",
                    offset=n,
                )
    volume = _escalations(out, "volume_anomaly")
    latency = _escalations(out, "latency_anomaly")
    assert [(e["segment"]["journey"], e["status"], e["evidence"]["direction"]) for e in volume] == [
        ("driver_support", "firing", "down")
    ]
    assert [(e["segment"]["journey"], e["status"]) for e in latency] == [
        ("shopper", "firing"),
        ("shopper", "resolved"),
    ]
    assert latency[0]["escalation_id"] == latency[1]["escalation_id"]


def test_a_restarted_worker_folds_segment_values_as_the_one_before_it() -> None:
    # a fresh process's guards admit values in the order it sees them: an intent folded into "other" before
    # a restart got a slice of its own after it, and the "other" detector stopped getting its turns
    from streams.aggregate import Aggregator
    from streams.state import DictStore
    from streams.taxonomy import load_taxonomy
    from streams.views.spikes import SpikeView

    store = DictStore()

    def view_and_aggregator() -> tuple[SpikeView, Aggregator]:
        metrics = Metrics(CollectorRegistry())
        view = SpikeView(metrics, load_taxonomy(), max_segment_values=3)
        return view, Aggregator(metrics, store, views=[view])

    def judged(n: int, intent: str) -> dict[str, Any]:
        segment = {"journey": "shopper", "model_version": "m-1", "intent": intent}
        obs = {"kind": "judged", "judge_id": "judge-a", "turn_id": f"t{n}", "ts": float(n)}
        return obs | {"labels": {"safety": "pass"}, "segment": segment, "src": ["in:0", n, 0]}

    before, aggregator = view_and_aggregator()
    for n, intent in enumerate(["a", "b", "c", "late"]):  # "late" is the fourth: folded into "other"
        aggregator.apply(judged(n, intent))
    aggregator.flush()
    slices = {values.get("intent") for _, values in before._slices("judge-a", judged(9, "late")["segment"])}
    assert "other" in slices

    after, recovered = view_and_aggregator()  # a restarted worker over the recovered store
    recovered.rebalanced()
    assert after._slices("judge-a", judged(9, "late")["segment"]) == before._slices(
        "judge-a", judged(9, "late")["segment"]
    )


def test_a_worker_taking_over_a_judge_folds_its_segment_values_as_the_worker_before_it() -> None:
    # one guard per worker: a worker whose own judge had filled the guard took over another judge's shard
    # (a failover) and folded that judge's values into "other": its detectors, in alarm perhaps, stopped
    from streams.aggregate import Aggregator
    from streams.state import DictStore
    from streams.taxonomy import load_taxonomy
    from streams.views.spikes import SpikeView

    store = DictStore()  # the aggregates of both shards, as the changelog holds them

    def worker() -> tuple[SpikeView, Aggregator]:
        metrics = Metrics(CollectorRegistry())
        view = SpikeView(metrics, load_taxonomy(), max_segment_values=2)
        return view, Aggregator(metrics, store, views=[view])

    def segment(intent: str) -> dict[str, str]:
        return {"journey": "shopper", "model_version": "m-1", "intent": intent}

    def judged(judge_id: str, n: int, intent: str) -> dict[str, Any]:
        obs = {"kind": "judged", "judge_id": judge_id, "turn_id": f"{judge_id}-t{n}", "ts": float(n)}
        return obs | {"labels": {"safety": "pass"}, "segment": segment(intent), "src": [judge_id, n, 0]}

    first, first_aggregator = worker()  # holds judge-a
    for n, intent in enumerate(["a", "b", "late"]):
        first_aggregator.apply(judged("judge-a", n, intent))
    first_aggregator.flush()
    second, second_aggregator = worker()  # holds judge-b, then takes judge-a over
    for n, intent in enumerate(["x", "y", "z"]):
        second_aggregator.apply(judged("judge-b", n, intent))
    second_aggregator.flush()
    second_aggregator.rebalanced()
    for intent in ("a", "b", "late"):
        assert second._slices("judge-a", segment(intent)) == first._slices("judge-a", segment(intent))
    intents = {intent: second._slices("judge-b", segment(intent))[2][1]["intent"] for intent in "xyz"}
    assert intents == {"x": "x", "y": "y", "z": "other"}  # judge-b's own, unmoved


def test_a_worker_taking_over_a_judge_keeps_feeding_its_journeys_drift_detectors() -> None:
    from streams.aggregate import Aggregator
    from streams.emit import SEP
    from streams.state import DictStore
    from streams.views.drift import JudgeDriftView

    store = DictStore()

    def worker() -> tuple[JudgeDriftView, Aggregator]:
        metrics = Metrics(CollectorRegistry())
        view = JudgeDriftView(metrics)
        return view, Aggregator(metrics, store, views=[view])

    def pair(judge_id: str, n: int, journey: str) -> dict[str, Any]:
        return {
            "kind": "pair",
            "judge_id": judge_id,
            "dimension": "safety",
            "judge_label": "pass",
            "human_label": "pass",
            "segment": {"journey": journey},
            "turn_id": f"{judge_id}-t{n}",
            "ts": float(n),
            "src": [judge_id, n, 0],
        }

    _, first = worker()
    for n in range(50):  # the guard's room: 50 journeys
        first.apply(pair("judge-a", n, f"a{n:02d}"))
    first.flush()
    _, second = worker()
    for n in range(50):
        second.apply(pair("judge-b", n, f"b{n:02d}"))
    second.flush()
    second.rebalanced()  # takes judge-a over
    second.apply(pair("judge-a", 50, "a07"))
    detector = second.detector(SEP.join(["drift", "judge-a", "safety", "a07"]))
    assert detector is not None and detector.n == 2  # its own journey's detector, not judge-a's "other"
    assert second.detector(SEP.join(["drift", "judge-a", "safety", "other"])) is None


def test_a_volume_escalation_of_a_journey_without_latencies_carries_no_nan() -> None:
    # no latency_ms: the latency baseline is NaN, which reached the evidence and the Alertmanager
    # annotation, where it is not JSON
    pipeline, _ = _pipeline()
    out: list[Any] = []
    n = 0
    for minute in range(60):
        for i in range(50 if minute < 45 else 2):
            n += 1
            ts = START + timedelta(minutes=minute, seconds=i)
            turn = orjson.loads(_turn_with_latency(f"t{n}", ts, "shopper", 1.0))
            del turn["latency_ms"]
            out += pipeline.process(Stream.CHAT_TURNS, orjson.dumps(turn), source_topic="c", offset=n)
    (drop,) = _escalations(out, "volume_anomaly")
    assert drop["evidence"]["latency_baseline_ms"] is None
    annotation = alert_from_escalation(drop, None)["annotations"]["evidence"]
    json.loads(annotation, parse_constant=lambda name: pytest.fail(f"{name} in the evidence annotation"))


def test_spike_series_shared_by_folded_values_stays_open_while_any_spike_is() -> None:
    # past the metric label guard, two intents share intent="other": one's resolution (or its quiet
    # detector's write) must not set the series to 0 while the other's spike is still open
    from streams.views.spikes import set_spike_active

    registry = CollectorRegistry()
    metrics = Metrics(registry, label_max_values=1)
    metrics.guards["intent"].admit(["greeting"])

    def slice_of(intent: str) -> dict[str, str]:
        return {"journey": "shopper", "intent": intent}

    def active() -> float | None:
        labels = {"category": "unsafe", "journey": "shopper", "model_version": "*", "intent": "other"}
        labels |= {"source": "judge-a", "severity": "critical"}
        return registry.get_sample_value("convowatch_defect_spike_active", labels)

    set_spike_active(metrics, "unsafe", "critical", "judge-a", slice_of("refund"), True)
    set_spike_active(metrics, "unsafe", "critical", "judge-a", slice_of("payout"), True)
    set_spike_active(metrics, "unsafe", "critical", "judge-a", slice_of("payout"), False)
    assert active() == 1.0  # refund's spike is still open
    set_spike_active(metrics, "unsafe", "critical", "judge-a", slice_of("refund"), False)
    assert active() == 0.0
