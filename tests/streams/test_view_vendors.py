"""Vendor and annotator scorecards and SLAs, end to end through the embedded pipeline.

A seeded world of 8 hours: a turn a minute, each labelled by one annotator (vendor-a: a1/a2, vendor-b:
b1), every third turn on the golden set. Between hours 2 and 4, vendor-b labels 50 minutes late and fails
the golden turns; then it recovers. With a 1 h SLA window, vendor-b must get exactly one turnaround and
one gold-accuracy escalation (revised while it lasts, then resolved), vendor-a none.
"""

from __future__ import annotations

import math
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detectors.vendor_scorecard import VendorScorecard
from schemas import Stream
from schemas.outputs import Escalation
from streams.aggregate import Aggregator
from streams.config import Settings
from streams.emit import iso
from streams.exceptions import ConfigError
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.state import DictStore
from streams.vendor_sla import VendorSla, load_vendor_sla
from streams.views.vendors import VendorsView
from tests.factories import chat_turn, human_label, judge_verdict, raw, verdict

START = 1_793_606_400.0  # 2026-11-02T08:00:00Z
HOUR = 3600.0
SLA = """
window_seconds: 3600
bucket_seconds: 300
evaluate_every_seconds: 1
republish_seconds: 1800
defaults:
  min_samples: 10
  min_gold_samples: 5
  max_turnaround_seconds: 1800
  turnaround_quantile: 0.9
  min_gold_accuracy: 0.9
  min_judge_agreement: 0.7
  min_consensus_agreement: null
vendors:
  vendor-a:
    min_judge_agreement: 0.75
"""

Record = tuple[float, int, Stream, bytes]


def _world() -> tuple[list[Record], dict[str, dict[str, str]], list[dict[str, Any]]]:
    """Records in event-time order, the golden set, and every label as the scorecard should count it."""
    records: list[Record] = []
    golden: dict[str, dict[str, str]] = {}
    labels: list[dict[str, Any]] = []
    for i in range(480):
        ts, turn_id = START + 60.0 * i, f"t{i:04d}"
        vendor, annotator = ("vendor-b", "b1") if i % 2 else ("vendor-a", f"a{1 + i // 2 % 2}")
        bad = vendor == "vendor-b" and 2 * HOUR <= ts - START < 4 * HOUR
        gold = i % 3 == 0
        if gold:
            golden[turn_id] = {"relevance": "pass"}
        label = "fail" if bad and gold else "pass"
        label_ts = ts + (3000.0 if bad else 300.0)
        records.append((ts, len(records), Stream.CHAT_TURNS, raw(chat_turn(turn_id=turn_id, ts=iso(ts)))))
        verdicts = [verdict("relevance", "pass", confidence=0.9), verdict("safety", "pass", confidence=0.9)]
        judged = judge_verdict(turn_id=turn_id, ts=iso(ts + 2), verdicts=verdicts)
        records.append((ts + 2, len(records), Stream.JUDGE_VERDICTS, raw(judged)))
        human = human_label(
            turn_id=turn_id,
            ts=iso(label_ts),
            annotator_id=annotator,
            vendor_id=vendor,
            is_gold=gold,
            verdicts=[verdict("relevance", label), verdict("safety", "pass")],
        )
        records.append((label_ts, len(records), Stream.HUMAN_LABELS, raw(human)))
        labels.append(
            {
                "ts": label_ts,
                "vendor": vendor,
                "annotator": annotator,
                "turnaround": label_ts - ts,
                "gold": (int(label == "pass"), 1) if gold else (0, 0),
                "judge": (1 + int(label == "pass"), 2),
            }
        )
    records.sort(key=lambda r: (r[0], r[1]))
    return records, golden, labels


@pytest.fixture()
def files(tmp_path: Path) -> tuple[Path, Path]:
    _, golden, _ = _world()
    sla = tmp_path / "vendor_sla.yaml"
    sla.write_text(SLA)
    path = tmp_path / "golden.jsonl"
    path.write_bytes(b"\n".join(orjson.dumps({"turn_id": k, "labels": v}) for k, v in golden.items()))
    return sla, path


def _escalations(emits: list[Any]) -> list[dict[str, Any]]:
    return [e.value for e in emits if e.topic == "escalations" and e.value["kind"] == "vendor_sla"]


def test_a_breaching_vendor_gets_one_escalation_per_sla_revised_then_resolved(files):
    sla, golden = files
    records, golden_set, labels = _world()
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(vendor_sla=sla, golden=golden), Metrics(registry))

    def breached(vendor: str, name: str) -> float | None:
        return registry.get_sample_value("convowatch_vendor_sla_breached", {"vendor_id": vendor, "sla": name})

    seen: list[dict[str, Any]] = []
    missed: list[tuple[float, str]] = []  # vendor-b's missed golden turns so far (label time, turn)
    checked_midway = False
    for offset, (ts, _, stream, data) in enumerate(records):
        record = orjson.loads(data)
        if stream is Stream.HUMAN_LABELS and record["turn_id"] in golden_set:
            truth = golden_set[record["turn_id"]]
            if any(v["label"] != truth.get(v["dimension"], v["label"]) for v in record["verdicts"]):
                missed.append((ts, record["turn_id"]))
        if not checked_midway and ts >= START + 4 * HOUR:  # vendor-b is late and wrong: both breached
            checked_midway = True
            assert breached("vendor-b", "turnaround") == 1.0
            assert breached("vendor-b", "gold_accuracy") == 1.0
            assert breached("vendor-b", "judge_agreement") == 0.0
            assert {breached("vendor-a", s) for s in ("turnaround", "gold_accuracy", "judge_agreement")} == {
                0
            }
        for value in _escalations(pipeline.process(stream, data, source_topic=stream.value, offset=offset)):
            # gold accuracy: vendor-b's missed golden turns of the window (1 h, 5 min buckets), newest first
            start = _ts(value["event_time"]) // 300 * 300 - 3600 + 300
            due = _missed_recently([miss for miss in missed if miss[0] >= start])
            assert value["turn_ids"] == (due if value["evidence"]["sla"] == "gold_accuracy" else [])
            seen.append(value)
    seen += _escalations(pipeline.finish())
    assert checked_midway
    assert all(e["turn_ids"] for e in seen if e["evidence"]["sla"] == "gold_accuracy" and e["revision"] < 3)

    by_sla: dict[str, list[dict[str, Any]]] = {}
    for value in seen:
        Escalation.model_validate(value)
        assert value["evidence"]["vendor_id"] == "vendor-b"
        by_sla.setdefault(value["evidence"]["sla"], []).append(value)
    assert sorted(by_sla) == ["gold_accuracy", "turnaround"]
    for name, published in by_sla.items():
        assert len({v["escalation_id"] for v in published}) == 1, f"{name}: one escalation, revised"
        assert [v["revision"] for v in published] == list(range(1, len(published) + 1))
        assert [v["status"] for v in published] == ["firing"] * (len(published) - 1) + ["resolved"]
        assert len(published) >= 3  # fired, re-published at least once while it lasted, resolved
        first, last = published[0], published[-1]
        assert START + 2 * HOUR < _ts(first["event_time"]) < START + 4 * HOUR
        assert START + 4 * HOUR < _ts(last["event_time"]) < START + 6 * HOUR
        assert first["severity"] == "medium" and first["evidence"]["episode"] == 1
        assert first["summary"].startswith("Vendor SLA breach: vendor-b")
        assert last["summary"].startswith("Vendor SLA met again: vendor-b")
    assert (
        by_sla["turnaround"][0]["evidence"]["share_within"]
        < 0.9
        <= by_sla["turnaround"][-1]["evidence"]["share_within"]
    )
    assert (
        by_sla["gold_accuracy"][0]["evidence"]["value"]
        < 0.9
        <= by_sla["gold_accuracy"][-1]["evidence"]["value"]
    )
    assert (
        registry.get_sample_value(
            "convowatch_escalations_total", {"kind": "vendor_sla", "severity": "medium"}
        )
        == 2
    )
    assert {breached(v, s) for v in ("vendor-a", "vendor-b") for s in ("turnaround", "gold_accuracy")} == {0}
    # consensus has no target (null), so no series; vendor-a's override applies
    assert breached("vendor-a", "consensus_agreement") is None

    # the gauges and report.json hold the exact window figures (evaluated on every label here)
    report = pipeline.report()["vendors"]
    end = max(label["ts"] for label in labels)
    start = (end // 300) * 300 - 3600 + 300
    assert report["window"] == {"seconds": 3600, "start": iso(start), "end": iso(end), "too_late": 0}
    rows = {row["vendor_id"]: row for row in report["vendors"]}
    assert sorted(rows) == ["vendor-a", "vendor-b"]
    for vendor, row in rows.items():
        mine = [x for x in labels if x["vendor"] == vendor and x["ts"] >= start]
        n = len(mine)
        assert row["labels"] == n
        assert row["labels_per_hour"] == pytest.approx(n * 3600 / (end - start))
        assert row["gold_total"] == sum(x["gold"][1] for x in mine)
        assert row["gold_correct"] == sum(x["gold"][0] for x in mine) == row["gold_total"]
        assert row["judge_total"] == 2 * n and row["judge_agreeing"] == sum(x["judge"][0] for x in mine)
        assert row["consensus_total"] == 0 and row["consensus_agreement"] is None
        assert row["turnaround_counts"][row["turnaround_bounds_seconds"].index(300.0)] == n
        slas = {s["sla"]: s for s in row["slas"]}
        assert sorted(slas) == ["gold_accuracy", "judge_agreement", "turnaround"]
        assert slas["judge_agreement"]["target"] == (0.75 if vendor == "vendor-a" else 0.7)
        assert all(s["judged"] and s["within_target"] and not s["escalated"] for s in slas.values())
        assert slas["turnaround"]["episodes"] == (1 if vendor == "vendor-b" else 0)

        def gauge(name: str, vendor: str = vendor, **labels: str) -> float | None:
            return registry.get_sample_value(name, {"vendor_id": vendor, **labels})

        assert gauge("convowatch_vendor_labels_per_hour") == pytest.approx(row["labels_per_hour"])
        assert gauge("convowatch_vendor_window_gold_accuracy_ratio") == 1.0
        assert gauge("convowatch_vendor_window_judge_agreement_ratio") == row["judge_agreement"]
        assert math.isnan(gauge("convowatch_vendor_window_consensus_agreement_ratio") or 0.0)
        # every label in the window came 300 s after its turn: read exactly, not interpolated in the bin
        # (60, 300] (p50 180 s, p90 276 s until 2026-11-26)
        for q in ("0.5", "0.9"):
            figure = gauge("convowatch_vendor_turnaround_seconds", quantile=q)
            assert figure == row[f"turnaround_p{q[-1]}0_seconds"] == 300.0
    annotators = {(r["vendor_id"], r["annotator_id"]): r["labels"] for r in report["annotators"]}
    assert annotators == {
        (v, a): sum(x["ts"] >= start and (x["vendor"], x["annotator"]) == (v, a) for x in labels)
        for v, a in (("vendor-a", "a1"), ("vendor-a", "a2"), ("vendor-b", "b1"))
    }


def test_a_breach_closes_once_its_vendor_has_too_few_labels_left_in_the_window(files):
    # vendor-b breaches, then stops labelling at 3.5 h; vendor-a labels on. The open breaches stayed open
    # for good (no evidence either way), and the gauges at 1
    sla, golden = files
    records, _, _ = _world()
    stop = START + 3.5 * HOUR
    kept = [r for r in records if not (r[2] is Stream.HUMAN_LABELS and b'"vendor-b"' in r[3] and r[0] > stop)]
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(vendor_sla=sla, golden=golden), Metrics(registry))
    seen: list[dict[str, Any]] = []
    gauges: dict[str, float | None] = {}  # the breach gauge as each closed
    for offset, (_, _, stream, data) in enumerate(kept):
        emitted = _escalations(pipeline.process(stream, data, source_topic=stream.value, offset=offset))
        for value in emitted:
            labels = {"vendor_id": "vendor-b", "sla": value["evidence"]["sla"]}
            gauges[labels["sla"]] = registry.get_sample_value("convowatch_vendor_sla_breached", labels)
        seen += emitted
    closed = [e for e in seen if e["status"] == "resolved"]
    assert sorted(e["evidence"]["sla"] for e in closed) == ["gold_accuracy", "turnaround"]
    for value in closed:
        Escalation.model_validate(value)
        assert value["evidence"]["closed_without_evidence"] is True
        assert value["summary"].startswith("Vendor SLA breach closed: ")
        assert "from vendor-b in the window" in value["summary"]
        # once the window (1 h in 5 min buckets) has too few of its labels, at the latest when it is empty
        assert stop < _ts(value["event_time"]) <= stop + HOUR + 300
        assert gauges[value["evidence"]["sla"]] == 0.0
    # then none of its labels is left: it has no slot, and no gauge
    assert registry.get_sample_value("convowatch_vendor_labels_per_hour", {"vendor_id": "vendor-b"}) is None


def _ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@pytest.mark.parametrize("labels_first", [True, False], ids=["labels-first", "labels-after-the-turn"])
def test_consensus_of_several_annotators_per_vendor_and_annotator(tmp_path, labels_first):
    """Each annotator of a multi-annotator turn against the others' plurality (ties not scored): the same
    with the labels coming one at a time after the turn, where the item is published at its second label,
    then again, replacing it, at its third (c1's labels were never scored, a1's and a2's against each
    other only)."""
    sla = tmp_path / "vendor_sla.yaml"
    sla.write_text(
        "evaluate_every_seconds: 1\nrepublish_seconds: 86400\n"
        "defaults: {min_samples: 5, min_consensus_agreement: 0.9}\n"
    )
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(vendor_sla=sla), Metrics(registry))
    raters = {"a1": "vendor-a", "a2": "vendor-a", "c1": "vendor-c"}
    escalations = []
    offset = 0
    for i in range(20):
        ts = START + 600.0 * i
        turn_id = f"m{i:03d}"
        # c1 says fail on every other turn; a1 and a2 always pass
        says = {"a1": "pass", "a2": "pass", "c1": "fail" if i % 2 else "pass"}
        # labels first: the join sees all three annotators at once
        events = [] if labels_first else [(Stream.CHAT_TURNS, chat_turn(turn_id=turn_id, ts=iso(ts)))]
        for n, (annotator, label) in enumerate(says.items()):
            events.append(
                (
                    Stream.HUMAN_LABELS,
                    human_label(
                        turn_id=turn_id,
                        ts=iso(ts - 30 + 10 * n if labels_first else ts + 60 * (n + 1)),
                        annotator_id=annotator,
                        vendor_id=raters[annotator],
                        verdicts=[verdict("relevance", label)],
                    ),
                )
            )
        if labels_first:
            events.append((Stream.CHAT_TURNS, chat_turn(turn_id=turn_id, ts=iso(ts))))
        for stream, event in events:
            escalations += _escalations(pipeline.process(stream, raw(event), source_topic="t", offset=offset))
            offset += 1
    report = pipeline.report()["vendors"]
    rows = {r["vendor_id"]: r for r in report["vendors"]}
    # pass-fail-pass turns (10): a1 vs {a2, c1} tie, a2 vs {a1, c1} tie, c1 vs {a1, a2} = pass: disagrees
    # all-pass turns (10): everybody agrees with the others
    assert (rows["vendor-a"]["consensus_agreeing"], rows["vendor-a"]["consensus_total"]) == (20, 20)
    assert (rows["vendor-c"]["consensus_agreeing"], rows["vendor-c"]["consensus_total"]) == (10, 20)
    per = {r["annotator_id"]: (r["consensus_agreeing"], r["consensus_total"]) for r in report["annotators"]}
    assert per == {"a1": (10, 10), "a2": (10, 10), "c1": (10, 20)}
    assert [(e["evidence"]["vendor_id"], e["evidence"]["sla"], e["status"]) for e in escalations] == [
        ("vendor-c", "consensus_agreement", "firing")
    ]
    value = registry.get_sample_value(
        "convowatch_vendor_window_consensus_agreement_ratio", {"vendor_id": "vendor-c"}
    )
    # gauges are set when label time moves on: the last turn's third label came (with its own ``labelled``
    # observation) at the time of the last evaluation, before its item was counted again
    assert value == (0.5 if labels_first else 10 / 19)


def test_consensus_of_labels_a_day_after_their_turn_is_counted_in_the_window(tmp_path):
    # a 24 h window; both labels 25 h after the turn (within a 24 h p90 turnaround: a normal tail).
    # At the turn's time the comparisons fell out of the window as too late.
    sla = tmp_path / "vendor_sla.yaml"
    sla.write_text("evaluate_every_seconds: 1\nrepublish_seconds: 86400\ndefaults: {min_samples: 1}\n")
    pipeline = Pipeline(Settings(vendor_sla=sla), Metrics(CollectorRegistry()))
    events = [(Stream.CHAT_TURNS, chat_turn(turn_id="late", ts=iso(START)))]
    for n, (annotator, label) in enumerate({"a1": "pass", "a2": "pass"}.items()):
        stamp = iso(START + 25 * 3600 + n)
        labels = [verdict("relevance", label)]
        event = human_label(turn_id="late", ts=stamp, annotator_id=annotator, vendor_id="v", verdicts=labels)
        events.append((Stream.HUMAN_LABELS, event))
    for offset, (stream, event) in enumerate(events):
        pipeline.process(stream, raw(event), source_topic="t", offset=offset)
    (row,) = pipeline.report()["vendors"]["vendors"]
    assert (row["consensus_agreeing"], row["consensus_total"]) == (2, 2)


def test_an_item_completed_by_an_annotators_later_label_is_counted_at_that_label(tmp_path):
    # a 24 h window: b1 labels relevance an hour after a1, safety 29 h later, in a second record. Its
    # safety item was timed at b1's first record and dropped as too late; replaced 2 h later by c1's label,
    # the version replaced must leave the bucket it was counted in, at 30 h (else it counts twice).
    sla = tmp_path / "vendor_sla.yaml"
    sla.write_text("evaluate_every_seconds: 1\nrepublish_seconds: 86400\ndefaults: {min_samples: 1}\n")
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(vendor_sla=sla), Metrics(registry))
    events = [(Stream.CHAT_TURNS, chat_turn(turn_id="t", ts=iso(START)))]
    for hours, annotator, dimensions in (
        (1, "a1", ["relevance", "safety"]),
        (2, "b1", ["relevance"]),
        (30, "b1", ["safety"]),
        (32, "c1", ["safety"]),
    ):
        labels = [verdict(dim, "pass") for dim in dimensions]
        stamp = iso(START + hours * HOUR)
        event = human_label(
            turn_id="t", ts=stamp, annotator_id=annotator, vendor_id=annotator, verdicts=labels
        )
        events.append((Stream.HUMAN_LABELS, event))
    consensus = []
    for offset, (stream, event) in enumerate(events):
        pipeline.process(stream, raw(event), source_topic="t", offset=offset)
        rows = pipeline.report()["vendors"]["vendors"]
        consensus.append(sum(row["consensus_total"] for row in rows))
    # relevance at 2 h (out of the window by 30 h), safety at 30 h, then again with c1's label at 32 h
    assert consensus == [0, 0, 2, 2, 3]
    assert registry.get_sample_value("convowatch_vendor_labels_too_late_total") in (None, 0.0)


@pytest.mark.parametrize(
    ("content", "key", "message"),
    [
        ("defaults: {min_gold_accuracy: 1.5}", "defaults.min_gold_accuracy", "less than or equal to 1"),
        ("vendors: {vendor-b: {max_turnaround: 10}}", "vendors.vendor-b.max_turnaround", "Extra inputs"),
        ("bucket_seconds: 700\nwindow_seconds: 3600", "window_seconds", "multiple of bucket_seconds (700)"),
        ("severity: urgent", "severity", "Input should be"),
        ("evaluate_every: 60", "evaluate_every", "Extra inputs"),
        ("defaults: {confidence_level: 1}", "defaults.confidence_level", "less than 1"),
        (
            "vendors: {v: {confidence_level: 0.4}}",
            "vendors.v.confidence_level",
            "greater than or equal to 0.5",
        ),
    ],
)
def test_a_bad_sla_file_is_refused_at_start_naming_file_and_key(tmp_path, content, key, message):
    path = tmp_path / "vendor_sla.yaml"
    path.write_text(content)
    with pytest.raises(ConfigError) as error:
        Pipeline(Settings(vendor_sla=path), Metrics(CollectorRegistry()))
    assert str(error.value).startswith(f"{path}: key {key!r}: ")
    assert message in str(error.value)


def test_sla_file_errors_and_defaults(tmp_path):
    with pytest.raises(ConfigError, match=f"cannot read vendor SLA file {tmp_path / 'missing'}"):
        load_vendor_sla(tmp_path / "missing")
    (tmp_path / "bad.yaml").write_text("defaults: [")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_vendor_sla(tmp_path / "bad.yaml")
    shipped = load_vendor_sla()
    assert (shipped.window_seconds, shipped.bucket_seconds, shipped.severity) == (86400, 3600, "medium")
    assert shipped.defaults.max_turnaround_seconds == 86400 and shipped.vendors == {}
    (tmp_path / "o.yaml").write_text(
        "defaults: {max_turnaround_seconds: 7200}\n"
        "vendors: {vendor-b: {max_turnaround_seconds: 28800, min_gold_accuracy: null}}\n"
    )
    sla = load_vendor_sla(tmp_path / "o.yaml")
    b, a = sla.targets("vendor-b"), sla.targets("vendor-a")
    assert (b.max_turnaround_seconds, b.min_gold_accuracy, b.min_judge_agreement) == (28800, None, None)
    assert (a.max_turnaround_seconds, a.min_gold_accuracy) == (7200, 0.9)
    assert shipped.defaults.confidence_level == a.confidence_level == 0.95  # a file without it: the default
    assert {7200.0, 28800.0} <= set(sla.turnaround_bounds)


def test_a_replayed_observation_is_applied_once_and_publishes_nothing():
    """After a crash the join re-emits observations with the same source positions: skipped."""

    registry = CollectorRegistry()
    sla = VendorSla.model_validate(
        {"evaluate_every_seconds": 1, "defaults": {"min_samples": 2, "max_turnaround_seconds": 14400}}
    )
    aggregator = Aggregator(Metrics(registry), views=[VendorsView(Metrics(CollectorRegistry()), sla)])

    def labelled(i: int) -> dict[str, Any]:
        return {
            "kind": "labelled",
            "src": ["human_labels:0", i, 0],
            "turn_id": f"t{i}",
            "ts": START + 60 * i,
            "label_ts": START + 60 * i + 20_000,  # far beyond the 4 h turnaround target
            "vendor_id": "vendor-b",
            "annotator_id": "b1",
            "labels": {"relevance": "pass"},
            "judges": {"judge-a": {"relevance": "pass"}},
        }

    first = [e.value for i in range(3) for e in aggregator.apply(labelled(i))]
    assert [(e["evidence"]["sla"], e["status"], e["revision"]) for e in first] == [
        ("turnaround", "firing", 1)
    ]
    replayed = [e for i in range(3) for e in aggregator.apply(labelled(i))]
    assert replayed == [] and aggregator.duplicates == 3  # skipped by the scorecard: nothing judged again
    card = aggregator.detector("vendor_scorecard")
    assert isinstance(card, VendorScorecard) and card.scorecard("vendor-b").labels == 3


def test_labels_older_than_the_window_are_counted_once_in_the_too_late_counter():
    """Each item the scorecard drops as too late adds one to the counter; a replay adds nothing."""

    registry = CollectorRegistry()
    metrics = Metrics(registry)
    sla = VendorSla.model_validate(
        {"window_seconds": 3600, "bucket_seconds": 300, "evaluate_every_seconds": 1}
    )
    view = VendorsView(metrics, sla)
    aggregator = Aggregator(metrics, views=[view])

    def too_late() -> float | None:
        return registry.get_sample_value("convowatch_vendor_labels_too_late_total")

    def labelled(offset: int, label_ts: float) -> dict[str, Any]:
        return {
            "kind": "labelled",
            "src": ["human_labels:0", offset, 0],
            "turn_id": f"t{offset}",
            "ts": label_ts - 300,
            "label_ts": label_ts,
            "vendor_id": "vendor-a",
            "annotator_id": "a1",
            "labels": {"relevance": "pass"},
            "judges": {},
        }

    assert too_late() == 0.0
    now = START + 5 * HOUR
    aggregator.apply(labelled(0, now))
    aggregator.apply(labelled(1, now - 1800))  # inside the window
    assert too_late() == 0.0
    aggregator.apply(labelled(2, now - 2 * HOUR))  # older than the window: dropped, counted
    aggregator.apply(labelled(3, now - 3 * HOUR))
    assert too_late() == 2.0
    aggregator.apply(labelled(3, now - 3 * HOUR))  # replayed (same src): skipped, not counted again
    assert aggregator.duplicates == 1 and too_late() == 2.0
    # a late multi-annotator item: one dropped comparison per annotator scored
    raters = {
        "kind": "raters",
        "src": ["human_labels:0", 4, 0],
        "turn_id": "t4",
        "ts": now - 2 * HOUR,
        "label_ts": now - 2 * HOUR,
        "labels": {"a1": "pass", "a2": "pass", "b1": "pass"},
        "vendors": {"a1": "vendor-a", "a2": "vendor-a", "b1": "vendor-b"},
    }
    aggregator.apply(raters)
    assert too_late() == 5.0
    aggregator.apply(labelled(5, now + 60))  # inside the window
    assert too_late() == 5.0 == view.report(aggregator)["vendors"]["window"]["too_late"]
    card = aggregator.detector("vendor_scorecard")
    assert isinstance(card, VendorScorecard) and card.scorecard("vendor-a").labels == 3


def test_an_item_counted_again_replaces_its_comparisons_while_they_are_in_the_window():
    """A later annotator's label publishes the item again (``replaces``: its last version): that version's
    comparisons leave their bucket, if it is still in the window, and the new ones count at the new time."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    sla = VendorSla.model_validate(
        {"window_seconds": 3600, "bucket_seconds": 300, "evaluate_every_seconds": 1}
    )
    aggregator = Aggregator(metrics, views=[VendorsView(metrics, sla)])
    vendor_of = {"a1": "vendor-a", "b1": "vendor-b", "c1": "vendor-c", "c2": "vendor-c"}
    versions: list[dict[str, Any]] = []

    def publish(label_ts: float, labels: dict[str, str]) -> dict[str, tuple[int, int]]:
        item = {"labels": labels, "vendors": {a: vendor_of[a] for a in labels}, "label_ts": label_ts}
        observation = {"kind": "raters", "src": ["labels:0", len(versions), 0], "ts": START, **item}
        if versions:
            observation["replaces"] = versions[-1]
        versions.append(item)
        aggregator.apply(observation)
        card = aggregator.detector("vendor_scorecard")
        assert isinstance(card, VendorScorecard)
        return {who: card.scorecard(v, who).consensus for who, v in vendor_of.items()} | {
            v: card.scorecard(v).consensus for v in ("vendor-a", "vendor-b", "vendor-c")
        }

    # two labels: each against the other's
    assert publish(START, {"a1": "pass", "b1": "fail"}) == {
        **dict.fromkeys(["c1", "c2", "vendor-c"], (0, 0)),
        **dict.fromkeys(["a1", "b1", "vendor-a", "vendor-b"], (0, 1)),
    }
    # a third, 20 minutes later: the first version's comparisons go (a1 and c1 now face a tie)
    assert publish(START + 1200, {"a1": "pass", "b1": "fail", "c1": "pass"}) == {
        **dict.fromkeys(["a1", "c1", "c2", "vendor-a", "vendor-c"], (0, 0)),
        **dict.fromkeys(["b1", "vendor-b"], (0, 1)),
    }
    # a fourth, two hours later: the third version's bucket has left the window, the fourth counts alone
    assert publish(START + 2 * HOUR, {"a1": "pass", "b1": "fail", "c1": "pass", "c2": "pass"}) == {
        **dict.fromkeys(["a1", "c1", "c2", "vendor-a"], (1, 1)),
        **dict.fromkeys(["b1", "vendor-b"], (0, 1)),
        "vendor-c": (2, 2),
    }
    assert registry.get_sample_value("convowatch_vendor_labels_too_late_total") in (None, 0.0)
    assert aggregator.duplicates == 0


def test_an_item_a_later_judge_publishes_again_after_its_bucket_left_the_window_counts_nothing_late():
    # the version a later judge makes has the same labels at the same time: its comparisons left the window
    # with the bucket, and added again they were counted as labels too late, though no label was
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    sla = VendorSla.model_validate(
        {"window_seconds": 3600, "bucket_seconds": 300, "evaluate_every_seconds": 1}
    )
    aggregator = Aggregator(metrics, views=[VendorsView(metrics, sla)])
    item = {
        "labels": {"a1": "pass", "a2": "pass", "b1": "fail"},
        "vendors": {"a1": "vendor-a", "a2": "vendor-a", "b1": "vendor-b"},
        "label_ts": START,
    }
    aggregator.apply({"kind": "raters", "src": ["labels:0", 0, 0], "ts": START, **item, "judges": {}})
    later = {
        "kind": "labelled",
        "src": ["labels:0", 1, 0],
        "turn_id": "t-later",
        "ts": START + 2 * HOUR,
        "label_ts": START + 2 * HOUR,
        "vendor_id": "vendor-a",
        "annotator_id": "a1",
        "labels": {"relevance": "pass"},
        "judges": {},
    }
    aggregator.apply(later)  # moves the window past the item's bucket
    judged = {"judges": {"judge-a": "pass"}, "replaces": {**item, "judges": {}}}
    aggregator.apply({"kind": "raters", "src": ["labels:0", 2, 0], "ts": START, **item, **judged})
    assert registry.get_sample_value("convowatch_vendor_labels_too_late_total") in (None, 0.0)
    card = aggregator.detector("vendor_scorecard")
    assert isinstance(card, VendorScorecard) and card.scorecard("vendor-a").consensus == (0, 0)


def test_a_gold_accuracy_breach_closes_when_its_gold_items_leave_the_window_while_the_vendor_labels_on():
    """Too few gold items left to judge it, though the vendor labels on: the breach stayed open for good,
    re-published every hour for a day, then silent with its gauge at 1."""
    golden = {f"g{i}": {"safety": "fail"} for i in range(30)}
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    aggregator = Aggregator(metrics, DictStore(), views=[VendorsView(metrics, golden=golden)])
    seen: list[dict[str, Any]] = []
    for i, turn_id in enumerate([f"g{i}" for i in range(30)] + [f"t{i}" for i in range(3_000)]):
        ts = 60.0 * (i + 1)  # one label a minute: every gold item wrong, then ordinary turns for two days
        observation = {
            "kind": "labelled",
            "turn_id": turn_id,
            "ts": ts - 60,
            "label_ts": ts,
            "annotator_id": "a1",
            "vendor_id": "vendor-a",
            "is_gold": turn_id.startswith("g"),
            "labels": {"safety": "pass"},
            "judges": {},
            "segment": None,
            "src": ["labels:0", i, 1],
        }
        if turn_id.startswith("g"):  # the join's gold_label comes first (streams/join_gold.py)
            gold = {k: observation[k] for k in ("turn_id", "ts", "label_ts", "annotator_id", "vendor_id")}
            aggregator.apply(
                {**gold, "kind": "gold_label", "labels": {"safety": "pass"}, "src": ["labels:0", i, 0]}
            )
        seen += [e.value for e in aggregator.apply(observation) if e.topic == "escalations"]
    gold = [e for e in seen if e["evidence"]["sla"] == "gold_accuracy"]
    assert gold[0]["status"] == "firing" and gold[-1]["status"] == "resolved"
    assert gold[-1]["evidence"]["closed_without_evidence"] is True
    assert gold[-1]["evidence"]["closed_without_labels"] is False
    breached = {"vendor_id": "vendor-a", "sla": "gold_accuracy"}
    assert registry.get_sample_value("convowatch_vendor_sla_breached", breached) == 0.0


def _missed_recently(misses: list[tuple[float, str]]) -> list[str]:
    """The turns of ``misses`` (label time, turn), each at its latest, newest first, the first 10."""
    latest: dict[str, float] = {}
    for ts, turn in misses:
        latest[turn] = max(ts, latest.get(turn, ts))
    return sorted(latest, key=lambda turn: -latest[turn])[:10]


@pytest.mark.parametrize("old_state", [False, True], ids=["restart", "restart-from-older-state"])
def test_a_gold_accuracy_breach_names_the_vendor_s_latest_missed_golden_turns_across_a_restart(old_state):
    """Its ``turn_ids``: the golden turns the vendor missed an item of most recently (each once, newest first,
    at most 10), at every revision, given again after a restart from the state as JSON (from state written
    before they were kept: only those missed since)."""
    golden = {f"g{i}": {"safety": "fail", "relevance": "pass"} for i in range(60)}
    sla = VendorSla.model_validate({"evaluate_every_seconds": 1, "republish_seconds": 600})
    store = DictStore()

    def started(store: DictStore) -> tuple[Aggregator, VendorsView]:
        metrics = Metrics(CollectorRegistry())
        view = VendorsView(metrics, sla, golden)
        return Aggregator(metrics, store, views=[view]), view

    aggregator, view = started(store)
    rng = random.Random(7)
    misses: list[tuple[float, str]] = []
    missed_again: list[str] = []
    seen: list[tuple[dict[str, Any], list[str]]] = []  # each gold accuracy escalation, with the turns due
    for i in range(100):  # one label a minute; from minute 60 the golden turns come again, to a2
        turn_id, ts = f"g{i % 60}", START + 60.0 * (i + 1)
        labels = {"safety": "pass" if rng.random() < 0.5 else "fail", "relevance": "pass"}
        if i == 70:  # a restart, from the state as stored (JSON), or as older code stored it
            aggregator.flush()
            restarted = DictStore()
            restarted.data = {k: orjson.loads(orjson.dumps(v.encode())) for k, v in store.data.items()}
            if old_state:
                del restarted.data["vendor_scorecard"]["detector"]["state"]["_missed_gold"]
                misses = []
            aggregator, view = started(store := restarted)
            keys = [key for key, _ in store.items(raw=True)]
            [(_, again)] = view.open_escalations(aggregator, keys, lambda shard: True, START)
            assert again["evidence"]["sla"] == "gold_accuracy" and again["status"] == "firing"
            assert again["turn_ids"] == _missed_recently(misses)
        if labels["safety"] != "fail":
            if any(turn == turn_id for _, turn in misses):
                missed_again.append(turn_id)
            misses.append((ts, turn_id))
        label = {"turn_id": turn_id, "ts": ts - 60, "label_ts": ts, "vendor_id": "vendor-a", "labels": labels}
        label["annotator_id"] = "a1" if i < 60 else "a2"
        aggregator.apply({**label, "kind": "gold_label", "src": ["labels:0", i, 0]})
        labelled = {**label, "kind": "labelled", "judges": {}, "is_gold": True, "src": ["labels:0", i, 1]}
        for emitted in aggregator.apply(labelled):
            if emitted.topic == "escalations" and emitted.value["evidence"]["sla"] == "gold_accuracy":
                seen.append((emitted.value, _missed_recently(misses)))
    assert len(seen) >= 4  # fired, then re-published every 10 minutes of label time
    assert {value["status"] for value, _ in seen} == {"firing"}
    for value, due in seen:
        Escalation.model_validate(value)
        assert value["turn_ids"] == due
    assert max(len(value["turn_ids"]) for value, _ in seen) == 10
    assert len(set(missed_again)) > 1  # golden turns missed by a1, then by a2, are named once each
