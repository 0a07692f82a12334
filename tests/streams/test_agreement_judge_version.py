"""Agreement per judge version: one ``judge_id`` whose ``judge_version`` changes (a recalibrated prompt, a new
model behind the same id) gets its agreement with the humans per version, in report.json's
``agreement_segments`` and in ``convowatch_judge_segment_*{segment="judge_version"}``; the cumulative figures
pool the versions. The join keeps the version on the judge's record of its pending entry and carries it on
the pairs; an entry written before it did (JSON bytes in the changelog) reads with the version unknown."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from detectors.agreement_breakdown import DEFAULT_SEGMENTS, AgreementBreakdown
from schemas import Stream
from streams.aggregate import Aggregate, key
from streams.config import Settings
from streams.emit import iso
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.state import DictStore
from tests.factories import chat_turn, human_label, judge_verdict, verdict

START = datetime(2026, 11, 2, 8, tzinfo=UTC).timestamp()
JUDGE = "judge-gpt"
DIMENSION = "personalization"


def _pipeline(registry: CollectorRegistry, **stores: Any) -> Pipeline:
    settings = Settings(divergence_refresh_every=1)  # gauges follow every pair
    return Pipeline(settings, Metrics(registry), batched=True, **stores)


def _records(turn_id: str, ts: float, version: str, judge: str, human: str) -> list[tuple[Stream, bytes]]:
    return [
        (Stream.CHAT_TURNS, orjson.dumps(chat_turn(turn_id=turn_id, ts=iso(ts)))),
        (
            Stream.JUDGE_VERDICTS,
            orjson.dumps(
                judge_verdict(
                    turn_id=turn_id,
                    ts=iso(ts + 2),
                    judge_id=JUDGE,
                    judge_version=version,
                    verdicts=[verdict(DIMENSION, judge)],
                )
            ),
        ),
        (
            Stream.HUMAN_LABELS,
            orjson.dumps(human_label(turn_id=turn_id, ts=iso(ts + 60), verdicts=[verdict(DIMENSION, human)])),
        ),
    ]


def _feed(pipeline: Pipeline, records: list[tuple[Stream, bytes]], first_offset: int = 0) -> None:
    for offset, (stream, raw) in enumerate(records, first_offset):
        pipeline.process(stream, raw, source_topic=stream.value, offset=offset)
    pipeline.flush()


def _version_rows(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        r["segment_value"]: r
        for r in report["agreement_segments"]
        if (r["judge_id"], r["dimension"], r["segment"]) == (JUDGE, DIMENSION, "judge_version")
    }


def _gauge(registry: CollectorRegistry, name: str, version: str) -> float | None:
    labels = {"judge_id": JUDGE, "dimension": DIMENSION, "segment": "judge_version", "segment_value": version}
    return registry.get_sample_value(f"convowatch_judge_segment_{name}", labels)


def test_two_versions_of_one_judge_get_their_own_agreement_in_the_report_and_the_gauges() -> None:
    # the review's scenario: the same judge id, a new version at 09:00 that flips a quarter of its labels
    rng = random.Random(5)
    flip = {"pass": "fail", "fail": "pass"}
    records: list[tuple[Stream, bytes]] = []
    agree: dict[str, list[bool]] = {"2026-10": [], "2026-11": []}
    for i in range(400):
        ts = START + 18.0 * i  # two hours of turns
        version = "2026-10" if ts < START + 3600 else "2026-11"
        human = "fail" if rng.random() < 0.2 else "pass"
        judge = flip[human] if version == "2026-11" and rng.random() < 0.25 else human
        agree[version].append(judge == human)
        records += _records(f"t{i}", ts, version, judge, human)
    registry = CollectorRegistry()
    pipeline = _pipeline(registry)
    _feed(pipeline, records)
    report = pipeline.report()

    rows = _version_rows(report)
    assert sorted(rows) == ["2026-10", "2026-11"]
    for version, agreed in agree.items():
        assert rows[version]["n"] == len(agreed)
        assert rows[version]["percent_agreement"] == sum(agreed) / len(agreed)
        assert _gauge(registry, "agreement_pairs", version) == len(agreed)
        assert _gauge(registry, "agreement_ratio", version) == rows[version]["percent_agreement"]
        assert _gauge(registry, "cohen_kappa", version) == rows[version]["cohen_kappa"]
    assert rows["2026-10"]["percent_agreement"] == 1.0 > rows["2026-11"]["percent_agreement"]
    # the cumulative figure pools the versions (README: give each version its own judge_id to separate it)
    (overall,) = [r for r in report["agreement"] if (r["judge_id"], r["dimension"]) == (JUDGE, DIMENSION)]
    assert overall["n"] == sum(len(a) for a in agree.values())


def test_judge_versions_past_the_metric_label_guard_are_in_the_report_only() -> None:
    registry = CollectorRegistry()
    pipeline = Pipeline(
        Settings(divergence_refresh_every=1), Metrics(registry, label_max_values=2), batched=True
    )
    records: list[tuple[Stream, bytes]] = []
    for i in range(4):
        records += _records(f"t{i}", START + 60.0 * i, f"v{i}", "pass", "pass")
    _feed(pipeline, records)
    assert sorted(_version_rows(pipeline.report())) == ["v0", "v1", "v2", "v3"]
    exported = {
        s.labels["segment_value"]
        for metric in registry.collect()
        if metric.name == "convowatch_judge_segment_agreement_pairs"
        for s in metric.samples
        if s.labels["segment"] == "judge_version"
    }
    assert exported == {"v0", "v1"}  # the guard's first two; no "other" series


def test_a_pending_entry_written_before_the_join_kept_the_version_reads_as_version_unknown() -> None:
    # the judge's record as the join wrote it before it kept the version: JSON bytes in the changelog
    ts = START
    old_entry = {
        "p": None,
        "last": ts + 2,
        "turn": None,
        "judge": {JUDGE: {"ts": ts + 2, "labels": {DIMENSION: "pass"}}},
        "human": {},
        "paired": [],
        "observed": [],
        "defects": [],
        "esc": None,
    }
    pending = DictStore(json_values=True)
    pending.put("t-old", old_entry, None)
    registry = CollectorRegistry()
    pipeline = _pipeline(registry, pending_store=pending)
    chat, _, label = _records("t-old", ts, "unused", "pass", "fail")
    _feed(pipeline, [chat, label])
    rows = _version_rows(pipeline.report())
    assert {v: (r["n"], r["percent_agreement"]) for v, r in rows.items()} == {"unknown": (1, 0.0)}
    assert _gauge(registry, "agreement_pairs", "unknown") == 1


def test_the_join_keeps_the_version_of_the_judges_first_verdict_and_the_pairs_carry_it() -> None:
    pending = DictStore(json_values=True)
    pipeline = _pipeline(CollectorRegistry(), pending_store=pending)
    records = _records("t-1", START, "v1", "pass", "pass")
    later = judge_verdict(
        turn_id="t-1",
        ts=iso(START + 30),
        judge_id=JUDGE,
        judge_version="v2",
        verdicts=[verdict("bias", "pass")],
    )
    records.insert(2, (Stream.JUDGE_VERDICTS, orjson.dumps(later)))  # a new dimension, under another version
    pairs = []
    for offset, (stream, raw) in enumerate(records):
        for emit in pipeline.ingest(stream, raw, source_topic=stream.value, offset=offset):
            if emit.topic == "observations" and emit.value["kind"] == "pair":
                pairs.append((emit.value["dimension"], emit.value["judge_version"]))
    pipeline.flush()
    assert orjson.loads(pending.data["t-1"])["judge"][JUDGE]["v"] == "v1"
    assert sorted(pairs) == [(DIMENSION, "v1")]  # the human labelled one dimension


def test_an_agreement_aggregate_kept_from_before_counts_judge_versions_from_its_next_pair() -> None:
    # an agreement_detail aggregate of a worker before judge_version was a segment, recovered from the
    # changelog: it gains the segment, counting the pairs that come after
    old = AgreementBreakdown(segments=list(DEFAULT_SEGMENTS), windows={}, max_values=50)
    for i in range(3):
        old.update(START + i, {"journey": "billing"}, "pass", "pass")
    aggregates = DictStore()
    aggregates.put(key("agreement_detail", JUDGE, DIMENSION), Aggregate(old).encode(), None)
    pipeline = _pipeline(CollectorRegistry(), aggregate_store=aggregates)
    _feed(pipeline, _records("t-new", START + 600, "v9", "pass", "fail"))
    report = pipeline.report()
    rows = _version_rows(report)
    assert {v: r["n"] for v, r in rows.items()} == {"v9": 1}
    journeys = [
        r for r in report["agreement_segments"] if r["segment"] == "journey" and r["dimension"] == DIMENSION
    ]
    assert [(r["segment_value"], r["n"]) for r in journeys] == [("billing", 4)]
