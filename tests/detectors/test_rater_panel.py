"""RaterPanel: vendor intervals over items, bounded state, items counted again with a later label."""

from __future__ import annotations

import json
import random
from collections import Counter, defaultdict
from typing import Any

import pytest
from statsmodels.stats.inter_rater import fleiss_kappa

from detectors.agreement_stats import AgreementStats
from detectors.exceptions import NotHeldError
from detectors.multi_rater import InterAnnotatorAgreement
from detectors.rater_panel import RaterPanel
from detectors.rater_vs_consensus import OTHER_RATERS, RaterVsConsensus


def _double_labelled(rng: random.Random, items: int, accuracy: float) -> RaterPanel:
    """Every item labelled by two annotators of vendor v1: their two comparisons move together."""
    panel = RaterPanel()
    for _ in range(items):
        truth = rng.choice(["pass", "fail"])
        pair = rng.sample(["a1", "a2", "a3", "a4"], 2)
        wrong = "fail" if truth == "pass" else "pass"
        labels = {a: truth if rng.random() < accuracy else wrong for a in pair}
        panel.update(labels, dict.fromkeys(pair, "v1"))
    return panel


def test_a_vendor_interval_covers_at_its_level_when_its_annotators_share_items() -> None:
    # counted as 200 independent comparisons, the 95% interval covered 0.835 of runs
    rng = random.Random(11)
    accuracy = 0.85
    truth = accuracy**2 + (1 - accuracy) ** 2
    runs = 400
    covered = 0
    for _ in range(runs):
        figures = _double_labelled(rng, 100, accuracy).per_vendor["v1"]
        low, high = figures["agreement_interval"]
        covered += low <= truth <= high
        assert figures["n"] == 200 and figures["items"] == 100
        assert figures["effective_n"] <= 200
    assert covered / runs >= 0.92


def test_annotator_and_vendor_ids_beyond_the_caps_are_pooled() -> None:
    panel = RaterPanel(max_annotators=10, max_vendors=3)
    for i in range(500):  # a tool minting an annotator and a vendor id per label
        panel.update({f"ann-{i}": "pass", f"ann-{i}-b": "fail"}, {f"ann-{i}": f"v-{i}", f"ann-{i}-b": "v-0"})
    assert len(panel.per_annotator) == 11 and OTHER_RATERS in panel.per_annotator
    assert len(panel.per_vendor) == 4 and OTHER_RATERS in panel.per_vendor
    assert sum(v["n"] for v in panel.per_vendor.values()) == 1000  # every comparison kept, some pooled
    assert len(json.dumps(panel.to_dict())) < 20_000


def test_state_from_before_vendor_items_restores() -> None:
    panel = RaterPanel().update({"a": "pass", "b": "pass"}, {"a": "v1", "b": "v1"})
    old = panel.to_dict()
    del old["state"]["_vendors"]
    restored = RaterPanel.from_dict(old)
    assert restored.per_vendor == {}
    restored.update({"a": "pass", "b": "fail"}, {"a": "v1", "b": "v1"})
    assert restored.per_vendor["v1"]["n"] == 2


def test_rater_vs_consensus_merge_respects_the_cap() -> None:
    one, two = RaterVsConsensus(max_raters=2), RaterVsConsensus(max_raters=2)
    one.update({"a": "x", "b": "x"})
    two.update({"c": "x", "d": "x"})
    assert one.merge(two).raters == ["a", "b", OTHER_RATERS]


# -- an item published again with a later annotator's label (streams/join_observations.py, raters) -------

ANNOTATORS = {"a1": "v1", "a2": "v1", "b1": "v2", "b2": "v2", "c1": "v3"}


def alpha_nominal(items: list[list[str]]) -> float:
    """Krippendorff's alpha for nominal data from its coincidence matrix (Krippendorff 2011, section C):
    ``o_ck`` sums, over the items, the ordered pairs of labels (c, k) of different raters over ``m_u - 1``;
    ``alpha = 1 - (n - 1) D_o / D_e`` with ``D_o = sum_{c != k} o_ck``, ``D_e = sum_{c != k} n_c n_k``."""
    o: dict[tuple[str, str], float] = defaultdict(float)
    for item in items:
        for i, c in enumerate(item):
            for j, k in enumerate(item):
                if i != j:
                    o[(c, k)] += 1.0 / (len(item) - 1)
    n_c: dict[str, float] = defaultdict(float)
    for (c, _), value in o.items():
        n_c[c] += value
    n = sum(n_c.values())
    observed = sum(value for (c, k), value in o.items() if c != k)
    expected = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k)
    return 1.0 - (n - 1) * observed / expected


def _versions(rng: random.Random, items: int) -> list[tuple[int, int, Any]]:
    """(time, item, version) of each version of each item as the join publishes them: its first two
    annotators' labels, then one more annotator's at a time, each with the judges known by then (a second
    judge may come between versions); the versions of different items interleave."""
    published = []
    for i in range(items):
        raters = rng.sample(sorted(ANNOTATORS), rng.choice([2, 2, 3, 3, 4, 5]))
        truth = rng.choice(["pass", "fail", "unsure"])
        labels = {r: truth if rng.random() < 0.7 else rng.choice(["pass", "fail", "unsure"]) for r in raters}
        judges = {"judge-a": truth if rng.random() < 0.8 else "fail", "judge-b": rng.choice(["pass", "fail"])}
        second_judge = rng.randrange(2, len(raters) + 2)  # the version judge-b first appears in
        t = rng.randrange(10_000)
        for k in range(2, len(raters) + 1):
            t += rng.randrange(1, 500)
            version = (
                {r: labels[r] for r in raters[:k]},
                {r: ANNOTATORS[r] for r in raters[:k]},
                {j: x for j, x in judges.items() if j == "judge-a" or k >= second_judge},
            )
            published.append((t, i, version))
    return sorted(published, key=lambda p: (p[0], p[1]))


def _replaced(stream: list[tuple[int, int, Any]]) -> tuple[RaterPanel, dict[int, Any]]:
    """A panel fed as the raters view feeds it (each version out with the next), and each item's last."""
    panel, last = RaterPanel(), {}
    for _, i, version in stream:
        if i in last:
            panel.remove(*last[i])
        panel.update(*version)
        last[i] = version
    return panel, last


@pytest.mark.parametrize("seed", range(4))
def test_an_item_counted_again_with_more_labels_counts_as_its_last_version_alone(seed: int) -> None:
    panel, last = _replaced(_versions(random.Random(seed), 300))
    offline = RaterPanel()
    for version in last.values():
        offline.update(*version)
    assert any(len(v[0]) > 2 for v in last.values())
    # every count, so every figure: alpha, kappa, consensus, ties, annotators, vendors and judges
    assert panel.to_dict() == offline.to_dict()
    assert json.loads(json.dumps(panel.to_dict())) == panel.to_dict()


def test_a_third_label_gives_the_alpha_kappa_and_consensus_of_all_three() -> None:
    first = ({"a1": "pass", "b1": "fail"}, {"a1": "v1", "b1": "v2"}, {"judge-a": "fail"})
    third = ({"a1": "pass", "b1": "fail", "c1": "fail"}, {"a1": "v1", "b1": "v2", "c1": "v3"}, first[2])
    others = [["pass", "pass", "pass"], ["fail", "fail", "pass"], ["pass", "pass", "fail"]]
    panel = RaterPanel()
    for k, labels in enumerate(others):
        panel.update({f"x{k}{i}": x for i, x in enumerate(labels)})
    panel.update(*first).remove(*first).update(*third)
    items = [*others, list(third[0].values())]
    reliability = panel.reliability()
    assert reliability.krippendorff_alpha == pytest.approx(alpha_nominal(items), abs=1e-12)
    assert reliability.krippendorff_alpha != pytest.approx(alpha_nominal([*others, ["pass", "fail"]]))
    table = [[Counter(item)[c] for c in ("pass", "fail")] for item in items]
    assert (reliability.fleiss_raters_used, reliability.fleiss_items) == (3, 4)
    assert reliability.fleiss_kappa == pytest.approx(fleiss_kappa(table), abs=1e-12)
    # a tie (pass against fail) before the third label; fail after it, which the judge agrees with
    assert (panel.n_items, panel.ties, panel.consensus_counts) == (4, 0, {"fail": 2, "pass": 2})
    assert panel.judge("judge-a").confusion == {"fail": {"fail": 1}}
    # each annotator once, against the other two: a1 (pass) vs fail, b1 and c1 (fail) vs a tie
    assert {a: (f["n"], f["ties"]) for a, f in panel.per_annotator.items() if a[0] != "x"} == {
        "a1": (1, 0),
        "b1": (0, 1),
        "c1": (0, 1),
    }
    assert panel.per_vendor["v1"]["agreement"] == 0.0 and panel.per_vendor["v2"]["n"] == 0


def test_what_a_panel_does_not_hold_is_not_removed() -> None:
    item = ({"a1": "pass", "b1": "fail"}, {"a1": "v1", "b1": "v2"}, {"judge-a": "pass"})
    panel = RaterPanel().update({"a1": "pass", "a2": "pass"}, {"a1": "v1", "a2": "v1"}, {"judge-a": "pass"})
    state = panel.to_dict()
    panel.remove(*item)  # never added: no count goes below zero, none moves
    assert panel.to_dict() == state
    iaa, rvc, stats = InterAnnotatorAgreement(), RaterVsConsensus(), AgreementStats()
    iaa.update(["pass", "pass"])
    rvc.update({"a1": "pass", "a2": "pass"})
    stats.update("pass", "pass")
    for detector, args in (
        (iaa, (["pass", "fail"],)),
        (rvc, ({"a1": "pass", "a2": "fail"},)),
        (stats, ("a", "b")),
    ):
        before = detector.to_dict()
        with pytest.raises(NotHeldError):
            detector.remove(*args)
        assert detector.to_dict() == before
    with pytest.raises(ValueError):
        panel.remove({"a1": "pass"})  # not an item: refused, not skipped


def test_a_panel_from_before_vendors_were_counted_by_item_replaces_what_it_holds() -> None:
    first = ({"a1": "pass", "b1": "fail"}, {"a1": "v1", "b1": "v2"}, {})
    third = ({"a1": "pass", "b1": "fail", "c1": "pass"}, {"a1": "v1", "b1": "v2", "c1": "v3"}, {})
    old = RaterPanel().update(*first).to_dict()
    del old["state"]["_vendors"]
    panel = RaterPanel.from_dict(old).remove(*first).update(*third)
    assert panel.to_dict() == RaterPanel().update(*third).to_dict()  # the vendors' counts start with it


@pytest.mark.parametrize(
    ("held", "gone"),
    [
        # another turn's item is held; the version replaced never reached this panel (a panel started again)
        (
            ({"x": "pass", "y": "pass"}, {"x": "v1", "y": "v1"}, {"J": "pass"}),
            ({"x": "pass", "w": "pass"}, {"x": "v1", "w": "v1"}, {"J": "pass"}),
        ),
        # the same with ties: another item's tie is not taken out for it
        (({"x": "pass", "y": "fail"}, {}, {}), ({"x": "pass", "w": "fail"}, {}, {})),
    ],
)
def test_a_version_the_panel_does_not_hold_is_taken_out_of_no_part(held, gone) -> None:
    # each part checks only that its counts are as large as the item's: some parts gave up the other item's
    # counts, others raised and kept theirs, and alpha, the consensus and the annotators then disagreed
    panel = RaterPanel().update(*held)
    before = panel.to_dict()
    assert panel.remove(*gone).to_dict() == before
