"""The Kafka join's batch: many records of one turn in one batch publish part-way, so the turn's entry, which
keeps each record's outputs until they are published, still fits a changelog record."""

from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace
from typing import Any

from prometheus_client import CollectorRegistry

from schemas import Stream
from schemas.common import QUALITY_DIMENSIONS
from streams.app import KafkaTransport
from streams.config import Settings
from streams.metrics import Metrics
from streams.state import MAX_WRITE_BYTES
from tests.factories import chat_turn, human_label, judge_verdict, raw, verdict
from tests.streams.test_kafka_dead_letters import _record_sends


def test_many_records_of_one_turn_in_a_batch_are_published_part_way_and_the_entry_fits_a_record() -> None:
    # a honeypot failed on every quality dimension by 40 annotators, its labels in one batch: the entry kept
    # every record's outputs (each defect carrying the others' labels) until the batch's end, 1.1 MB, which
    # the table kept in memory only (convowatch_state_oversized_total): a restart lost the turn's labels
    registry = CollectorRegistry()
    transport = KafkaTransport(Settings(broker="127.0.0.1:1", text_redaction="keep"), Metrics(registry))
    sent = _record_sends(transport)
    topic = {stream: name for name, stream in transport.streams_by_topic.items()}
    failing = [verdict(d, "fail") for d in sorted(QUALITY_DIMENSIONS)]
    records = [
        (Stream.CHAT_TURNS, chat_turn(turn_id="t-h", user_text="u" * 2_000, response_text="r" * 2_000)),
        (Stream.JUDGE_VERDICTS, judge_verdict(turn_id="t-h", verdicts=failing)),
    ] + [
        (Stream.HUMAN_LABELS, human_label(turn_id="t-h", annotator_id=f"ann-{a:02d}", verdicts=failing))
        for a in range(40)
    ]
    events = [
        SimpleNamespace(
            message=SimpleNamespace(topic=topic[stream], partition=0, offset=offset, key=b"t-h"),
            value=raw(record),
        )
        for offset, (stream, record) in enumerate(records)
    ]
    join = transport.join_agent
    assert join is not None
    join._marks_written_at = time.monotonic()  # marks just written: the next are 0.25 s away
    asyncio.run(join.process(events))
    assert transport.pending is not None
    changelog = transport.pending.table.changelog_topic.get_topic_name()
    writes = [size for name, key, size in sent if name == changelog and key == b'"t-h"']
    assert len(writes) > 1 and max(writes) <= MAX_WRITE_BYTES  # written part-way, each time whole
    assert registry.get_sample_value("convowatch_state_oversized_total", {"table": "pending"}) == 0.0
    defects = registry.get_sample_value("convowatch_outputs_total", {"topic": "defects"})
    assert defects == 41 * len(QUALITY_DIMENSIONS)  # every defect published, once
    entry: Any = transport.pending.get("t-h")
    assert "out" not in entry  # the outputs are published: nothing kept
    # each publish part-way writes the published marks at once (not 0.25 s later): within one batch the join
    # knows which records an entry evicted and made anew took from the batch's state, which such a publish
    # writes out; the marks keep a replay from joining those records again
    assert transport.published is not None
    marks = transport.published.table.changelog_topic.get_topic_name()
    order = [name for name, key, _ in sent if name in (marks, changelog)]
    first_mark = order.index(marks)
    assert changelog in order[first_mark:] and first_mark > 0


def test_a_record_read_again_below_the_published_marks_still_moves_the_watermark() -> None:
    # skipped without it, an entry the first run evicted after it came back on the replay, was not evicted
    # again, and a later record joined it and paired again (a review found it: 1 run in 1,000)
    from streams.join import TurnJoiner
    from streams.taxonomy import load_taxonomy
    from tests.streams.test_join import turn

    joiner = TurnJoiner(load_taxonomy(), Metrics(CollectorRegistry()), keep_outputs=True, autoflush=False)
    joiner.rebalanced({"turns:0": 10})  # recovered: records of turns:0 through offset 10 are published
    assert joiner.handle(turn("t-1", seconds=7200), 0, ("turns:0", 9)) == []
    assert joiner.watermark == turn("t-1", seconds=7200).ts.timestamp()
