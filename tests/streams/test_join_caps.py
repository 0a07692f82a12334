"""A turn's labels are capped so that its join entry, and everything built from it, fits a Kafka record."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas import Stream
from schemas.common import QUALITY_DIMENSIONS
from streams.config import Settings
from streams.emit import Emit
from streams.join_caps import (
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


def test_a_dimension_given_twice_in_a_record_counts_by_the_label_the_join_keeps() -> None:
    # the join keeps a dimension's first label; the byte count took its last, so a long first label behind a
    # short repeat passed the limit
    pipeline, _ = _pipeline()
    escaped = "\x01" * 64
    dims = [f"style_{i}" for i in range(MAX_DIMENSIONS_PER_RATER)]
    per_judge = len(orjson.dumps({d: escaped for d in dims}))
    fit = MAX_LABEL_BYTES_PER_TURN // per_judge
    for j in range(fit):
        record = raw(
            judge_verdict(turn_id="t", judge_id=f"j{j}", verdicts=[verdict(d, escaped) for d in dims])
        )
        assert _dead(pipeline.process(Stream.JUDGE_VERDICTS, record, source_topic="in", offset=j)) == []
    room = MAX_LABEL_BYTES_PER_TURN - fit * per_judge
    long_ones = [f"extra_{k}" for k in range(room // len(orjson.dumps({"extra_0": escaped})) + 1)]
    twice = [verdict(d, escaped) for d in long_ones] + [verdict(d, "ok") for d in long_ones]
    record = raw(judge_verdict(turn_id="t", judge_id="j-last", verdicts=twice))
    assert _dead(pipeline.process(Stream.JUDGE_VERDICTS, record, source_topic="in", offset=fit)) == [
        "too_many_labels"
    ]


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


def _name(prefix: str, n: int, fill: str = "x") -> str:
    """A judge, annotator, vendor, dimension or score name of the longest kind (64 characters)."""
    return f"{prefix}{n:04d}".ljust(64, fill)


def _maximal_turn(
    judge_labels: list[list[str]], human_labels: list[list[str]], turn_id: str = "t" * 256, fill: str = "x"
) -> tuple[int, int, int]:
    """Feed one turn at every per-turn cap (each record its own batch, on the Kafka transport's join, which
    keeps a batch's outputs in the entry): the largest entry written, that entry without its kept outputs at
    the end, and the largest output or observation."""
    settings = Settings(text_redaction="keep")
    pipeline = Pipeline(settings, metrics=Metrics(CollectorRegistry()), batched=True, keep_outputs=True)
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
        judge = judge_verdict(
            turn_id=turn_id,
            judge_id=_name("j", j, fill),
            judge_version=_name("v", j, fill),  # kept on the judge's record, carried by each of its pairs
            verdicts=labels(dims),
            scores=scores,
        )
        send(Stream.JUDGE_VERDICTS, judge)
    for a, dims in enumerate(human_labels):
        for dim in dims:  # one record per dimension: the entry keeps when each later one was labelled
            label = human_label(
                turn_id=turn_id,
                annotator_id=_name("h", a, fill),
                vendor_id=_name("w", a, fill),
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


_QUALITY = sorted(QUALITY_DIMENSIONS)
_PER_RATER = MAX_LABELS_PER_TURN // (2 * MAX_RATERS_PER_TURN)
_FAILING = [_QUALITY[:_PER_RATER]] * MAX_RATERS_PER_TURN
_CUSTOM = [_name("d", k) for k in range(MAX_LABELS_PER_TURN // MAX_RATERS_PER_TURN - 1)]


@pytest.mark.parametrize(
    ("judges", "humans"),
    [(_FAILING, _FAILING), ([_CUSTOM] * MAX_RATERS_PER_TURN, [_CUSTOM[:1]] * MAX_RATERS_PER_TURN)],
    ids=["failing", "custom"],
)
def test_a_turn_at_every_cap_fits_a_changelog_record_with_room_for_its_outputs(
    judges: list[list[str]], humans: list[list[str]]
) -> None:
    # at 800 labels, 100 judges (16 scores each) and 100 annotators, all names 64 characters (filled with "/",
    # tripled in output ids), a turn id of 256 control characters (1,536 bytes of JSON) and both texts kept:
    # every label a failing quality one (a defect each, 4 per rater), or the judges' custom ones of 64
    # characters (each annotator's observation carries them all, and makes a pair with each judge), judge
    # versions of 64 characters. Measured: 529,906 and 724,260 bytes written with one record's outputs
    # (385,758 and 430,789 without); the largest output 114,027 bytes. With the versions of 2 characters
    # (before the join kept them, 514,506 and 708,860). Before the caps, 2.36 MB; before defect digests,
    # 1.82 MB for the first.
    turn_id, fill = "\x01" * 256, "/"
    written, entry, largest = _maximal_turn(judges, humans, turn_id, fill)
    assert written < 0.85 * MAX_WRITE_BYTES and entry < 0.6 * MAX_WRITE_BYTES
    assert largest < PACK_MAX_BYTES  # an observation fits a pack of its own, far below a record


def test_an_entry_marks_its_defects_by_a_digest_and_knows_the_whole_ids_of_older_entries() -> None:
    # the ids hold the turn id: 800 of them made a turn's entry up to 1.8 MB
    from streams.emit import output_id
    from streams.join_outputs import defect_mark

    pipeline, _ = _pipeline()
    pipeline.process(Stream.CHAT_TURNS, raw(chat_turn(turn_id="t/1")), source_topic="in", offset=1)
    failing = judge_verdict(turn_id="t/1", verdicts=[verdict("relevance", "fail")])
    [defect] = [
        e
        for e in pipeline.process(Stream.JUDGE_VERDICTS, raw(failing), source_topic="in", offset=2)
        if e.topic == "defects"
    ]
    assert defect.key == output_id("irrelevant", "t/1", "relevance", "judge", "judge-a")
    entry = pipeline.joiner.state.get("t/1")
    assert entry["defects"] == [defect_mark(defect.key)] and len(defect_mark(defect.key)) == 24
    # an entry written before the digests: its whole ids
    entry["defects"] = [defect.key]
    pipeline.joiner.state.replace("t/1", entry)
    label = human_label(turn_id="t/1", verdicts=[verdict("safety", "pass")])
    emits = pipeline.process(Stream.HUMAN_LABELS, raw(label), source_topic="in", offset=3)
    assert [e for e in emits if e.topic.startswith("defects")] == []
