"""A turn's labels are capped so that its join entry, and everything built from it, fits a Kafka record."""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from schemas import Stream
from schemas.common import QUALITY_DIMENSIONS
from streams.config import Settings
from streams.emit import Emit
from streams.join import (
    MAX_DIMENSIONS_PER_RATER,
    MAX_LABEL_BYTES_PER_TURN,
    MAX_LABELS_PER_TURN,
    MAX_RATERS_PER_TURN,
)
from streams.metrics import Metrics
from streams.observation_packs import PACK_MAX_BYTES
from streams.pipeline import Pipeline
from streams.state import MAX_WRITE_BYTES
from tests.factories import chat_turn, human_label, judge_verdict, raw, verdict


def _pipeline(**settings: Any) -> tuple[Pipeline, CollectorRegistry]:
    registry = CollectorRegistry()
    return Pipeline(Settings(**settings), metrics=Metrics(registry)), registry


def _dead(emits: list[Emit]) -> list[str]:
    return [e.value["reason"] for e in emits if e.topic == "deadletter"]


def test_a_turn_keeps_at_most_800_labels_and_refuses_more_into_the_dead_letters() -> None:
    # within the per-rater caps (100 judges and 100 annotators, 64 dimensions each) a turn's entry grew to
    # 2.4 MB, past a changelog record: the Kafka table kept it in memory only, and a restart lost its records
    pipeline, registry = _pipeline()
    offset = 0

    def send(stream: Stream, record: dict[str, Any]) -> list[Emit]:
        nonlocal offset
        offset += 1
        return pipeline.process(stream, raw(record), source_topic="in", offset=offset)

    dims = [f"style_{i}" for i in range(MAX_DIMENSIONS_PER_RATER)]
    full, rest = divmod(MAX_LABELS_PER_TURN, MAX_DIMENSIONS_PER_RATER)
    for j in range(full + 1):
        mine = dims if j < full else dims[:rest]
        verdicts = [verdict(d, "ok") for d in mine]
        record = judge_verdict(turn_id="t", judge_id=f"j{j}", verdicts=verdicts)
        assert not _dead(send(Stream.JUDGE_VERDICTS, record))
    entry = pipeline.joiner.state.get("t")
    assert sum(len(r["labels"]) for r in entry["judge"].values()) == MAX_LABELS_PER_TURN
    # one label more, from a new annotator or from a judge the turn has: refused
    extra = human_label(turn_id="t", annotator_id="a-extra", verdicts=[verdict("safety", "pass")])
    [dead] = send(Stream.HUMAN_LABELS, extra)
    assert dead.value["reason"] == "too_many_labels"
    assert f"already keeps {MAX_LABELS_PER_TURN} labels" in dead.value["detail"]
    more = judge_verdict(turn_id="t", judge_id=f"j{full}", verdicts=[verdict(dims[rest], "ok")])
    assert _dead(send(Stream.JUDGE_VERDICTS, more)) == ["too_many_labels"]
    # a record adding no label (labels it kept already) goes through
    again = judge_verdict(turn_id="t", judge_id="j0", verdicts=[verdict(dims[0], "ok")])
    assert _dead(send(Stream.JUDGE_VERDICTS, again)) == []
    entry = pipeline.joiner.state.get("t")
    assert "a-extra" not in entry["human"] and len(entry["judge"][f"j{full}"]["labels"]) == rest
    refused = registry.get_sample_value(
        "convowatch_records_deadlettered_total", {"stream": "judge_verdicts", "reason": "too_many_labels"}
    )
    assert refused == 1.0


def test_labels_whose_json_is_long_count_by_their_bytes() -> None:
    # 64 characters, but 386 bytes of JSON each when they are control characters: 800 of them on 64-character
    # custom dimensions made a 1.09 MB entry write with the outputs of one record
    pipeline, _ = _pipeline()
    escaped = "\x01" * 64
    dims = [f"style_{i}" for i in range(MAX_DIMENSIONS_PER_RATER)]
    verdicts = [verdict(d, escaped) for d in dims]
    per_judge = len(orjson.dumps({d: escaped for d in dims}))
    fit = MAX_LABEL_BYTES_PER_TURN // per_judge
    for j in range(fit + 1):
        record = raw(judge_verdict(turn_id="t", judge_id=f"j{j}", verdicts=verdicts))
        emits = pipeline.process(Stream.JUDGE_VERDICTS, record, source_topic="in", offset=j)
        assert _dead(emits) == ([] if j < fit else ["too_many_labels"])
    assert fit * MAX_DIMENSIONS_PER_RATER < MAX_LABELS_PER_TURN  # refused by their size, not their number
    [dead] = emits
    assert f"would pass the {MAX_LABEL_BYTES_PER_TURN} kept" in dead.value["detail"]
    # labels of 64 plain characters on dimensions of 64: 800 fit (the worst case measured below)
    assert 800 * len(orjson.dumps({"d" * 64: "L" * 64})) < MAX_LABEL_BYTES_PER_TURN


def test_normal_traffic_stays_within_the_label_cap() -> None:
    # 100 annotators on the 7 quality dimensions with a judge on 64; 10 judges on 64 dimensions with 2
    # annotators on every quality dimension
    pipeline, _ = _pipeline()
    quality = sorted(QUALITY_DIMENSIONS)[:7]
    custom = [verdict(f"style_{i}", "ok") for i in range(MAX_DIMENSIONS_PER_RATER)]
    offset = 0
    traffic = (("t1", 1, MAX_RATERS_PER_TURN, quality), ("t2", 10, 2, sorted(QUALITY_DIMENSIONS)))
    for turn, judges, annotators, dims in traffic:
        for j in range(judges):
            offset += 1
            record = judge_verdict(turn_id=turn, judge_id=f"j{j}", verdicts=custom)
            assert not _dead(
                pipeline.process(Stream.JUDGE_VERDICTS, raw(record), source_topic="in", offset=offset)
            )
        for a in range(annotators):
            offset += 1
            labels = [verdict(d, "pass") for d in dims]
            record = human_label(turn_id=turn, annotator_id=f"a{a}", verdicts=labels)
            assert not _dead(
                pipeline.process(Stream.HUMAN_LABELS, raw(record), source_topic="in", offset=offset)
            )


def _name(prefix: str, n: int) -> str:
    """A judge, annotator, vendor, dimension or score name of the longest kind (64 characters)."""
    return f"{prefix}{n:04d}".ljust(64, "x")


def _maximal_turn(judge_labels: list[list[str]], human_labels: list[list[str]]) -> tuple[int, int, int]:
    """Feed one turn at every per-turn cap (each record its own batch, on the Kafka transport's join, which
    keeps a batch's outputs in the entry): the largest entry written, that entry without its kept outputs at
    the end, and the largest output or observation."""
    settings = Settings(text_redaction="keep")
    pipeline = Pipeline(settings, metrics=Metrics(CollectorRegistry()), batched=True, keep_outputs=True)
    turn_id = "t" * 256
    written = largest = offset = 0

    def send(stream: Stream, record: dict[str, Any]) -> None:
        nonlocal written, largest, offset
        offset += 1
        emits = pipeline.ingest(stream, raw(record), source_topic="in", partition=0, offset=offset)
        assert not _dead(emits)
        largest = max([largest, *(len(orjson.dumps(e.value)) for e in emits)])
        pipeline.flush()
        written = max(written, len(orjson.dumps(pipeline.joiner.state.get(turn_id))))
        pipeline.joiner.published()

    def labels(dims: list[str]) -> list[dict[str, Any]]:
        return [
            verdict(d, "fail" if d in QUALITY_DIMENSIONS else "L" * 64, confidence=0.12345678901234566)
            for d in dims
        ]

    send(
        Stream.CHAT_TURNS,
        chat_turn(
            turn_id=turn_id,
            conversation_id="c" * 256,
            user_text="u" * 20_000,  # kept cut to 16,384 characters
            response_text="r" * 20_000,
            guardrail_flags=[_name("g", k) for k in range(64)],
            risk_topics=[_name("r", k) for k in range(64)],
        ),
    )
    scores = {_name("s", k): 0.12345678901234566 for k in range(16)}
    for j, dims in enumerate(judge_labels):
        judge = judge_verdict(turn_id=turn_id, judge_id=_name("j", j), verdicts=labels(dims), scores=scores)
        send(Stream.JUDGE_VERDICTS, judge)
    for a, dims in enumerate(human_labels):
        for dim in dims:  # one record per dimension: the entry keeps when each later one was labelled
            label = human_label(
                turn_id=turn_id,
                annotator_id=_name("h", a),
                vendor_id=_name("w", a),
                inclusion_probability=0.12345678901234566,
                verdicts=labels([dim]),
            )
            send(Stream.HUMAN_LABELS, label)
    entry = pipeline.joiner.state.get(turn_id)
    assert (
        sum(len(r["labels"]) for side in ("judge", "human") for r in entry[side].values())
        == MAX_LABELS_PER_TURN
    )
    assert len(entry["judge"]) == len(entry["human"]) == MAX_RATERS_PER_TURN
    return written, len(orjson.dumps({k: v for k, v in entry.items() if k != "out"})), largest


def test_a_turn_at_every_cap_fits_a_changelog_record_with_room_for_its_outputs() -> None:
    # the largest entries found, at 800 labels, 100 judges (16 scores each) and 100 annotators, all names 64
    # characters, a 256-character turn id and both texts kept: every label a failing quality one (a defect
    # each, 4 per rater), or the judges' labels custom ones of 64 characters (the annotators' observations
    # carry them all). Measured: 700,116 and 580,486 bytes written (639,398 and 423,629 without the batch's
    # outputs); the largest output a 112,703-byte observation. Before the cap, 2.36 MB.
    quality = sorted(QUALITY_DIMENSIONS)
    per_rater = MAX_LABELS_PER_TURN // (2 * MAX_RATERS_PER_TURN)
    failing = [quality[:per_rater]] * MAX_RATERS_PER_TURN
    custom = [_name("d", k) for k in range(MAX_DIMENSIONS_PER_RATER)]
    judged = MAX_LABELS_PER_TURN // MAX_RATERS_PER_TURN - 1
    for judges, humans in ((failing, failing), ([custom[:judged]] * 100, [custom[:1]] * 100)):
        written, entry, largest = _maximal_turn(judges, humans)
        assert written < 0.8 * MAX_WRITE_BYTES and entry < 0.75 * MAX_WRITE_BYTES
        assert largest < PACK_MAX_BYTES  # an observation fits a pack of its own, far below a record
