"""Gauges per judge or vendor set no series for the ones the metric label guard folds into ``other``:
each would set the one ``other`` series, the last one winning. Their figures stay in report.json."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.aggregate import Aggregator
from streams.metrics import Metrics
from streams.state import DictStore
from streams.views.agreement import AgreementView
from streams.views.calibration import CalibrationView
from streams.views.gold import GoldView
from streams.views.ppi import DefectRateView


def test_vendors_folded_into_other_set_no_gauge_and_keep_their_own_rows() -> None:
    """Every folded vendor wrote the one ``other`` series, the last one winning: it read 1.0 after one
    vendor's 50 right answers, 0.0 after another's single wrong one."""
    registry = CollectorRegistry()
    metrics = Metrics(registry, label_max_values=2)
    view = GoldView(metrics, {"gold-1": {"safety": "fail"}})
    aggregator = Aggregator(metrics, DictStore(), views=[view])
    offset = 0

    def label(vendor: str, answer: str) -> None:
        nonlocal offset
        offset += 1
        aggregator.apply(
            {
                "kind": "gold_label",
                "turn_id": "gold-1",
                "ts": 1.0,
                "label_ts": 2.0,
                "annotator_id": f"a-{vendor}-{offset}",
                "vendor_id": vendor,
                "labels": {"safety": answer},
                "src": ["labels:0", offset, 0],
            }
        )

    def gauge(vendor: str) -> float | None:
        labels = {"vendor_id": vendor, "dimension": "*"}
        return registry.get_sample_value("convowatch_vendor_gold_accuracy_ratio", labels)

    label("v1", "fail")
    label("v2", "pass")
    for _ in range(5):
        label("good-vendor", "fail")
    label("bad-vendor", "pass")
    assert (gauge("v1"), gauge("v2")) == (1.0, 0.0)
    assert gauge("other") is None
    rows = {
        r["vendor_id"]: r["accuracy"]
        for r in view.report(aggregator)["gold"]["vendors"]
        if r["dimension"] == "*"
    }
    assert rows == {"v1": 1.0, "v2": 0.0, "good-vendor": 1.0, "bad-vendor": 0.0}


def test_judges_folded_into_other_set_no_agreement_calibration_or_calibrated_rate_gauge() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, label_max_values=1)
    views = [
        AgreementView(metrics, refresh_every=1),
        CalibrationView(metrics, 1, 0.0),
        DefectRateView(metrics, 1, 0.0),
    ]
    aggregator = Aggregator(metrics, DictStore(), views=views)
    for i in range(40):
        for judge in ("judge-a", "judge-b"):  # judge-b: past the guard's one value
            label = "fail" if i % 4 == 0 else "pass"
            aggregator.apply(
                {
                    "kind": "pair",
                    "turn_id": f"t{i}",
                    "judge_id": judge,
                    "dimension": "safety",
                    "judge_label": label,
                    "human_label": "fail" if i % 5 == 0 else "pass",
                    "inclusion_probability": None,
                    "confidence": 0.8,
                    "segment": {"journey": "shopper"},
                    "ts": 1_000_000.0 + i,
                    "src": [f"{judge}:0", i, 0],
                }
            )
    judges = {
        sample.labels["judge_id"]
        for family in registry.collect()
        if family.name.startswith(("convowatch_judge_", "convowatch_calibrated_"))
        for sample in family.samples
        if "judge_id" in sample.labels
    }
    assert judges == {"judge-a"}
    rows = views[0].report(aggregator)["agreement"]
    assert {row["judge_id"] for row in rows} == {"judge-a", "judge-b"}
