"""Perceptual scores through the embedded pipeline: distributions per modality and model version, and
``perceptual_drift`` escalations when one of them changes shape."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas import Escalation, Stream
from streams.config import Settings
from streams.emit import Emit
from streams.generator import ScoreShift, TrafficGenerator, to_records
from streams.metrics import Metrics
from streams.pipeline import Pipeline

START = datetime(2026, 11, 2, 8, tzinfo=UTC)
SMALL = {"perceptual_reference_size": 300, "perceptual_window_size": 100, "perceptual_check_every": 25}
#: (modality, model_version) segments of the hand-built traffic; the first one changes shape.
SEGMENTS = [("image", "gen-v2"), ("image", "gen-v1"), ("video", "gen-v2"), ("audio", "voice-v1")]
HOT = SEGMENTS[0]


def _pipeline(**settings: Any) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    return Pipeline(Settings(**{**SMALL, **settings}), Metrics(registry)), registry


def _pair(turn_id: str, ts: datetime, segment: tuple[str, str], scores: dict[str, float]) -> list[Any]:
    """A turn of ``segment`` and, 2 s later, a verdict carrying ``scores``."""
    modality, model_version = segment
    turn = {
        "turn_id": turn_id,
        "conversation_id": turn_id,
        "ts": ts.isoformat(),
        "journey": "creative",
        "channel": "voice" if modality == "audio" else "chat",
        "model_version": model_version,
        "modality": modality,
    }
    verdict = {
        "turn_id": turn_id,
        "ts": (ts + timedelta(seconds=2)).isoformat(),
        "judge_id": "vlm-judge",
        "judge_version": "1",
        "verdicts": [{"dimension": "relevance", "label": "pass"}],
        "scores": scores,
    }
    return [(Stream.CHAT_TURNS, orjson.dumps(turn)), (Stream.JUDGE_VERDICTS, orjson.dumps(verdict))]


def _records(
    n: int, draw: Callable[[random.Random, int, tuple[str, str]], dict[str, float]], seed: int = 3
) -> Iterator[tuple[Stream, bytes]]:
    """``n`` turns per segment, interleaved, each followed by a verdict with ``draw(rng, i, segment)``."""
    rng = random.Random(seed)
    for i in range(n):
        for k, segment in enumerate(SEGMENTS):
            ts = START + timedelta(seconds=4 * i + k)
            yield from _pair(f"t{i}-{k}", ts, segment, draw(rng, i, segment))


def _usual(rng: random.Random) -> dict[str, float]:
    return {"prompt_alignment": rng.gauss(0.7, 0.05), "artifact": rng.betavariate(2, 18)}


def _shape_shift(start: int, end: int) -> Callable[[random.Random, int, tuple[str, str]], dict[str, float]]:
    """Prompt alignment of the HOT segment splits into modes at 0.6 and 0.8 (same mean) for turns
    ``start <= i < end``; everything else stays usual."""

    def draw(rng: random.Random, i: int, segment: tuple[str, str]) -> dict[str, float]:
        scores = _usual(rng)
        if segment == HOT and start <= i < end:
            scores["prompt_alignment"] = rng.gauss(rng.choice((0.6, 0.8)), 0.05)
        return scores

    return draw


def _run(pipeline: Pipeline, records: Iterator[tuple[Stream, bytes]]) -> list[Emit]:
    out: list[Emit] = []
    for offset, (stream, raw) in enumerate(records):
        out.extend(pipeline.process(stream, raw, source_topic="test", offset=offset))
    return out


def _escalations(out: list[Emit]) -> list[dict[str, Any]]:
    return [e.value for e in out if e.topic == "escalations" and e.value["kind"] == "perceptual_drift"]


def _labels(segment: tuple[str, str], score: str) -> dict[str, str]:
    return {"judge_id": "vlm-judge", "modality": segment[0], "model_version": segment[1], "score": score}


def test_a_shape_shift_in_one_segment_fires_there_only_and_resolves_when_it_is_back():
    pipeline, registry = _pipeline()
    out = _run(pipeline, _records(2_000, _shape_shift(700, 1_300)))
    escalations = _escalations(out)
    assert [(e["status"], e["revision"]) for e in escalations] == [("firing", 1), ("resolved", 2)]
    firing, resolved = escalations
    assert firing["escalation_id"] == resolved["escalation_id"]
    for e in escalations:
        Escalation.model_validate(e)  # the published contract
        assert e["segment"]["modality"] == "image" and e["segment"]["model_version"] == "gen-v2"
        assert e["evidence"]["score"] == "prompt_alignment" and e["evidence"]["judge_id"] == "vlm-judge"
    # turns are 4 event-seconds apart per segment: the alarm comes 99 turns after the change at 700...
    assert firing["event_time"] == (START + timedelta(seconds=4 * 799)).isoformat().replace("+00:00", "Z")
    assert firing["evidence"]["statistic"] > firing["evidence"]["threshold"]
    assert firing["evidence"]["window"]["p05"] < firing["evidence"]["reference"]["p05"] - 0.05
    assert abs(firing["evidence"]["window"]["mean"] - firing["evidence"]["reference"]["mean"]) < 0.02
    assert "prompt_alignment scores of image outputs from gen-v2" in firing["summary"]
    # ...and the resolution once three quarters of the window hold usual scores again (back at 1,300)
    assert resolved["event_time"] == (START + timedelta(seconds=4 * 1374)).isoformat().replace("+00:00", "Z")
    assert resolved["evidence"]["statistic"] <= 0.2

    value = registry.get_sample_value
    hot = _labels(HOT, "prompt_alignment")
    assert value("convowatch_perceptual_drift_active", hot) == 0.0
    assert value("convowatch_escalations_total", {"kind": "perceptual_drift", "severity": "medium"}) == 1.0
    for segment in SEGMENTS:
        for score in ("prompt_alignment", "artifact"):
            labels = _labels(segment, score)
            assert value("convowatch_perceptual_score_count", labels) == 2_000
            assert value("convowatch_perceptual_drift_active", labels) == 0.0
            statistic = value("convowatch_perceptual_drift_statistic", labels)
            assert statistic is not None and 0.0 < statistic < 0.2

    report = {(r["modality"], r["model_version"], r["score"]): r for r in pipeline.report()["perceptual"]}
    assert len(report) == 2 * len(SEGMENTS)
    row = report[(*HOT, "prompt_alignment")]
    assert (row["n"], row["checks"], row["episodes"], row["in_alarm"]) == (2_000, 65, 1, False)
    assert row["reference"]["n"] == 300 and row["window"]["n"] == 100
    assert sum(r["episodes"] for r in report.values()) == 1


def test_a_later_episode_reuses_the_escalation_id_with_higher_revisions():
    pipeline, _ = _pipeline()

    def draw(rng: random.Random, i: int, segment: tuple[str, str]) -> dict[str, float]:
        scores = _usual(rng)
        if segment == HOT and (700 <= i < 1_100 or 1_500 <= i < 1_900):
            scores["prompt_alignment"] = rng.gauss(0.7, 0.15)  # spread only
        return scores

    escalations = _escalations(_run(pipeline, _records(2_400, draw)))
    assert [(e["status"], e["revision"], e["evidence"]["episode"]) for e in escalations] == [
        ("firing", 1, 1),
        ("resolved", 2, 1),
        ("firing", 3, 2),
        ("resolved", 4, 2),
    ]
    assert len({e["escalation_id"] for e in escalations}) == 1


def test_scores_are_clamped_into_the_edge_buckets_and_replays_count_once():
    pipeline, registry = _pipeline()
    segment = ("image", "gen-v1")
    scores = [-0.5, 0.0, 0.02, 0.5, 1.0, 1.7]
    observations = []
    for i, score in enumerate(scores):
        for offset, (stream, raw) in enumerate(_pair(f"t{i}", START, segment, {"clip": score})):
            emits = pipeline.ingest(stream, raw, source_topic="test", partition=0, offset=2 * i + offset)
            observations += [e.value for e in emits if e.topic == "observations"]
    judged = [o for o in observations if o["kind"] == "judged"]
    assert [o["scores"] for o in judged] == [{"clip": s} for s in scores]
    for obs in observations * 2:  # a replay after a crash re-delivers the same observations
        pipeline.aggregate(obs, 0)
    labels = _labels(segment, "clip")
    value = registry.get_sample_value
    assert value("convowatch_perceptual_score_count", labels) == 6
    assert value("convowatch_perceptual_score_sum", labels) == pytest.approx(2.52)  # 0 + 0 + .02 + .5 + 1 + 1
    buckets = {
        le: value("convowatch_perceptual_score_bucket", {**labels, "le": le}) for le in ("0.05", "0.5", "1.0")
    }
    assert buckets == {"0.05": 3, "0.5": 4, "1.0": 6}
    assert value("convowatch_perceptual_drift_statistic", labels) is None  # no test before 400 scores


def test_verdicts_without_perceptual_scores_are_left_alone():
    pipeline, registry = _pipeline()
    _run(pipeline, _records(50, lambda rng, i, segment: {}))
    assert pipeline.report()["perceptual"] == []
    assert registry.get_sample_value("convowatch_perceptual_score_count", _labels(HOT, "clip")) is None


def test_generated_traffic_with_a_score_shift_escalates_that_segment_only():
    shift = ScoreShift(start_after_s=3_600, model_version="shopper-v42", modality="image")
    generator = TrafficGenerator(seed=4, rate=3.0, score_shift=shift, rollout_start_s=0, rollout_ramp_s=1)
    multimodal: set[str] = set()  # only multimodal turns and their verdicts are fed: quicker, same result
    pipeline, registry = _pipeline()
    out: list[Emit] = []
    for record in to_records(generator.records(2 * 3600)):
        _, offset, stream, raw, source, _ = record
        event = orjson.loads(raw)
        if stream is Stream.CHAT_TURNS and event["modality"] != "text":
            multimodal.add(event["turn_id"])
        if stream in (Stream.CHAT_TURNS, Stream.JUDGE_VERDICTS) and event["turn_id"] in multimodal:
            out.extend(pipeline.process(stream, raw, source_topic=source, offset=offset))
    escalations = _escalations(out)
    assert [(e["status"], e["segment"]["modality"], e["segment"]["model_version"]) for e in escalations] == [
        ("firing", "image", "shopper-v42")
    ]
    assert escalations[0]["evidence"]["score"] == "prompt_alignment"
    report = {(r["modality"], r["model_version"], r["score"]): r for r in pipeline.report()["perceptual"]}
    assert {key for key, row in report.items() if row["checks"]} == {
        ("image", "shopper-v42", "artifact"),
        ("image", "shopper-v42", "clip"),
        ("image", "shopper-v42", "prompt_alignment"),
        ("audio", "driver-v7", "artifact"),
        ("audio", "driver-v7", "prompt_alignment"),
    }
    assert {(m, v) for m, v, _ in report} >= {("image", "shopper-v41"), ("video", "shopper-v42")}
    hot = {
        "judge_id": "judge-gpt",
        "modality": "image",
        "model_version": "shopper-v42",
        "score": "prompt_alignment",
    }
    assert registry.get_sample_value("convowatch_perceptual_drift_active", hot) == 1.0


@pytest.mark.parametrize(
    "fields",
    [
        {"modality": "audio", "score": "clip"},  # audio turns carry no CLIP-style score
        {"modality": "text"},
        {"score": "aesthetics"},
        {"separation": 0.0},
        {"separation": 0.6},  # 0.72 +- 0.3 leaves [0.02, 0.98]
    ],
)
def test_score_shift_rejects_what_the_generator_cannot_produce(fields):
    with pytest.raises(ValueError):
        ScoreShift(start_after_s=0, model_version="shopper-v42", **fields)


def test_a_drift_in_a_folded_model_version_keeps_the_shared_series_open():
    # past the metric label guard, gen-v2 (drifting) and gen-v1 (quiet) share model_version="other": the
    # quiet one's checks must not set the series back to 0 while gen-v2's drift is open
    registry = CollectorRegistry()
    metrics = Metrics(registry, label_max_values=1)
    metrics.guards["model_version"].admit(["gen-v0"])
    pipeline = Pipeline(Settings(**SMALL), metrics)
    escalations = _escalations(_run(pipeline, _records(1_300, _shape_shift(700, 1_300))))
    assert [e["status"] for e in escalations] == ["firing"]
    shared = _labels(("image", "other"), "other")  # the second score name folds too
    assert registry.get_sample_value("convowatch_perceptual_drift_active", shared) == 1.0
