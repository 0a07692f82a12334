"""The multi-rater panel keeps at most ``max_categories`` labels: annotators' labels of a custom dimension are
free-form, and each new one grew Krippendorff's totals, the consensus counts and every annotator's and
vendor's table of one ``raters/<dimension>`` aggregate, without bound. Later labels count as ``other``; two
different ones never agree; an item taken out again gives back exactly what it added."""

from __future__ import annotations

import json
import random
import warnings
from collections import Counter
from collections.abc import Callable
from typing import Any

import krippendorff
import numpy as np
import pytest
from statsmodels.stats.inter_rater import fleiss_kappa

from detectors.agreement_stats import MAX_CATEGORIES, OTHER, OTHER_DIFFERS
from detectors.multi_rater import InterAnnotatorAgreement
from detectors.rater_panel import RaterPanel
from detectors.rater_vs_consensus import RaterVsConsensus

Item = tuple[dict[str, str], dict[str, str], dict[str, str]]


def _distinct(i: int, who: str) -> str:
    return f"{i:06d}-{who}-" + "x" * (56 - len(who))  # 64 characters, unlike any other


def _size(panel: RaterPanel) -> int:
    return len(json.dumps(panel.to_dict()))


def _leave_one_out_hits(items: list[dict[str, str]]) -> dict[str, list[bool]]:
    """Each annotator's labels against the plurality of the item's other labels (ties not scored)."""
    hits: dict[str, list[bool]] = {}
    for item in items:
        for rater, label in item.items():
            others = Counter(x for r, x in item.items() if r != rater).most_common()
            if len(others) > 1 and others[0][1] == others[1][1]:
                continue
            hits.setdefault(rater, []).append(label == others[0][0])
    return hits


def _assert_leave_one_out(panel: Any, items: list[dict[str, str]], vendor_of: Callable[[str], str]) -> None:
    """``panel``'s per-annotator and per-vendor agreement with the others' consensus are the hand counts of
    :func:`_leave_one_out_hits` over ``items`` (``vendor_of``: an annotator's vendor)."""
    hits = _leave_one_out_hits(items)
    for annotator, figures in panel.per_annotator.items():
        assert (figures["n"], figures["agreement"]) == (
            len(hits[annotator]),
            sum(hits[annotator]) / figures["n"],
        )
    for vendor, figures in panel.per_vendor.items():
        vendor_hits = [h for a, hs in hits.items() if vendor_of(a) == vendor for h in hs]
        assert (figures["n"], figures["agreement"]) == (len(vendor_hits), sum(vendor_hits) / figures["n"])


def _first_labels(items: list[Item], n: int) -> list[str]:
    """The first ``n`` distinct labels of ``items``, each item's annotators' then judges'."""
    seen: dict[str, None] = {}
    for labels, _, judges in items:
        seen.update(dict.fromkeys([*labels.values(), *judges.values()]))
    return sorted(list(seen)[:n])


def test_ten_thousand_items_of_distinct_labels_keep_a_rater_panel_small_and_its_figures_exact() -> None:
    rng = random.Random(4)
    annotators = [f"annotator-{k:03d}" for k in range(200)]
    panel = RaterPanel()
    items = []
    for i in range(10_000):  # three of four annotators agree on the item's own label; the judge every other
        four = rng.sample(annotators, 4)
        labels = {a: _distinct(i, "agreed") for a in four[:3]} | {four[3]: _distinct(i, "odd")}
        vendors = {a: f"vendor-{int(a[-3:]) % 20:02d}" for a in four}
        panel.update(labels, vendors, {"judge-a": _distinct(i, "agreed" if i % 2 else "judge")})
        items.append(labels)
    first = 13  # the items whose labels fill the 32 kept: 2 labels each, and the judge's on even ones
    # 51 KB; 13.2 MB unbounded (the code before the cap). Labels no longer grow it: 4.1 KB of reliability
    # counts (2.2 KB of them the kept labels, which the annotators' counts hold too), 0.9 KB of consensus
    # counts, 1.9 KB for the judge, and the cells of the 32 labels of the first 13 items in their
    # annotators' and vendors' tables; the rest grows with the annotators (about 90 B each in their
    # tables and 30 B for their vendor: 39 KB with 100 annotators, 75 KB with 400; at most max_annotators)
    assert _size(panel) < 60_000
    kept = panel.reliability().kept_labels
    judged = [
        (labels, {}, {"J": _distinct(i, "agreed" if i % 2 else "judge")}) for i, labels in enumerate(items)
    ]
    assert kept == _first_labels(judged, MAX_CATEGORIES) and _distinct(first - 1, "odd") in kept
    assert _distinct(first, "agreed") not in kept and len(kept) == MAX_CATEGORIES
    assert panel.folded_labels == 4 * (10_000 - first)
    assert panel.n_items == 10_000 and panel.ties == 0
    assert panel.consensus_counts == {
        **{_distinct(i, "agreed"): 1 for i in range(first)},
        OTHER: 10_000 - first,
    }
    # agreement on the labels themselves: 6 of the 12 ordered pairs of each item, and each annotator's and
    # vendor's agreement with the others' consensus that of the labels (the odd label, folded as its
    # consensus is, does not agree with it)
    assert panel.reliability().pairwise_agreement == 0.5
    _assert_leave_one_out(panel, items, lambda a: f"vendor-{int(a[-3:]) % 20:02d}")
    tables = panel.to_dict()["state"]["_raters"]["_raters"]
    assert {label for t in tables.values() for row in t["confusion"].values() for label in row} <= {
        *kept,
        OTHER,
        OTHER_DIFFERS,
    }
    assert panel.judge("judge-a").n == 10_000 and panel.judge("judge-a").percent_agreement == 0.5


def test_two_different_folded_labels_do_not_agree_and_two_equal_ones_do() -> None:
    panel = RaterPanel(max_categories=2)
    panel.update({"a": "pass", "b": "fail"})
    for i in range(50):
        panel.update({"a": f"free text {i}", "b": f"another text {i}"}, None, {"judge-a": "pass"})
    for i in range(30):
        typo = f"typo {i}"
        panel.update({"a": typo, "b": typo, "c": typo, "d": "pass"}, None, {"judge-a": typo})
    reliability = panel.reliability()
    assert reliability.kept_labels == ["fail", "pass"] and reliability.counted_as("typo 3") == OTHER
    # 60 agreeing of 222 (each item's pairs over m - 1); 160 if the free texts' "other" agreed
    assert reliability.pairwise_agreement == 60 / 222
    assert panel.ties == 51 and panel.consensus_counts == {OTHER: 30}
    assert panel.folded_labels == 100 + 90
    a, c, d = (panel.per_annotator[x] for x in "acd")
    assert (a["n"], a["agreement"], a["ties"]) == (81, 30 / 81, 0)
    assert (c["n"], c["agreement"], d["n"], d["agreement"]) == (30, 1.0, 30, 0.0)
    tables = panel.to_dict()["state"]["_raters"]["_raters"]
    assert tables["a"]["confusion"] == {"pass": {"fail": 1}, OTHER: {OTHER_DIFFERS: 50, OTHER: 30}}
    assert tables["d"]["confusion"] == {"pass": {OTHER: 30}}
    assert panel.per_vendor["unknown"]["agreement"] == 90 / 222
    assert panel.judge("judge-a").percent_agreement == 1.0  # its "typo i" equals the consensus, as labels
    assert panel.judge("judge-a").confusion == {OTHER: {OTHER: 30}}


@pytest.mark.parametrize("seed", range(5))
def test_alpha_and_kappa_are_lower_bounds_and_the_pairwise_agreement_exact(seed: int) -> None:
    """Against the ``krippendorff`` package and statsmodels on the labels themselves (none folded)."""
    rng = random.Random(seed)
    vocabulary = [f"label-{k}" for k in range(12)]
    items = []
    for _ in range(300):
        truth = rng.choice(vocabulary[: rng.choice([3, 12])])
        m = rng.choice([3, 3, 4])
        items.append([truth if rng.random() < 0.7 else rng.choice(vocabulary) for _ in range(m)])
    folded = InterAnnotatorAgreement(max_categories=4)
    wide = InterAnnotatorAgreement(max_categories=100)
    for item in items:
        folded.update(item)
        wide.update(item)
    codes = {label: k for k, label in enumerate(vocabulary)}
    data = np.full((4, len(items)), np.nan)
    for u, item in enumerate(items):
        for r, label in enumerate(item):
            data[r, u] = codes[label]
    alpha = float(krippendorff.alpha(reliability_data=data, level_of_measurement="nominal"))
    three = [[item.count(label) for label in vocabulary] for item in items if len(item) == 3]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        kappa = float(fleiss_kappa(np.array(three)))
    assert folded.folded_labels > 100
    assert wide.krippendorff_alpha == pytest.approx(alpha, abs=1e-9)
    assert wide.fleiss_kappa == pytest.approx(kappa, abs=1e-9)
    assert folded.krippendorff_alpha < alpha and folded.fleiss_kappa < kappa
    assert folded.pairwise_agreement == pytest.approx(wide.pairwise_agreement, abs=1e-12)


def _traffic(rng: random.Random, n: int, labels: list[str]) -> list[Item]:
    items = []
    for _ in range(n):
        truth = rng.choice(labels)
        raters = rng.sample(["a1", "a2", "b1", "b2", "c1"], rng.choice([2, 3, 4]))
        ratings = {r: truth if rng.random() < 0.8 else rng.choice(labels) for r in raters}
        items.append((ratings, {r: f"vendor-{r[0]}" for r in raters}, {"judge-a": truth}))
    return items


def _figures(panel: RaterPanel) -> dict[str, Any]:
    reliability = panel.reliability()
    return {
        "reliability": reliability.summary(),
        "consensus": panel.consensus_counts,
        "ties": panel.ties,
        "annotators": panel.per_annotator,
        "vendors": panel.per_vendor,
        "judges": {j: panel.judge(j).summary() for j in panel.judges},
    }


@pytest.mark.parametrize(
    "labels", [["pass", "fail"], ["pass", "fail", "other"], [f"i{k}" for k in range(32)]]
)
def test_labels_within_the_cap_count_as_they_did(labels: list[str]) -> None:
    """Pass/fail traffic, a label ``other`` of the users' own, and 32 labels: every figure and count as
    without a cap (and as the doctests, whose outputs did not change)."""
    capped, wide = RaterPanel(), RaterPanel(max_categories=10_000)
    for item in _traffic(random.Random(8), 2_000, labels):
        capped.update(*item)
        wide.update(*item)
    assert capped.folded_labels == 0 and capped.reliability().kept_labels == sorted(set(labels) - {OTHER})
    assert json.dumps(_figures(capped)) == json.dumps(_figures(wide))
    assert capped.to_dict()["state"] == wide.to_dict()["state"]
    if OTHER in labels:
        assert capped.consensus_counts[OTHER] > 0 and capped.reliability().counted_as(OTHER) == OTHER


def test_an_item_taken_out_gives_back_what_it_added_though_the_cap_filled_meanwhile() -> None:
    panel = RaterPanel(max_categories=4)
    panel.update({"a1": "pass", "b1": "fail"}, {"a1": "v1", "b1": "v2"})
    kept = ({"a1": "late", "b1": "late", "c1": "pass"}, {"a1": "v1", "b1": "v2", "c1": "v3"}, {"J": "late"})
    panel.update(*kept)  # "late" kept: the third label
    for i in range(20):  # the fourth label, then labels that fold
        panel.update({"a1": f"x{i}", "b1": f"x{i}", "c1": f"y{i}"}, {"c1": "v3"}, {"J": f"x{i}"})
    folded = ({"a1": "free", "b1": "form", "c1": OTHER}, {}, {"J": "pass"})
    before = panel.to_dict()
    # out, a new label, and in again: "late" keeps its name (a cap counting the labels its tables hold
    # would have had room for "new" once "late" left, and counted "late" as other after)
    panel.remove(*kept)
    assert panel.reliability().counted_as("late") == "late" and "late" not in panel.consensus_counts
    new = ({"a1": "new", "b1": "new"}, {}, {"J": "new"})
    panel.update(*new).update(*kept).remove(*new)
    assert panel.to_dict() == before
    assert panel.update(*folded).remove(*folded).to_dict() == before
    again = RaterPanel.from_dict(json.loads(json.dumps(panel.to_dict())))
    assert again.remove(*kept).update(*kept).to_dict() == before


def test_items_replaced_with_free_form_labels_count_once_with_their_last_labels() -> None:
    """The raters view's traffic: each item again with one more annotator's label, the last version out."""
    rng = random.Random(6)
    panel, last = RaterPanel(max_categories=6), {}
    versions = []
    for i in range(400):
        raters = rng.sample(["a1", "a2", "b1", "b2", "c1"], rng.choice([2, 3, 4, 5]))
        truth = rng.choice(["pass", "fail", f"free-{i}"])
        labels = {r: truth if rng.random() < 0.7 else rng.choice(["pass", f"typo-{i % 9}"]) for r in raters}
        for k in range(2, len(raters) + 1):
            versions.append((rng.random() + i / 50, i, {r: labels[r] for r in raters[:k]}))
    for _, i, labels in sorted(versions):
        if i in last:
            panel.remove(*last[i])
        last[i] = (labels, {r: f"vendor-{r[0]}" for r in labels}, {"J": "pass"})
        panel.update(*last[i])
    items = [labels for labels, _, _ in last.values()]
    assert panel.n_items == 400 and panel.folded_labels > 300
    assert sum(panel.consensus_counts.values()) + panel.ties == 400
    assert sum(panel.reliability().raters_per_item.values()) == 400
    _assert_leave_one_out(panel, items, lambda a: f"vendor-{a[0]}")
    for version in last.values():  # every part gives each item back: nothing is left
        panel.remove(*version)
    assert (panel.n_items, panel.ties, panel.consensus_counts, panel.folded_labels) == (0, 0, {}, 0)
    assert all(
        not f["n"] and not f["ties"] for f in [*panel.per_annotator.values(), *panel.per_vendor.values()]
    )


def _old(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a panel's to_dict) as written before labels were capped."""
    old = json.loads(json.dumps(data))
    del old["params"]["max_categories"]
    for part in ("_agreement", "_raters"):
        del old["state"][part]["_kept_labels"]
    del old["state"]["_agreement"]["_folded_labels"]
    return old


def test_state_from_before_the_cap_restores_as_it_was() -> None:
    panel = RaterPanel()
    items = _traffic(random.Random(2), 300, ["pass", "fail", "unsure"])
    for item in items:
        panel.update(*item)
    restored = RaterPanel.from_dict(_old(panel.to_dict()))
    assert restored.to_dict() == panel.to_dict()
    for item in items:
        restored.remove(*item)
    assert restored.n_items == 0 and restored.consensus_counts == {}


def test_state_from_before_the_cap_with_free_form_labels_folds_them_on_one_scale() -> None:
    """Its most used labels are kept, the others folded, in every part alike: each old item can still be
    taken out, and a 900 KB aggregate shrinks back."""
    rng = random.Random(3)
    uncapped = RaterPanel(max_categories=10_000)  # counts as the code before the cap did
    items: list[Item] = []
    for i in range(3_000):
        free = _distinct(i, "free")
        ratings = {
            "a1": "pass",
            "a2": rng.choice(["pass", "fail"]),
            "b1": rng.choice(["pass", free]),
            "b2": free,
        }
        items.append((ratings, {"a1": "v1", "a2": "v1", "b1": "v2", "b2": "v2"}, {"J": "pass"}))
        uncapped.update(*items[-1])
    old = _old(uncapped.to_dict())
    restored = RaterPanel.from_dict(old)
    assert len(json.dumps(old)) > 900_000 and _size(restored) < 25_000
    kept = restored.reliability().kept_labels
    assert len(kept) == MAX_CATEGORIES and {"pass", "fail"} <= set(kept)
    assert restored.folded_labels == sum(x not in kept for r, _, _ in items for x in r.values())
    assert restored.reliability().pairwise_agreement == uncapped.reliability().pairwise_agreement
    for annotator in ("a1", "a2", "b1", "b2"):
        assert (
            restored.per_annotator[annotator]["agreement"] == uncapped.per_annotator[annotator]["agreement"]
        )
    assert restored.to_dict()["state"]["_raters"]["_kept_labels"] == kept  # one scale for every part
    for item in reversed(items):
        restored.remove(*item)
    assert (restored.n_items, restored.consensus_counts, restored.folded_labels) == (0, {}, 0)
    assert all(not f["n"] for f in [*restored.per_annotator.values(), *restored.per_vendor.values()])
    assert restored.judges == []


def test_old_state_of_the_reliability_and_annotator_counts_restores_alone() -> None:
    iaa, rvc = InterAnnotatorAgreement(max_categories=10_000), RaterVsConsensus(max_categories=10_000)
    for i in range(100):
        iaa.update(["pass", "pass", f"free-{i}"])
        rvc.update({"a": "pass", "b": "pass", "c": f"free-{i}"})
    old_iaa, old_rvc = iaa.to_dict(), rvc.to_dict()
    for data in (old_iaa, old_rvc):
        del data["params"]["max_categories"], data["state"]["_kept_labels"]
    del old_iaa["state"]["_folded_labels"]
    iaa2, rvc2 = InterAnnotatorAgreement.from_dict(old_iaa), RaterVsConsensus.from_dict(old_rvc)
    first = sorted(f"free-{i}" for i in range(100))[:31]  # each used once: the first by name
    assert iaa2.kept_labels == sorted(["pass", *first]) and "free-99" not in first
    assert iaa2.folded_labels == 69 and iaa2.pairwise_agreement == iaa.pairwise_agreement
    assert rvc2.confusion("c") == {**{label: {"pass": 1} for label in first}, OTHER: {"pass": 69}}
    assert iaa2.remove(["pass", "pass", "free-99"]).folded_labels == 68
    assert rvc2.remove({"a": "pass", "b": "pass", "c": "free-99"}).confusion("c")[OTHER] == {"pass": 68}


def test_merge_keeps_the_first_labels_and_folds_the_others() -> None:
    left, right, whole = (InterAnnotatorAgreement(max_categories=3) for _ in range(3))
    lrvc, rrvc = RaterVsConsensus(max_categories=3), RaterVsConsensus(max_categories=3)
    for labels in (["a", "a"], ["b", "a"]):
        left.update(labels)
        lrvc.update(dict(zip("xy", labels, strict=True)))
    for labels in (["c", "c"], ["d", "d"], ["e", "c"]):
        right.update(labels)
        rrvc.update(dict(zip("xy", labels, strict=True)))
    left.merge(right)
    assert left.kept_labels == ["a", "b", "c"] and left.n_items == 5
    assert left.folded_labels == 3 and left.pairwise_agreement == 0.6
    lrvc.merge(rrvc)
    assert lrvc.confusion("x") == {"a": {"a": 1}, "b": {"a": 1}, "c": {"c": 1}, OTHER: {OTHER: 1, "c": 1}}
    assert lrvc.confusion("y") == {"a": {"a": 1, "b": 1}, "c": {"c": 1, OTHER: 1}, OTHER: {OTHER: 1}}
    for labels in (["a", "a"], ["b", "a"], ["c", "c"], ["d", "d"], ["e", "c"]):
        whole.update(labels)
    assert left.to_dict() == whole.to_dict()


@pytest.mark.parametrize("bad", [0, 1, 2.5, True, "32", None])
def test_bad_max_categories_raises(bad) -> None:
    for make in (
        lambda: InterAnnotatorAgreement(max_categories=bad),
        lambda: RaterVsConsensus(max_categories=bad),
        lambda: RaterPanel(max_categories=bad),
    ):
        with pytest.raises(ValueError, match="max_categories"):
            make()


def test_a_judges_pairs_come_out_though_its_table_has_room_again() -> None:
    # before, a judge's table folded on its own, by the labels it held: once removals made room, a pair
    # counted as "other" was looked for under its name, not found, and its item not taken out at all (9 of
    # these 40 stayed, each counted twice when replaced)
    panel = RaterPanel()
    items = [({"a": f"label-{i}", "b": f"label-{i}"}, {}, {"J": "pass"}) for i in range(40)]
    for item in items:
        panel.update(*item)
    for item in items:
        panel.remove(*item)
    assert (panel.n_items, panel.judges, panel.consensus_counts, panel.folded_labels) == (0, [], {}, 0)


def test_a_judge_label_that_is_not_a_string_is_refused_before_anything_counts() -> None:
    panel = RaterPanel().update({"a": "pass", "b": "pass"}, None, {"J": "pass"})
    before = panel.to_dict()
    with pytest.raises(ValueError, match="judges"):
        panel.update({"a": "pass", "b": "fail"}, None, {"J": 1})  # type: ignore[dict-item]
    assert panel.to_dict() == before
