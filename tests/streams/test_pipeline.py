"""Pipeline: dead letters for bad records, counters, and the LLMBar replay figures."""

from __future__ import annotations

import base64
import itertools
import json
import random
from collections import Counter
from pathlib import Path

import orjson
import pytest
from prometheus_client import CollectorRegistry
from sklearn.metrics import cohen_kappa_score

from schemas import DeadLetter, Defect, Stream
from streams.config import Settings
from streams.embedded import replay
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from tests.factories import chat_turn, human_label, judge_verdict, raw, verdict

LLMBAR = Path(__file__).parents[1] / "data" / "llmbar-mtbench"  # MIT, LICENSE beside it
FILES = {
    "chats": LLMBAR / "chat_turns.jsonl",
    "verdicts": LLMBAR / "judge_verdicts.jsonl",
    "labels": LLMBAR / "human_labels.jsonl",
}
MAX_BYTES = 2048


def _pipeline(**settings) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(max_record_bytes=MAX_BYTES, **settings), metrics=Metrics(registry))
    return pipeline, registry


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


# (stream, bytes, expected reason); None reason means valid
def _records() -> list[tuple[Stream, bytes, str | None]]:
    c, j, h = Stream.CHAT_TURNS, Stream.JUDGE_VERDICTS, Stream.HUMAN_LABELS
    records: list[tuple[Stream, bytes, str | None]] = [
        (c, raw(chat_turn(turn_id="a")), None),
        (j, raw(judge_verdict(turn_id="a", verdicts=[verdict("safety", "fail")])), None),
        (h, raw(human_label(turn_id="a", verdicts=[verdict("safety", "pass")])), None),
        (c, raw(chat_turn(turn_id="b", risk_topics=["earnings"])), None),
        (j, raw(judge_verdict(turn_id="b")), None),
        (c, b"\xff\xfe not utf-8 \x80", "invalid_json"),
        (j, b'{"turn_id": "x", ', "invalid_json"),
        (h, b"", "invalid_json"),
        (c, b'{"turn_id": "x", "latency_ms": NaN}', "invalid_json"),
        (j, b'[{"turn_id": "x"}]', "not_an_object"),
        (h, b'"just a string"', "not_an_object"),
        (c, raw(chat_turn(turn_id="big", response_text="x" * (MAX_BYTES + 1))), "too_large"),
        (h, raw(human_label(schema_version=7)), "unsupported_version"),
        (c, raw(chat_turn(ts="2026-11-02T08:00:00")), "validation_error"),
        (j, raw(judge_verdict(verdicts=[verdict("relevance", "good")])), "validation_error"),
        (h, raw(human_label(verdicts=[])), "validation_error"),
        (c, raw(chat_turn(ts="1999-12-31T23:59:59Z")), "validation_error"),
        (j, b'{"turn_id": "\xed\xa0\x80"}', "invalid_json"),
    ]
    # a shuffled mix, so dead letters are interleaved with valid records
    random.Random(5).shuffle(records)
    return records


def test_every_invalid_record_yields_exactly_one_faithful_dead_letter():
    pipeline, registry = _pipeline()
    records = _records()
    for offset, (stream, data, reason) in enumerate(records):
        topic = f"convowatch.{stream.value}"
        out = pipeline.process(stream, data, source_topic=topic, offset=offset)
        dead = [e for e in out if e.topic == "deadletter"]
        # process aggregates the join's observations in-process: only publishable records come out
        assert all(
            e.topic in ("defects", "escalations", "deadletter", "divergences", "review_requests")
            or e.topic.startswith("defects.")
            for e in out
        )
        if reason is None:
            assert dead == []
            continue
        assert len(dead) == 1 and len(out) == 1, (reason, out)
        value = dead[0].value
        DeadLetter.model_validate(value)
        assert value["reason"] == reason
        assert isinstance(value["detail"], str) and value["detail"]
        assert value["stream"] == stream.value
        assert value["source_topic"] == topic
        assert value["offset"] == offset
        assert base64.b64decode(value["original_base64"], validate=True) == data
        assert value["original_size"] == len(data)
        assert dead[0].key == f"{topic}/None/{offset}"
        orjson.dumps(value)  # publishable as JSON

    expected_valid = Counter(s.value for s, _, r in records if r is None)
    expected_dead = Counter(s.value for s, _, r in records if r is not None)
    by_reason = Counter((s.value, r) for s, _, r in records if r is not None)
    for stream in Stream:
        assert _sample(registry, "convowatch_records_in_total", stream=stream.value) == (
            expected_valid[stream.value] + expected_dead[stream.value]
        )
        assert (
            _sample(registry, "convowatch_records_valid_total", stream=stream.value)
            == expected_valid[stream.value]
        )
    for (stream, reason), count in by_reason.items():
        assert (
            _sample(registry, "convowatch_records_deadlettered_total", stream=stream, reason=reason) == count
        )
    assert pipeline.report()["events"] == {
        **{s.value: expected_valid[s.value] for s in Stream},
        "deadletter": sum(expected_dead.values()),
    }


def test_valid_records_flow_through_to_defects_escalations_and_agreement():
    pipeline, registry = _pipeline()
    published = []
    for offset, (stream, data, reason) in enumerate(_records()):
        if reason is None:
            published += pipeline.process(stream, data, source_topic="t", offset=offset)
    published += pipeline.finish()
    topics = Counter(e.topic for e in published)
    # the escalation is published when the judge fails the turn, when the turn arrives (its segment) and
    # when the annotator passes the judge's fail (resolved), with the same id
    assert (topics["defects"], topics["escalations"]) == (1, 3)
    newest = max((e.value for e in published if e.topic == "escalations"), key=lambda v: v["revision"])
    assert newest["status"] == "resolved"
    # and its copy on the category topic, when configured
    assert topics["defects.unsafe"] == (1 if pipeline.settings.defect_category_topics else 0)
    assert len({e.key for e in published if e.topic == "escalations"}) == 1
    (row,) = [r for r in pipeline.report()["agreement"] if r["dimension"] == "safety"]
    assert (row["judge_id"], row["n"], row["percent_agreement"]) == ("judge-a", 1, 0.0)
    assert _sample(registry, "convowatch_judge_agreement_pairs", judge_id="judge-a", dimension="safety") == 1


def test_finish_publishes_defects_of_turns_that_never_arrived():
    pipeline, _ = _pipeline()
    out = pipeline.process(
        Stream.JUDGE_VERDICTS,
        raw(judge_verdict(turn_id="ghost", verdicts=[verdict("execution_accuracy", "fail")])),
        source_topic="t",
        offset=1,
    )
    assert out == []
    flushed = pipeline.finish()
    (defect,) = [e.value for e in flushed if e.topic == "defects"]
    Defect.model_validate(defect)
    assert defect["turn_id"] == "ghost"
    assert defect["segment"]["journey"] is None
    assert len(pipeline.joiner.store) == 0


# -- the LLMBar replay -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def llmbar(tmp_path_factory):
    out = tmp_path_factory.mktemp("replay")
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(), metrics=Metrics(registry))
    report = replay(
        pipeline,
        out,
        chats=FILES["chats"],
        verdicts=FILES["verdicts"],
        labels=FILES["labels"],
        show_progress=False,
    )
    return report, out, registry


def _row(report, judge_id):
    (row,) = [r for r in report["agreement"] if r["judge_id"] == judge_id and r["dimension"] == "preference"]
    return row


@pytest.mark.parametrize(
    ("judge_id", "agreement", "kappa"), [("gpt-4", 0.795, 0.589918), ("chatgpt", 0.700, 0.397409)]
)
def test_llmbar_replay_agreement_figures(llmbar, judge_id, agreement, kappa):
    report, _, registry = llmbar
    row = _row(report, judge_id)
    assert row["n"] == 200
    assert row["percent_agreement"] == pytest.approx(agreement, abs=1e-6)
    assert row["cohen_kappa"] == pytest.approx(kappa, abs=1e-6)
    labels = {"judge_id": judge_id, "dimension": "preference"}
    assert registry.get_sample_value("convowatch_judge_agreement_ratio", labels) == pytest.approx(
        agreement, abs=1e-9
    )
    assert registry.get_sample_value("convowatch_judge_cohen_kappa", labels) == pytest.approx(kappa, abs=1e-6)
    assert registry.get_sample_value("convowatch_judge_agreement_pairs", labels) == 200


def test_llmbar_report_on_disk(llmbar):
    report, out, registry = llmbar
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["events"] == {
        "chat_turns": 200,
        "judge_verdicts": 400,
        "human_labels": 200,
        "signals": 0,
        "deadletter": 0,
    }
    assert on_disk["agreement"] == json.loads(json.dumps(report["agreement"]))
    assert {r["judge_id"] for r in on_disk["agreement"]} == {"gpt-4", "chatgpt"}
    for name in ("defects.jsonl", "escalations.jsonl", "deadletter.jsonl"):
        assert (out / name).is_file()
    assert (out / "deadletter.jsonl").read_bytes() == b""
    for stream, count in (("chat_turns", 200), ("judge_verdicts", 400), ("human_labels", 200)):
        assert registry.get_sample_value("convowatch_records_in_total", {"stream": stream}) == count


def _read(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("judge_id", ["gpt-4", "chatgpt"])
def test_llmbar_kappa_matches_sklearn_computed_from_the_files(llmbar, judge_id):
    report, _, _ = llmbar
    human = {}
    for record in _read(FILES["labels"]):
        for v in record["verdicts"]:
            if v["dimension"] == "preference":
                human[record["turn_id"]] = v["label"]
    pairs = []
    for record in _read(FILES["verdicts"]):
        if record["judge_id"] != judge_id:
            continue
        for v in record["verdicts"]:
            if v["dimension"] == "preference" and record["turn_id"] in human:
                pairs.append((v["label"], human[record["turn_id"]]))
    assert len(pairs) == 200
    judge_labels, human_labels = zip(*pairs, strict=True)
    expected_kappa = cohen_kappa_score(judge_labels, human_labels)
    expected_agreement = sum(a == b for a, b in pairs) / len(pairs)
    row = _row(report, judge_id)
    assert row["cohen_kappa"] == pytest.approx(expected_kappa, abs=1e-9)
    assert row["percent_agreement"] == pytest.approx(expected_agreement, abs=1e-12)


@pytest.mark.parametrize("where", ["attributes", "scores"])
def test_a_dead_letter_stays_publishable_when_the_record_quotes_a_huge_key(where: str) -> None:
    # a validation error names the offending key; a key as large as the record once made a dead letter over
    # the producer's limit, and the worker exited on it at every restart
    from streams.batch_publisher import truncated_dead_letter
    from streams.state import MAX_WRITE_BYTES

    pipeline = Pipeline(Settings(), metrics=Metrics(CollectorRegistry()))
    huge = "k" * 900_000
    if where == "attributes":
        stream, record = Stream.CHAT_TURNS, chat_turn(attributes={huge: "x"})
    else:
        stream, record = Stream.JUDGE_VERDICTS, judge_verdict(scores={huge: 0.5})
    data = raw(record)
    out = pipeline.process(stream, data, source_topic="in", offset=0)
    [dead] = out
    assert dead.value["reason"] == "validation_error"
    assert len(dead.value["detail"]) < 2_100 and "more characters" not in dead.value["detail"][:200]
    assert base64.b64decode(dead.value["original_base64"]) == data  # the original is kept whole
    encoded = orjson.dumps(dead.value)
    if len(encoded) > MAX_WRITE_BYTES:  # as the Kafka worker publishes it
        encoded = truncated_dead_letter(dead.value)
    assert len(encoded) <= MAX_WRITE_BYTES


def test_the_newest_event_time_is_exported_only_once_a_stream_has_one_and_never_goes_back() -> None:
    pipeline, registry = _pipeline()

    def newest(stream: str) -> float | None:
        return registry.get_sample_value("convowatch_last_event_timestamp_seconds", {"stream": stream})

    # a worker that reads no inputs (the aggregate role) must not show an event time of 0: alerts read it
    assert newest("chat_turns") is None and newest("judge_verdicts") is None
    later, earlier = "2026-11-24T10:00:00Z", "2026-11-24T09:00:00Z"
    for turn_id, ts in (("t-late", later), ("t-early", earlier)):
        pipeline.process(Stream.CHAT_TURNS, raw(chat_turn(turn_id=turn_id, ts=ts)), source_topic="in")
    assert newest("chat_turns") == 1795514400.0  # 10:00, not the late record's 09:00
    assert newest("judge_verdicts") is None


def test_a_bug_in_processing_a_record_dead_letters_it_in_both_transports(monkeypatch, caplog) -> None:
    # the embedded transport (replay, demo) used to stop on it; the Kafka worker dead-lettered it
    pipeline, registry = _pipeline()

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(pipeline.joiner, "handle", broken)
    data = raw(chat_turn())
    out = pipeline.process(Stream.CHAT_TURNS, data, source_topic="in", offset=4)
    [dead] = out
    assert dead.topic == "deadletter" and dead.value["reason"] == "internal_error"
    assert dead.value["detail"] == "RuntimeError: a bug" and dead.value["offset"] == 4
    assert base64.b64decode(dead.value["original_base64"]) == data
    labels = {"stream": "chat_turns", "reason": "internal_error"}
    assert registry.get_sample_value("convowatch_records_deadlettered_total", labels) == 1.0
    assert "internal error on in[None]@4" in caplog.text


def test_a_view_that_fails_does_not_keep_the_observation_from_the_others(caplog) -> None:
    from streams.aggregate import Aggregator

    class Broken:
        kinds = ("judged",)

        def apply(self, aggregator, observation, partition):
            raise ValueError("a bug")

    class Counting:
        kinds = ("judged",)
        seen = 0

        def apply(self, aggregator, observation, partition):
            Counting.seen += 1
            return []

    registry = CollectorRegistry()
    aggregator = Aggregator(Metrics(registry), views=[Broken(), Counting()])
    for i in range(3):
        assert aggregator.apply({"kind": "judged", "src": ["in:0", i, 0]}) == []
    assert Counting.seen == 3
    assert registry.get_sample_value("convowatch_internal_errors_total", {"stage": "aggregate"}) == 3.0
    assert "Broken on a judged observation" in caplog.text


def test_an_event_time_far_ahead_of_the_clock_is_dead_lettered_not_let_into_the_windows() -> None:
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)

    def at(delta: timedelta) -> str:
        return (now + delta).isoformat()

    pipeline, registry = _pipeline()  # the default limit: 1 day ahead
    ahead = raw(chat_turn(turn_id="t-ahead", ts=at(timedelta(days=2))))
    [dead] = pipeline.process(Stream.CHAT_TURNS, ahead, source_topic="in", offset=1)
    assert dead.topic == "deadletter" and dead.value["reason"] == "future_timestamp"
    assert "ahead of this worker's clock" in dead.value["detail"]
    assert base64.b64decode(dead.value["original_base64"]) == ahead
    labels = {"stream": "chat_turns", "reason": "future_timestamp"}
    assert registry.get_sample_value("convowatch_records_deadlettered_total", labels) == 1.0
    assert pipeline.joiner.watermark < (now + timedelta(hours=1)).timestamp()  # event time did not jump
    # a producer a little ahead is fine; so is anything with the check off
    skewed = raw(chat_turn(turn_id="t-skewed", ts=at(timedelta(hours=1))))
    assert pipeline.process(Stream.CHAT_TURNS, skewed, source_topic="in", offset=2) == []
    unchecked, _ = _pipeline(max_future_seconds=0)
    assert unchecked.process(Stream.CHAT_TURNS, ahead, source_topic="in", offset=1) == []


class _Clock:
    """The pipeline's wall clock, set by the test (the module's ``time`` with ``time()`` replaced)."""

    def __init__(self, now: float) -> None:
        import time

        self.now = now
        self.perf_counter, self.monotonic = time.perf_counter, time.monotonic

    def time(self) -> float:
        return self.now


def test_a_record_ahead_of_the_clock_is_taken_at_the_clock_plus_the_skew_and_evicts_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a producer whose clock is 3 h fast: under the 1-day limit, its turn used to move the join's event time
    # 3 h ahead, and the next eviction pass published every pending turn as evicted
    from datetime import UTC, datetime, timedelta

    import streams.pipeline

    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    clock = _Clock((t0 + timedelta(seconds=5)).timestamp())
    monkeypatch.setattr(streams.pipeline, "time", clock)
    pipeline, registry = _pipeline(join_ttl_seconds=3600, evict_every=1)
    pipeline.process(Stream.CHAT_TURNS, raw(chat_turn(turn_id="t-now", ts=t0.isoformat())), source_topic="in")
    fast = chat_turn(turn_id="t-fast", ts=(t0 + timedelta(hours=3)).isoformat())
    assert pipeline.process(Stream.CHAT_TURNS, raw(fast), source_topic="in", offset=1) == []
    assert _sample(registry, "convowatch_records_clock_ahead_total", stream="chat_turns") == 1.0
    assert _sample(registry, "convowatch_records_valid_total", stream="chat_turns") == 2.0
    assert pipeline.joiner.watermark == pytest.approx(clock.now + 60.0)  # CONVOWATCH_CLOCK_SKEW_SECONDS
    assert pipeline.joiner.state.get("t-fast")["turn"]["ts"] == pytest.approx(clock.now + 60.0)
    late = judge_verdict(turn_id="t-now", verdicts=[verdict("relevance", "fail")])
    [defect] = [
        e
        for e in pipeline.process(Stream.JUDGE_VERDICTS, raw(late), source_topic="v")
        if e.topic == "defects"
    ]
    assert defect.value["segment"]["journey"] == "billing"  # joined with its turn, not evicted before it
    # up to the skew, a time is taken as it is
    near = chat_turn(turn_id="t-near", ts=datetime.fromtimestamp(clock.now + 59.0, UTC).isoformat())
    pipeline.process(Stream.CHAT_TURNS, raw(near), source_topic="in", offset=2)
    assert pipeline.joiner.state.get("t-near")["turn"]["ts"] == pytest.approx(clock.now + 59.0)
    assert _sample(registry, "convowatch_records_clock_ahead_total", stream="chat_turns") == 1.0


def test_one_turn_from_a_fast_clock_does_not_close_a_journeys_traffic_minutes_empty(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # taken at its own time, a turn 30 minutes ahead moved the journey's minute clock with it: the turns
    # of the minutes in between came in late, were not counted, and those minutes read as a volume drop
    from datetime import UTC, datetime, timedelta

    import streams.pipeline

    t0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    clock = _Clock(t0.timestamp())
    monkeypatch.setattr(streams.pipeline, "time", clock)
    pipeline, _ = _pipeline()
    rng = random.Random(5)
    escalations = []

    def turn(n: int, at: datetime) -> None:
        record = chat_turn(turn_id=f"t-{n}", ts=at.isoformat(), latency_ms=rng.uniform(300, 500))
        for emit in pipeline.process(Stream.CHAT_TURNS, raw(record), source_topic="in", offset=n):
            if emit.topic == "escalations":
                escalations.append(emit.value)

    for n in range(60 * 20):  # 60 minutes, 20 turns a minute
        at = t0 + timedelta(seconds=3 * n)
        clock.now = at.timestamp() + 1.0
        turn(n, at)
        if n == 45 * 20:
            turn(100_000, at + timedelta(minutes=30))
    assert [e["kind"] for e in escalations] == []


def test_a_turn_keeps_at_most_a_hundred_annotators_and_refuses_more_into_the_dead_letters() -> None:
    # a labelling tool sending one turn id for every turn would grow its entry past a changelog record's size
    from streams.join_caps import MAX_RATERS_PER_TURN

    pipeline, registry = _pipeline()
    for i in range(MAX_RATERS_PER_TURN):
        label = human_label(turn_id="undefined", annotator_id=f"a{i}", verdicts=[verdict("safety", "pass")])
        assert pipeline.process(Stream.HUMAN_LABELS, raw(label), source_topic="in", offset=i) == []
    safe = [verdict("safety", "pass")]
    extra = raw(human_label(turn_id="undefined", annotator_id="a-extra", verdicts=safe))
    [dead] = pipeline.process(Stream.HUMAN_LABELS, extra, source_topic="in", offset=100)
    assert dead.value["reason"] == "too_many_raters" and "100 annotators" in dead.value["detail"]
    assert base64.b64decode(dead.value["original_base64"]) == extra
    again = raw(human_label(turn_id="undefined", annotator_id="a7", verdicts=[verdict("bias", "pass")]))
    assert pipeline.process(Stream.HUMAN_LABELS, again, source_topic="in", offset=101) == []  # a known one
    entry = pipeline.joiner.state.get("undefined")
    assert len(entry["human"]) == MAX_RATERS_PER_TURN and "a-extra" not in entry["human"]
    refused = _sample(
        registry, "convowatch_records_deadlettered_total", stream="human_labels", reason="too_many_raters"
    )
    assert refused == 1.0
    assert _sample(registry, "convowatch_records_valid_total", stream="human_labels") == 101  # not refused
    assert _sample(registry, "convowatch_records_in_total", stream="human_labels") == 102


def test_a_record_ahead_of_the_clock_shows_as_now_in_the_newest_event_time() -> None:
    # shown as it is, a record up to the future limit would hide a silence from the staleness alerts
    import time
    from datetime import UTC, datetime, timedelta

    pipeline, registry = _pipeline()
    ahead = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    before = time.time()
    assert pipeline.process(Stream.CHAT_TURNS, raw(chat_turn(ts=ahead)), source_topic="in") == []
    shown = registry.get_sample_value("convowatch_last_event_timestamp_seconds", {"stream": "chat_turns"})
    assert shown is not None and before <= shown <= time.time()


@pytest.mark.parametrize("order", list(itertools.permutations(["turn", "judge", "ann-1", "ann-2"])))
def test_labelling_coverage_counts_each_judged_turn_once_whatever_the_order(order: tuple[str, ...]) -> None:
    # counted once per annotator (2 with two annotators), and not at all when the label came first
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(max_future_seconds=0), Metrics(registry))
    records = {
        "turn": (Stream.CHAT_TURNS, chat_turn()),
        "judge": (Stream.JUDGE_VERDICTS, judge_verdict()),
        "ann-1": (Stream.HUMAN_LABELS, human_label(annotator_id="ann-1")),
        "ann-2": (Stream.HUMAN_LABELS, human_label(annotator_id="ann-2")),
    }
    for offset, name in enumerate(order):
        stream, event = records[name]
        pipeline.process(stream, raw(event), source_topic=name, offset=offset)
    labels = {"judge_id": "judge-a", "journey": "billing"}
    judged = registry.get_sample_value("convowatch_turns_judged_total", labels)
    assert (judged, registry.get_sample_value("convowatch_turns_labelled_total", labels)) == (1, 1)


def test_a_rater_keeps_at_most_64_dimensions_on_a_turn_and_more_are_dead_lettered() -> None:
    # a judge sending new dimensions for one turn again and again grew its entry, and every defect carrying
    # it, past what a Kafka record may hold: the worker failed the batch at every restart
    from streams.join_caps import MAX_DIMENSIONS_PER_RATER

    pipeline, registry = _pipeline()
    dims = [f"style_{i}" for i in range(MAX_DIMENSIONS_PER_RATER)]
    for offset, start in enumerate(range(0, MAX_DIMENSIONS_PER_RATER, 16)):
        batch = [verdict(d, "ok") for d in dims[start : start + 16]]
        record = raw(judge_verdict(turn_id="t-many", judge_id="j", verdicts=batch))
        assert pipeline.process(Stream.JUDGE_VERDICTS, record, source_topic="in", offset=offset) == []
    more = raw(judge_verdict(turn_id="t-many", judge_id="j", verdicts=[verdict("relevance", "fail")]))
    [dead] = pipeline.process(Stream.JUDGE_VERDICTS, more, source_topic="in", offset=10)
    assert dead.value["reason"] == "too_many_dimensions" and "64 dimensions" in dead.value["detail"]
    assert base64.b64decode(dead.value["original_base64"]) == more
    again = raw(judge_verdict(turn_id="t-many", judge_id="j", verdicts=[verdict(dims[3], "ok")]))
    assert pipeline.process(Stream.JUDGE_VERDICTS, again, source_topic="in", offset=11) == []  # held ones
    other = raw(judge_verdict(turn_id="t-many", judge_id="j2", verdicts=[verdict("relevance", "fail")]))
    out = pipeline.process(Stream.JUDGE_VERDICTS, other, source_topic="in", offset=12)
    assert all(e.topic != "deadletter" for e in out)  # another judge has its own 64
    assert len(pipeline.joiner.state.get("t-many")["judge"]["j"]["labels"]) == MAX_DIMENSIONS_PER_RATER
    labels = {"stream": "judge_verdicts", "reason": "too_many_dimensions"}
    assert registry.get_sample_value("convowatch_records_deadlettered_total", labels) == 1.0


def test_a_defect_carries_its_own_rater_and_at_most_ten_judges_and_ten_annotators() -> None:
    from streams.join_outputs import MAX_DEFECT_RATERS

    pipeline, _ = _pipeline()
    out = pipeline.process(Stream.CHAT_TURNS, raw(chat_turn(turn_id="t-crowd")), source_topic="in", offset=0)
    offset = 1
    for i in range(15):
        for record in (
            judge_verdict(turn_id="t-crowd", judge_id=f"j{i:02}", verdicts=[verdict("relevance", "pass")]),
            human_label(turn_id="t-crowd", annotator_id=f"a{i:02}", verdicts=[verdict("relevance", "pass")]),
        ):
            stream = Stream.JUDGE_VERDICTS if "judge_id" in record else Stream.HUMAN_LABELS
            out += pipeline.process(stream, raw(record), source_topic="in", offset=offset)
            offset += 1
    late = judge_verdict(turn_id="t-crowd", judge_id="j-late", verdicts=[verdict("relevance", "fail")])
    out += pipeline.process(Stream.JUDGE_VERDICTS, raw(late), source_topic="in", offset=offset)
    [defect] = [Defect.model_validate(e.value) for e in out if e.topic == "defects"]
    assert defect.judge_id == "j-late" and "j-late" in defect.verdicts  # its own rater, though the 16th
    assert len(defect.verdicts) == MAX_DEFECT_RATERS and len(defect.labels) == MAX_DEFECT_RATERS
    assert defect.raters_cut == (16 - MAX_DEFECT_RATERS) + (15 - MAX_DEFECT_RATERS)


def test_a_valid_record_under_another_kafka_key_is_processed_and_counted_as_miskeyed() -> None:
    pipeline, registry = _pipeline()
    turn = raw(chat_turn(turn_id="t-key"))
    verdict_ = raw(judge_verdict(turn_id="t-key"))
    out = pipeline.ingest(Stream.CHAT_TURNS, turn, source_topic="in", offset=0, key=b"t-key")
    out += pipeline.ingest(Stream.CHAT_TURNS, turn, source_topic="in", offset=1, key=None)
    out += pipeline.ingest(Stream.JUDGE_VERDICTS, verdict_, source_topic="in", offset=2, key=b"other")
    out += pipeline.ingest(Stream.JUDGE_VERDICTS, verdict_, source_topic="in", offset=3)  # a file: no key
    assert out and all(e.topic != "deadletter" for e in out)  # processed

    def miskeyed(stream: str) -> float | None:
        return registry.get_sample_value("convowatch_records_miskeyed_total", {"stream": stream})

    assert miskeyed("chat_turns") == 1.0 and miskeyed("judge_verdicts") == 1.0


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        ("2026-11-02T08:00:00Z", 1793606400.0),
        ("2026-11-02t08:00:00z", 1793606400.0),  # valid RFC 3339: the parser takes it, so must the ordering
        ("2026-11-02T09:00:00+01:00", 1793606400.0),
        ("2026-11-02T08:00:00", float("-inf")),  # naive: dead-lettered; never read in the host's time zone
        ("1793606400", float("-inf")),
    ],
)
def test_the_event_time_of_a_raw_record_reads_what_the_parser_reads(ts, expected, monkeypatch) -> None:
    import time

    from streams.embedded import event_time_of

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()
    try:
        assert event_time_of(raw(chat_turn(ts=ts))) == expected
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_a_divergence_validates_against_its_published_model_and_exported_schema(tmp_path) -> None:
    # convowatch.divergences was published with no output model or exported JSON Schema
    import jsonschema

    from schemas import Divergence
    from schemas.export import write_json_schemas

    pipeline, _ = _pipeline()
    out = pipeline.process(Stream.CHAT_TURNS, raw(chat_turn(turn_id="t-div")), source_topic="c", offset=0)
    judged = judge_verdict(turn_id="t-div", verdicts=[verdict("safety", "fail")])
    out += pipeline.process(Stream.JUDGE_VERDICTS, raw(judged), source_topic="v", offset=0)
    for offset, annotator in enumerate(("ann-1", "ann-2")):
        label = human_label(turn_id="t-div", annotator_id=annotator, verdicts=[verdict("safety", "pass")])
        out += pipeline.process(Stream.HUMAN_LABELS, raw(label), source_topic="h", offset=offset)
    divergences = [e.value for e in out if e.topic == "divergences"]
    assert divergences
    [path] = [p for p in write_json_schemas(tmp_path) if p.name.startswith("divergence.")]
    validator = jsonschema.Draft202012Validator(json.loads(path.read_text()))
    for value in divergences:
        Divergence.model_validate(value)
        validator.validate(value)
    assert divergences[0]["judge_label"] == "fail" and divergences[0]["human_label"] == "pass"
