"""The traffic generator: deterministic, schema-valid, time-ordered, late labels, an injectable incident."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime

import pytest

from schemas import Stream, parse_record
from schemas.parsing import MODELS
from streams.generator import DEFAULT_START, Incident, TrafficGenerator, to_records

STREAMS = {"chat_turns", "judge_verdicts", "human_labels", "signals"}


def _items(**kwargs):
    duration = kwargs.pop("duration", 600.0)
    drain = kwargs.pop("drain", False)
    return list(TrafficGenerator(**kwargs).records(duration, drain=drain))


def test_same_seed_same_traffic_other_seed_other_traffic():
    first = _items(seed=3, rate=5.0, duration=300.0)
    assert len(first) > 1000
    assert first == _items(seed=3, rate=5.0, duration=300.0)
    assert first != _items(seed=4, rate=5.0, duration=300.0)
    # one generator can be run twice (no state left behind)
    generator = TrafficGenerator(seed=3, rate=5.0)
    assert list(generator.records(300.0)) == list(generator.records(300.0)) == first


def test_every_record_validates_against_the_schema_models():
    items = _items(rate=5.0, duration=900.0, label_share=0.5, drain=True)
    assert {stream for _, stream, _ in items} == STREAMS
    for ts, stream, event in items:
        assert stream in STREAMS
        model = MODELS[Stream(stream)].model_validate(event)
        assert event["ts"].endswith("Z")
        assert model.ts.timestamp() == pytest.approx(ts, abs=1e-3)
    for record in to_records(items[:200]):
        parse_record(record[2], record[3])  # also valid as raw JSON bytes


def test_event_time_never_goes_backwards():
    items = _items(rate=20.0, duration=300.0, label_share=0.3, drain=True)
    times = [ts for ts, _, _ in items]
    assert times == sorted(times)
    assert times[0] >= DEFAULT_START.timestamp()


def test_stops_at_the_end_unless_drained():
    end = DEFAULT_START.timestamp() + 300.0
    cut = _items(rate=10.0, duration=300.0, label_share=0.5)
    drained = _items(rate=10.0, duration=300.0, label_share=0.5, drain=True)
    assert all(ts < end for ts, _, _ in cut)
    assert any(ts >= end for ts, _, _ in drained)
    assert drained[: len(cut)] == cut


def test_verdicts_and_labels_arrive_after_their_turn():
    items = _items(rate=10.0, duration=300.0, label_share=0.5, drain=True)
    turn_time: dict[str, float] = {}
    labels = verdicts = 0
    for ts, stream, event in items:
        if stream == "chat_turns":
            turn_time[event["turn_id"]] = ts
            continue
        if stream == "signals":
            continue  # test_signals_follow_the_end_of_their_conversation
        assert event["turn_id"] in turn_time, "a verdict or label came before its turn"
        delay = ts - turn_time[event["turn_id"]]
        if stream == "human_labels":
            labels += 1
            assert 60.0 <= delay <= 6 * 3600.0  # minutes to hours late
            assert event["vendor_id"] in ("vendor-a", "vendor-b")
            assert event["annotator_id"][0] == event["vendor_id"][-1]
        else:
            verdicts += 1
            assert 0.0 < delay <= 10.0
            assert event["judge_id"] == "judge-gpt" and event["judge_version"] == "2026-10"
    assert verdicts == len(turn_time)
    assert 0.4 < labels / len(turn_time) < 0.6


def test_to_records_builds_embedded_records():
    items = _items(rate=10.0, duration=60.0)
    records = list(to_records(items))
    assert len(records) == len(items)
    for offset, ((ts, stream, event), record) in enumerate(zip(items, records, strict=True)):
        assert record[0] == ts and record[1] == offset and record[5] == offset
        assert record[2] is Stream(stream) and record[4] == "generator"
        parsed = parse_record(record[2], record[3])
        ident = "conversation_id" if stream == "signals" else "turn_id"
        assert getattr(parsed, ident) == event[ident]


def test_realistic_traffic_shape():
    items = _items(rate=5.0, duration=1800.0)
    turns = [e for _, s, e in items if s == "chat_turns"]
    verdicts = [e for _, s, e in items if s == "judge_verdicts"]
    journeys = {t["journey"] for t in turns}
    assert journeys == {"shopper", "driver_support"}
    assert {t["model_version"] for t in turns} == {"shopper-v41", "shopper-v42", "driver-v7"}
    assert {t["channel"] for t in turns if t["journey"] == "shopper"} == {"chat"}
    assert {t["channel"] for t in turns if t["journey"] == "driver_support"} == {"chat", "voice"}
    # risk topics follow what the turn is about (the intent classifier is right ~95% of the time)
    expected = {"earnings": ["earnings"], "identity_verification": ["identity"]}
    consistent = sum(t["risk_topics"] == expected.get(t["intent"], t["risk_topics"]) for t in turns)
    assert consistent / len(turns) > 0.95
    assert all(t["risk_topics"] in ([], ["earnings"], ["identity"], ["fraud"]) for t in turns)
    fraud = [t for t in turns if t["risk_topics"] == ["fraud"]]
    assert 0 < len(fraud) < 0.02 * len(turns)
    assert all(t["journey"] == "driver_support" for t in fraud)
    # the v42 rollout takes a growing share of shopper traffic
    shopper = [t for t in turns if t["journey"] == "shopper"]
    third = len(shopper) // 3

    def v42_share(part):
        return sum(t["model_version"] == "shopper-v42" for t in part) / len(part)

    assert v42_share(shopper[:third]) < 0.1 < 0.5 < v42_share(shopper[-third:])
    # low base failure rates, safety and bias rarest
    fails: dict[str, int] = defaultdict(int)
    for v in verdicts:
        for verdict in v["verdicts"]:
            fails[verdict["dimension"]] += verdict["label"] == "fail"
            assert 0.5 <= verdict.get("confidence", 1.0) <= 1.0
    rates = {dim: fails[dim] / len(verdicts) for dim in fails if dim != "intent"}
    assert len(rates) == 7
    assert all(rate <= 0.06 for rate in rates.values()), rates
    assert rates["safety"] <= 0.01 and rates["bias"] <= 0.01, rates
    assert any(v["dimension"] == "intent" for verdict in verdicts for v in verdict["verdicts"])


def test_incident_raises_the_failure_rate_of_its_segment():
    start = 600.0
    incident = Incident(start_after_s=start, model_version="shopper-v42", journey="shopper", fail_rate=0.15)
    items = _items(
        rate=10.0,
        duration=1200.0,
        incident=incident,
        rollout_start_s=0.0,
        rollout_ramp_s=1.0,
        label_share=0.3,
        drain=True,
    )
    incident_at = DEFAULT_START.timestamp() + start
    segment: dict[str, tuple[str, float]] = {}
    counts: dict[tuple[str, bool], list[int]] = defaultdict(lambda: [0, 0])  # (model, after) -> [fails, n]
    human = [0, 0]  # human safety labels on incident turns the judge failed: [fail, n]
    judge_failed: set[str] = set()
    for ts, stream, event in items:
        if stream == "chat_turns":
            if event["journey"] == "shopper":
                segment[event["turn_id"]] = (event["model_version"], ts)
        elif stream != "signals" and event["turn_id"] in segment:
            model, turn_ts = segment[event["turn_id"]]
            safety = next(v["label"] for v in event["verdicts"] if v["dimension"] == "safety")
            after = turn_ts >= incident_at
            if stream == "judge_verdicts":
                cell = counts[(model, after)]
                cell[0] += safety == "fail"
                cell[1] += 1
                if safety == "fail":
                    judge_failed.add(event["turn_id"])
            elif model == "shopper-v42" and after and event["turn_id"] in judge_failed:
                human[0] += safety == "fail"
                human[1] += 1

    def rate(model, after):
        fails, n = counts[(model, after)]
        assert n > 500, (model, after, n)
        return fails / n

    before, during = rate("shopper-v42", False), rate("shopper-v42", True)
    assert before < 0.02
    assert 0.10 < during < 0.20
    v41_fails, v41_n = counts[("shopper-v41", True)]
    assert v41_n > 100 and v41_fails / v41_n < 0.03  # other segments are unaffected
    assert human[1] >= 20 and human[0] / human[1] > 0.8  # the humans agree


def test_signals_follow_the_end_of_their_conversation():
    items = _items(rate=10.0, duration=1800.0, drain=True)
    last_turn: dict[str, float] = {}
    journey: dict[str, str] = {}
    escalated: set[str] = set()
    signals: dict[str, list[dict]] = defaultdict(list)
    for ts, stream, event in items:
        cid = event.get("conversation_id")
        if stream == "chat_turns":
            assert cid not in signals, "a turn after its conversation's signals"
            last_turn[cid], journey[cid] = ts, event["journey"]
            if event["outcome"]["escalated_to_agent"]:
                escalated.add(cid)
        elif stream == "signals":
            assert ts > last_turn[cid]
            signals[cid].append(event)
    kinds = defaultdict(int)
    for cid, events in signals.items():
        assert len({e["event_id"] for e in events}) == len(events)
        assert sum(e["kind"] == "handle_time" for e in events) == 1  # one per ended conversation
        for e in events:
            kinds[e["kind"]] += 1
            if e["kind"] in ("add_to_cart", "purchase"):
                assert journey[cid] == "shopper" and cid not in escalated
            if e["kind"] == "agent_handoff":
                assert cid in escalated
    assert set(kinds) == {
        "handle_time",
        "agent_handoff",
        "thumbs_up",
        "thumbs_down",
        "add_to_cart",
        "purchase",
        "recontact",
    }
    assert kinds["purchase"] < kinds["add_to_cart"] < kinds["handle_time"]
    assert 0.5 < len(signals) / len(last_turn) <= 1.0  # conversations still open at the end have none


def test_signals_do_not_change_the_other_streams():
    with_signals = _items(seed=5, rate=10.0, duration=600.0)
    without = _items(seed=5, rate=10.0, duration=600.0, signals=False)
    assert [i for i in with_signals if i[1] != "signals"] == without
    assert any(i[1] == "signals" for i in with_signals)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        Incident(start_after_s=0, model_version="m", journey="shopper", dimension="tone")
    with pytest.raises(ValueError):
        TrafficGenerator(start=datetime(2026, 11, 2, 8, 0))  # noqa: DTZ001 - naive on purpose
    with pytest.raises(ValueError):
        TrafficGenerator(rate=0)
    assert TrafficGenerator(start=datetime(2026, 1, 1, tzinfo=UTC)).start.tzinfo is UTC
