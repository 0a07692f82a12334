"""Observation packs: every observation arrives, in order, in records under the size limit."""

from __future__ import annotations

import random

import orjson
import pytest

from streams.observation_packs import PACK_MAX_BYTES, packs, unpack


def test_packs_keep_every_observation_in_order_under_the_limit() -> None:
    rng = random.Random(5)
    observations = [{"kind": "turn", "i": i, "pad": "x" * rng.randrange(0, 3000)} for i in range(2000)]
    encoded = [orjson.dumps(o) for o in observations]
    records = list(packs(encoded, max_bytes=20_000))
    assert len(records) > 1
    assert all(len(r) <= 20_000 for r in records)
    assert [o for r in records for o in unpack(r)] == observations
    # every pack but the last is full: one more observation would not have fitted
    sizes = [len(r) for r in records]
    firsts = [len(orjson.dumps(unpack(r)[0])) for r in records[1:]]
    assert all(size + first + 1 > 20_000 for size, first in zip(sizes, firsts, strict=False))


def test_an_oversized_observation_goes_alone() -> None:
    big = orjson.dumps({"kind": "turn", "pad": "y" * (PACK_MAX_BYTES + 10)})
    small = orjson.dumps({"kind": "turn"})
    records = list(packs([small, big, small]))
    assert [len(unpack(r)) for r in records] == [1, 1, 1]
    assert records[1] == b"[" + big + b"]"


def test_nothing_to_pack_writes_nothing() -> None:
    assert list(packs([])) == []


def test_a_single_observation_record_reads_as_a_pack_of_one() -> None:
    assert unpack(b'{"kind":"signal"}') == [{"kind": "signal"}]


@pytest.mark.parametrize("raw", [b"3", b'"text"', b"null"])
def test_anything_else_is_an_error(raw: bytes) -> None:
    with pytest.raises(ValueError, match="JSON array or object"):
        unpack(raw)


def test_a_pack_of_eviction_pairs_delivered_twice_is_counted_once() -> None:
    # a verdict and a human label whose chat turn never arrives: evicted, they still make a judge/human pair,
    # with no input record behind it (no source position); the aggregation stage replaying its pack after a
    # crash used to count it twice
    from prometheus_client import CollectorRegistry

    from schemas import Stream
    from streams.config import Settings
    from streams.metrics import Metrics
    from streams.observation_packs import positioned
    from streams.pipeline import Pipeline
    from tests.factories import human_label, judge_verdict, raw, verdict

    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(), Metrics(registry), batched=True)
    v = judge_verdict(turn_id="orphan", verdicts=[verdict("safety", "fail")])
    h = human_label(turn_id="orphan", verdicts=[verdict("safety", "pass")])
    pipeline.ingest(Stream.JUDGE_VERDICTS, raw(v), source_topic="verdicts", partition=0, offset=1)
    pipeline.ingest(Stream.HUMAN_LABELS, raw(h), source_topic="labels", partition=0, offset=1)
    pipeline.joiner.watermark = float("inf")
    evicted = [e for e in pipeline.joiner.evict() if e.topic == "observations" and e.value["kind"] == "pair"]
    assert evicted and all(e.value["src"][1] is None for e in evicted)
    [pack] = packs([orjson.dumps(e.value) for e in evicted])

    for _ in range(2):  # delivered, then delivered again
        for observation in positioned(unpack(pack), "observations:3", 57):
            pipeline.aggregate(observation, 3)
    pipeline.flush()

    judge = v["judge_id"]
    pairs = registry.get_sample_value(
        "convowatch_judge_agreement_pairs", {"judge_id": judge, "dimension": "safety"}
    )
    assert pairs == 1.0


def test_observations_that_each_fit_a_record_make_packs_that_fit_one() -> None:
    # the publisher drops an observation whose pack of one would not fit (MAX_WRITE_BYTES); the others,
    # however mixed, must never add up to a pack over it
    from streams.state import MAX_WRITE_BYTES

    rng = random.Random(7)
    sizes = [MAX_WRITE_BYTES - 2, PACK_MAX_BYTES - 2, PACK_MAX_BYTES + 1, 10, 5000, 100_000]
    encoded = [orjson.dumps({"p": "x" * (rng.choice(sizes) - len(b'{"p":""}'))}) for _ in range(300)]
    assert max(len(e) for e in encoded) == MAX_WRITE_BYTES - 2
    records = list(packs(encoded))
    assert max(len(r) for r in records) <= MAX_WRITE_BYTES
    assert sum(len(unpack(r)) for r in records) == 300
