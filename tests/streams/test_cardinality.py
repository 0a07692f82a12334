"""Label cardinality stays bounded however many distinct segment values the traffic carries."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline


def _series(registry: CollectorRegistry) -> int:
    return sum(len(family.samples) for family in registry.collect())


def test_100k_distinct_segment_values_keep_series_bounded() -> None:
    registry = CollectorRegistry()
    pipeline = Pipeline(Settings(label_max_values=20), Metrics(registry), batched=True)
    rng = random.Random(4)
    start = datetime(2026, 11, 2, tzinfo=UTC)
    sizes = []
    for i in range(100_000):
        ts = (start + timedelta(seconds=i)).isoformat()
        value = f"{rng.getrandbits(64):016x}"  # a new value for every segment key, every turn
        turn = {
            "turn_id": f"t{i}",
            "conversation_id": f"c{i}",
            "ts": ts,
            "journey": f"j-{value}",
            "channel": "chat",
            "model_version": f"m-{value}",
            "intent": f"i-{value}",
        }
        verdict = {
            "turn_id": f"t{i}",
            "ts": ts,
            "judge_id": f"judge-{value}",
            "judge_version": "1",
            "verdicts": [{"dimension": "relevance", "label": "fail"}],
        }
        pipeline.process(Stream.CHAT_TURNS, orjson.dumps(turn), source_topic="c", offset=i)
        if i % 5 == 0:  # every fifth turn judged failing: defects carry the segment labels too
            pipeline.process(Stream.JUDGE_VERDICTS, orjson.dumps(verdict), source_topic="v", offset=i)
        if i in (10_000, 99_999):
            pipeline.flush()
            sizes.append(_series(registry))
    assert sizes[1] == sizes[0], f"series grew from {sizes[0]} to {sizes[1]} between 10k and 100k values"
    assert sizes[1] < 3_000
    journeys = {s.labels["journey"] for f in registry.collect() for s in f.samples if "journey" in s.labels}
    assert len(journeys) <= 20 + 3 and "other" in journeys  # 20 admitted, then "other" (+ "unknown", "*")
