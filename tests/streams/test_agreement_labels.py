"""A custom dimension takes any label (1-64 characters): free-form labels must not grow the agreement
aggregates past what one changelog record holds (``MAX_WRITE_BYTES``), nor make each flush re-encode
megabytes. Each distinct pair of labels added about 1 KB to each of them; 6,000 turns made
``agreement_detail`` 6.2 MB and ``agreement_vendor`` 1.6 MB."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from streams.aggregate import Aggregator, _encode
from streams.metrics import Metrics
from streams.state import DictStore
from streams.views.agreement import AgreementView


def _label(i: int, who: str) -> str:
    return f"{i:06d}-{who}-" + "x" * 55  # 64 characters, unlike any other


def test_distinct_labels_of_a_custom_dimension_keep_every_agreement_aggregate_small() -> None:
    metrics = Metrics(CollectorRegistry())
    view = AgreementView(metrics)
    aggregator = Aggregator(metrics, DictStore(), views=[view])
    for i in range(2_000):
        ts = 1_800_000_000.0 + 10 * i
        segment = {"journey": "shopper", "intent": f"intent-{i % 80}", "channel": "chat"}
        judge, human = _label(i, "judge"), _label(i, "human")
        common = {"turn_id": f"t{i}", "ts": ts, "segment": segment}
        aggregator.apply(
            common
            | {
                "kind": "pair",
                "judge_id": "judge-a",
                "dimension": "topic",
                "judge_label": judge,
                "human_label": human,
                "inclusion_probability": None,
                "confidence": 0.8,
                "src": ["judge-a:0", i, 0],
            }
        )
        aggregator.apply(
            common
            | {
                "kind": "labelled",
                "label_ts": ts + 60,
                "annotator_id": f"ann-{i % 3}",
                "vendor_id": f"vendor-{i % 60}",
                "is_gold": False,
                "labels": {"topic": human},
                "judges": {"judge-a": {"topic": judge}},
                "src": ["labels:0", i, 0],
            }
        )
    aggregator.flush()
    sizes = {k.split("\x1f")[0]: len(_encode(v)) for k, v in aggregator.store.items()}
    # unbounded: 2.1 MB, 0.59 MB and 0.29 MB; now 24 KB, 10 KB and 2.5 KB (32 labels at most, the
    # segments of an aggregate on its overall table's scale)
    assert sizes["agreement_detail"] < 50_000
    assert sizes["agreement_vendor"] < 20_000
    assert sizes["agreement"] < 5_000
    row = view.rows(aggregator)[0]
    assert row["n"] == 2_000 and row["percent_agreement"] == 0.0
    assert row["confusion"]["other"] == {"other (differs)": 2_000 - 16}
