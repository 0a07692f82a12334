"""Several humans on the same turns, end to end: consensus, Krippendorff's alpha, Fleiss' kappa, and each
annotator's, vendor's and judge's agreement with the consensus, against ``krippendorff`` and statsmodels;
with labels coming before the turn, and one at a time after it (an item counted again with each label)."""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Any

import krippendorff
import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa

from schemas import Stream
from streams.aggregate import Aggregator
from streams.join import TurnJoiner
from streams.metrics import Metrics
from streams.state import DictStore, encode_json
from streams.taxonomy import load_taxonomy
from streams.views.raters import RatersView
from tests.factories import verdict
from tests.streams.test_divergence_views import JUDGE, START, _label, _turn, _verdict, run, sample
from tests.streams.test_join import judged, labelled, turn

TAXONOMY = load_taxonomy()


ACCURACY = {"ann-1": 0.95, "ann-2": 0.9, "ann-3": 0.6, "ann-4": 0.85}
VENDOR_OF = {"ann-1": "vendor-a", "ann-2": "vendor-a", "ann-3": "vendor-b", "ann-4": "vendor-b"}


def _world(seed: int, sizes: list[int], n: int = 300) -> tuple[list[dict[str, str]], list[str]]:
    """Each turn's annotators' labels (as many as one of ``sizes``) and its judge's label."""
    rng = random.Random(seed)
    items: list[dict[str, str]] = []
    judge: list[str] = []
    for _ in range(n):
        truth = "fail" if rng.random() < 0.3 else "pass"
        raters = rng.sample(sorted(ACCURACY), rng.choice(sizes))
        items.append(
            {r: truth if rng.random() < ACCURACY[r] else rng.choice(["pass", "fail"]) for r in raters}
        )
        judge.append(truth if rng.random() < 0.8 else rng.choice(["pass", "fail"]))
    return items, judge


def _records(
    items: list[dict[str, str]], judge: list[str], labels_first: bool
) -> list[tuple[float, int, Stream, bytes]]:
    """A turn every 10 s with its verdict; its labels all before it (``labels_first``: the join sees every
    annotator at once), or one at a time after it, a minute apart (the turns' labels interleave)."""
    records: list[tuple[float, int, Stream, bytes]] = []
    for i, (labels, said) in enumerate(zip(items, judge, strict=True)):
        ts = START + 10.0 * i
        for k, (r, label) in enumerate(labels.items()):
            at = ts - 5 if labels_first else ts + 60.0 * (k + 1)
            records.append(
                (at, len(records), Stream.HUMAN_LABELS, _label(f"t{i}", at, label, r, VENDOR_OF[r]))
            )
        at = ts - 4 if labels_first else ts + 1
        records.append((at, len(records), Stream.JUDGE_VERDICTS, _verdict(f"t{i}", at, said)))
        records.append((ts, len(records), Stream.CHAT_TURNS, _turn(f"t{i}", ts)))
    return sorted(records)


def test_consensus_krippendorff_alpha_fleiss_kappa_and_rater_agreement():
    items, judge = _world(21, [2, 3, 3, 4])
    _, registry, report = run(_records(items, judge, labels_first=True))
    _check(items, judge, VENDOR_OF, registry, report)


def test_a_third_and_fourth_annotators_labels_after_the_turn_count_with_the_first_two():
    # the join published an item once it had two labels, and never again: three- and four-annotator turns
    # were scored on their first two labels (alpha 0.608 instead of 0.641 here)
    items, judge = _world(22, [2, 3, 3, 4])
    _, registry, report = run(_records(items, judge, labels_first=False))
    _check(items, judge, VENDOR_OF, registry, report)
    first_two = [dict(list(item.items())[:2]) for item in items]
    assert report["raters"][0]["krippendorff_alpha"] != pytest.approx(_alpha(first_two), abs=1e-3)


def test_two_annotator_turns_give_the_figures_they_gave_before():
    items, judge = _world(23, [2])
    _, registry, report = run(_records(items, judge, labels_first=False))
    _check(items, judge, VENDOR_OF, registry, report)
    # exactly what one item per turn, as published before items were published again, gave
    metrics = Metrics(CollectorRegistry())
    view = RatersView(metrics)
    aggregator = Aggregator(metrics, DictStore(), views=[view])
    for i, (labels, said) in enumerate(zip(items, judge, strict=True)):
        observation = {
            "kind": "raters",
            "src": ["human_labels", i, 0],
            "dimension": "safety",
            "labels": labels,
            "vendors": {r: VENDOR_OF[r] for r in labels},
            "judges": {JUDGE: said},
            "ts": START + 10.0 * i,
        }
        aggregator.apply(observation)
    assert report["raters"] == view.report(aggregator)["raters"]


def test_a_redelivered_item_and_its_replacements_count_once():
    joiner = TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()))
    events: list[Any] = [turn("t-1"), judged("t-1")]
    for k, (annotator, label) in enumerate([("a1", "pass"), ("a2", "fail"), ("a3", "fail"), ("a4", "pass")]):
        events.append(labelled("t-1", 3600 + k, [verdict("safety", label)], annotator_id=annotator))
    observations = []
    for offset, event in enumerate(events):
        for emit in joiner.handle(event, 0, ("labels:0", offset)):
            if emit.topic == "observations" and emit.value["kind"] == "raters":
                observations.append(emit.value)
    assert [len(o["labels"]) for o in observations] == [2, 3, 4]
    assert [len(o.get("replaces", {}).get("labels", {})) for o in observations] == [0, 2, 3]
    metrics = Metrics(CollectorRegistry())
    view = RatersView(metrics)
    aggregator = Aggregator(metrics, DictStore(), views=[view])
    for observation in observations:
        aggregator.apply(observation)
    once = view.report(aggregator)
    for observation in observations:  # redelivered after a crash: skipped, whatever order
        aggregator.apply(observation)
    assert aggregator.duplicates == 3 and view.report(aggregator) == once
    (row,) = once["raters"]
    assert (row["items"], row["raters_per_item"], row["ties"]) == (1, {"4": 1}, 1)
    assert row["krippendorff_alpha"] == pytest.approx(
        _alpha([{"a": "pass", "b": "fail", "c": "fail", "d": "pass"}])
    )


def _alpha(items: list[dict[str, str]]) -> float:
    """Krippendorff's alpha (nominal) of ``items`` by the ``krippendorff`` package."""
    raters = sorted({r for item in items for r in item})
    codes = {"pass": 0.0, "fail": 1.0}
    data = [[codes[item[r]] if r in item else np.nan for item in items] for r in raters]
    return float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))


def _check(
    items: list[dict[str, str]],
    judge: list[str],
    vendor_of: dict[str, str],
    registry: CollectorRegistry,
    report: dict[str, Any],
) -> None:
    """Every figure of the ``safety`` row against an offline computation from all the items' labels."""
    (row,) = report["raters"]
    assert row["dimension"] == "safety" and row["items"] == len(items)

    raters = sorted(vendor_of)
    data = [[item.get(r, np.nan) for item in items] for r in raters]
    codes = {"pass": 0.0, "fail": 1.0}
    numeric = [[codes.get(x, np.nan) if isinstance(x, str) else np.nan for x in line] for line in data]
    alpha = krippendorff.alpha(reliability_data=numeric, level_of_measurement="nominal")
    assert row["krippendorff_alpha"] == pytest.approx(alpha, abs=1e-9)
    assert sample(registry, "convowatch_raters_krippendorff_alpha", dimension="safety") == pytest.approx(
        alpha
    )

    by_count = Counter(len(item) for item in items)
    m = max(by_count, key=lambda c: (by_count[c], c))
    table = [[Counter(item.values())[c] for c in ("pass", "fail")] for item in items if len(item) == m]
    assert (row["fleiss_raters"], row["fleiss_items"]) == (m, len(table))
    assert row["fleiss_kappa"] == pytest.approx(fleiss_kappa(table), abs=1e-9)

    plurality = [Counter(item.values()).most_common() for item in items]
    ties = sum(len(c) == 2 and c[0][1] == c[1][1] for c in plurality)
    assert row["ties"] == ties == sample(registry, "convowatch_raters_consensus_ties", dimension="safety")
    assert row["folded_labels"] == 0
    consensus = [c[0][0] if not (len(c) == 2 and c[0][1] == c[1][1]) else None for c in plurality]
    assert row["consensus"] == dict(sorted(Counter(x for x in consensus if x).items()))

    # each annotator against the plurality of the *other* annotators of the item (ties not scored)
    scored: dict[str, list[bool]] = defaultdict(list)
    for item in items:
        for rater, label in item.items():
            others = Counter(v for r, v in item.items() if r != rater).most_common()
            if len(others) == 2 and others[0][1] == others[1][1]:
                continue
            scored[rater].append(label == others[0][0])
    annotators = {a["annotator_id"]: a for a in row["annotators"]}
    for rater, hits in scored.items():
        assert annotators[rater]["n"] == len(hits)
        assert annotators[rater]["agreement"] == pytest.approx(sum(hits) / len(hits))
        assert annotators[rater]["vendor_id"] == vendor_of[rater]
    vendors = {v["vendor_id"]: v for v in row["vendors"]}
    for vendor in ("vendor-a", "vendor-b"):
        hits = [h for r, hs in scored.items() if vendor_of[r] == vendor for h in hs]
        assert vendors[vendor]["n"] == len(hits)
        assert vendors[vendor]["agreement"] == pytest.approx(sum(hits) / len(hits))
        assert sample(
            registry, "convowatch_vendor_consensus_agreement_ratio", vendor_id=vendor, dimension="safety"
        ) == pytest.approx(vendors[vendor]["agreement"])
    # the judge against the consensus of all annotators, tied items left out
    kept = [(j, c) for j, c in zip(judge, consensus, strict=True) if c is not None]
    (judge_row,) = row["judges"]
    assert judge_row["n"] == len(kept)
    assert judge_row["cohen_kappa"] == pytest.approx(cohen_kappa_score(*zip(*kept, strict=True)), abs=1e-9)


def test_free_form_labels_keep_the_aggregate_small_and_are_counted_as_folded():
    # an "intent" dimension whose annotators type free text: each turn published at its second label, then
    # again with its third (the second version replacing the first). Unbounded, the aggregate grew ~170 B a
    # turn (345 KB after these 2,000; past a changelog record after ~5,000); now 4.5 KB, labels past the
    # first 32 counted as "other", agreement on the labels themselves
    metrics = Metrics(CollectorRegistry())
    view = RatersView(metrics)
    store = DictStore()
    aggregator = Aggregator(metrics, store, views=[view])
    for i in range(2_000):
        labels = {"a1": f"refund for order {i}", "a2": f"refund for order {i}", "b1": f"where is order {i}"}
        first = {"labels": dict(list(labels.items())[:2]), "vendors": {}, "judges": {}}
        for offset, version in enumerate((first, {**first, "labels": labels, "replaces": first})):
            observation = {"kind": "raters", "src": ["labels", 2 * i + offset, 0], "dimension": "intent"}
            aggregator.apply({**observation, **version, "ts": START + 10.0 * i})
    (row,) = view.report(aggregator)["raters"]
    assert (row["items"], row["raters_per_item"], row["ties"]) == (2_000, {"3": 2_000}, 0)
    kept_items = 16  # two labels each
    assert row["folded_labels"] == 3 * (2_000 - kept_items)
    assert row["consensus"]["other"] == 2_000 - kept_items and len(row["consensus"]) == kept_items + 1
    assert row["pairwise_agreement"] == pytest.approx(
        1 / 3
    )  # "refund ..." twice agrees, "where ..." does not
    annotators = {a["annotator_id"]: (a["n"], a["agreement"]) for a in row["annotators"]}
    assert annotators == {"a1": (0, None), "a2": (0, None), "b1": (2_000, 0.0)}
    (stored,) = [value for key, value in store.data.items() if key.startswith("raters")]
    assert len(encode_json(stored.encode())) < 40_000  # its changelog record


def test_dimensions_folded_by_the_metric_guard_set_no_other_series():
    # each folded dimension would overwrite the "other" series, the last refreshed winning (README, Metrics)
    registry = CollectorRegistry()
    metrics = Metrics(registry)  # room for 32 dimensions besides the quality ones
    view = RatersView(metrics, refresh_every=1)
    aggregator = Aggregator(metrics, DictStore(), views=[view])
    for i in range(40):
        aggregator.apply(
            {
                "kind": "raters",
                "src": ["labels", i, 0],
                "dimension": f"custom-{i}",
                "labels": {"a1": "pass", "a2": "fail"},
                "vendors": {"a1": "vendor-a", "a2": "vendor-a"},
                "judges": {},
                "ts": START + 10.0 * i,
            }
        )
    shown = {
        d: registry.get_sample_value("convowatch_raters_items", {"dimension": d})
        for d in [f"custom-{i}" for i in range(40)] + ["other"]
    }
    assert sum(value is not None for value in shown.values()) == 32
    assert shown["other"] is None
    assert (
        registry.get_sample_value(
            "convowatch_vendor_consensus_agreement_ratio", {"vendor_id": "vendor-a", "dimension": "other"}
        )
        is None
    )
    assert len(view.report(aggregator)["raters"]) == 40  # every dimension in report.json
