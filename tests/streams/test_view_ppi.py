"""DefectRateView's gauges: the human-calibrated defect rate of every dimension, however the judge sends
its dimensions."""

from __future__ import annotations

import random
from typing import Any

from prometheus_client import CollectorRegistry

from streams.aggregate import Aggregator
from streams.metrics import Metrics
from streams.state import DictStore
from streams.views.ppi import DefectRateView

DIMENSIONS = ("safety", "relevance", "bias")


def test_a_judge_prompted_per_dimension_has_every_dimension_s_gauge_follow_its_estimate() -> None:
    """The refresh (per judge and journey) exported the dimension of the observation that triggered it:
    with one record a dimension, always the same one, and the others' gauges were never set."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    view = DefectRateView(metrics)
    aggregator = Aggregator(metrics, DictStore(), views=[view])
    rng = random.Random(0)
    offset = 0

    def observe(value: dict[str, Any]) -> None:
        nonlocal offset
        offset += 1
        source = {"judge_id": "judge-a", "segment": {"journey": "shopper"}, "src": ["in:0", offset, 0]}
        aggregator.apply(value | source)

    rates = {"safety": 0.02, "relevance": 0.3, "bias": 0.3}
    for i in range(6_000):
        ts = 1_000_000.0 + 2.0 * i
        fails = {d: rng.random() < rates[d] for d in DIMENSIONS}
        for d in DIMENSIONS:  # one verdict record per dimension, in a fixed order
            observe(
                {
                    "kind": "judged",
                    "turn_id": f"t{i}",
                    "ts": ts,
                    "labels": {d: "fail" if fails[d] else "pass"},
                }
            )
        if i % 10 == 0:  # a human label on every tenth turn, agreeing with the judge
            for d in DIMENSIONS:
                label = "fail" if fails[d] else "pass"
                pair = {"kind": "pair", "turn_id": f"t{i}", "ts": ts, "dimension": d, "judge_label": label}
                observe(pair | {"human_label": label, "inclusion_probability": None, "confidence": None})
    estimates = {
        r["dimension"]: r["estimate"]
        for r in view.report(aggregator)["defect_rates"]
        if r["journey"] == "shopper"
    }
    for d in DIMENSIONS:
        gauge = registry.get_sample_value(
            "convowatch_calibrated_defect_rate_ratio",
            {"judge_id": "judge-a", "dimension": d, "journey": "shopper"},
        )
        assert gauge is not None and estimates[d] is not None, (d, gauge, estimates)
        assert abs(gauge - estimates[d]) < 0.01, (d, gauge, estimates[d])
