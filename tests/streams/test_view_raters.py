"""Several humans on the same turns, end to end: consensus, Krippendorff's alpha, Fleiss' kappa, and each
annotator's, vendor's and judge's agreement with the consensus, against ``krippendorff`` and statsmodels."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

import krippendorff
import numpy as np
import pytest
from sklearn.metrics import cohen_kappa_score
from statsmodels.stats.inter_rater import fleiss_kappa

from schemas import Stream
from tests.streams.test_divergence_views import START, _label, _turn, _verdict, run, sample


def test_consensus_krippendorff_alpha_fleiss_kappa_and_rater_agreement():
    rng = random.Random(21)
    accuracy = {"ann-1": 0.95, "ann-2": 0.9, "ann-3": 0.6, "ann-4": 0.85}
    vendor_of = {"ann-1": "vendor-a", "ann-2": "vendor-a", "ann-3": "vendor-b", "ann-4": "vendor-b"}
    items: list[dict[str, str]] = []
    judge: list[str] = []
    records: list[tuple[float, int, Stream, bytes]] = []
    for i in range(300):
        ts = START + 10.0 * i
        truth = "fail" if rng.random() < 0.3 else "pass"
        raters = rng.sample(sorted(accuracy), rng.choice([2, 3, 3, 4]))
        labels = {r: truth if rng.random() < accuracy[r] else rng.choice(["pass", "fail"]) for r in raters}
        items.append(labels)
        judge.append(truth if rng.random() < 0.8 else rng.choice(["pass", "fail"]))
        # labels and the verdict arrive before the turn, so the join sees every annotator at once
        for r, label in labels.items():
            records.append(
                (ts - 5, len(records), Stream.HUMAN_LABELS, _label(f"t{i}", ts - 5, label, r, vendor_of[r]))
            )
        records.append((ts - 4, len(records), Stream.JUDGE_VERDICTS, _verdict(f"t{i}", ts - 4, judge[-1])))
        records.append((ts, len(records), Stream.CHAT_TURNS, _turn(f"t{i}", ts)))
    _, registry, report = run(sorted(records))
    (row,) = report["raters"]
    assert row["dimension"] == "safety" and row["items"] == 300

    raters = sorted(accuracy)
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
