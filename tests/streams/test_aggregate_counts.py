"""``convowatch_aggregates{kind}``: the detector count, from the aggregate store itself."""

from __future__ import annotations

import itertools
from collections import Counter

from prometheus_client import CollectorRegistry

from streams.config import Settings
from streams.emit import SEP
from streams.generator import TrafficGenerator, to_records
from streams.metrics import Metrics
from streams.pipeline import Pipeline


def test_aggregate_counts_match_the_store_by_kind() -> None:
    metrics = Metrics(CollectorRegistry())
    pipeline = Pipeline(Settings(), metrics)
    records = to_records(TrafficGenerator(seed=5, rate=20.0).records(1800))
    for offset, record in enumerate(itertools.islice(records, 5000)):
        pipeline.process(record[2], record[3], source_topic="t", offset=offset)
    pipeline.aggregator.export_counts()

    expected = Counter(key.split(SEP, 1)[0] for key, _ in pipeline.aggregator.store.items())
    assert {"agreement", "spike", "traffic", "conversation"} <= set(expected)  # the views' own key prefixes
    value = metrics.registry.get_sample_value
    for kind, n in expected.items():
        assert value("convowatch_aggregates", {"kind": kind}) == n
    assert value("convowatch_aggregates", {"kind": "nonexistent"}) is None
