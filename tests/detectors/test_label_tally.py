"""Turnaround quantiles of the labelling scorecards: read between the turnarounds each histogram bin saw."""

from __future__ import annotations

import bisect
import copy
import json
import math
import random
from typing import Any

import pytest

from detectors.label_tally import DEFAULT_TURNAROUND_BOUNDS, LabelTally
from detectors.vendor_scorecard import VendorScorecard
from tests.detectors.test_vendor_scorecard import OLD_STATE


def _card(turnarounds: list[float], bounds: list[float] | None = None) -> VendorScorecard:
    card = VendorScorecard(window_seconds=86400, bucket_seconds=3600, turnaround_bounds=bounds)
    for i, turnaround in enumerate(turnarounds):
        card.update(60.0 * i, "v", f"a{i % 3}", turnaround)
    return card


def test_labels_all_at_one_turnaround_read_exactly_that():
    # LLMBar: every label 24 h after its turn read p50 64,800 s and p90 82,080 s, interpolated in the bin
    # (43200, 86400]; above the last bound, +Inf
    for turnaround in (86400.0, 50000.0, 7.0, 300000.0):
        card = _card([turnaround] * 200).scorecard("v")
        assert [card.quantile(q) for q in (0.01, 0.5, 0.9, 1.0)] == [turnaround] * 4
        assert card.within(turnaround) == 200 and card.within(turnaround - 1.0) == 0


@pytest.mark.parametrize("seed", range(5))
def test_quantiles_stay_between_the_turnarounds_their_bin_saw(seed):
    rng = random.Random(seed)
    turnarounds = [rng.choice([rng.expovariate(1 / 3000), rng.uniform(40000, 45000)]) for _ in range(500)]
    card = _card(turnarounds).scorecard("v")
    bins: dict[int, list[float]] = {}
    for t in turnarounds:
        bins.setdefault(bisect.bisect_left(DEFAULT_TURNAROUND_BOUNDS, t), []).append(t)
    ordered = sorted(turnarounds)
    for q in [i / 20 for i in range(1, 21)]:
        exact = ordered[math.ceil(q * len(ordered)) - 1]  # nearest rank
        seen = bins[bisect.bisect_left(DEFAULT_TURNAROUND_BOUNDS, exact)]
        low, high = math.floor(min(seen)), math.ceil(max(seen))  # kept in whole seconds
        assert low <= card.quantile(q) <= high, (q, card.quantile(q), min(seen), max(seen))
    # at a bound the share within is the exact count, as the SLA judges it
    for bound in DEFAULT_TURNAROUND_BOUNDS:
        assert card.within(bound) == sum(t <= bound for t in turnarounds)


def test_ranges_merge_across_buckets_and_survive_json():
    card = VendorScorecard(window_seconds=7200, bucket_seconds=600, turnaround_bounds=[300.0, 1800.0])
    for ts, turnaround in [(0.0, 400.0), (100.0, 900.0), (700.0, 500.0), (1300.0, 1500.0), (1400.0, 5000.0)]:
        card.update(ts, "v", "a", turnaround)
    restored = VendorScorecard.from_dict(json.loads(json.dumps(card.to_dict(), allow_nan=False)))
    for scorecard in (card.scorecard("v"), restored.scorecard("v")):
        assert scorecard.ranges == (None, (400.0, 1500.0), (5000.0, 5000.0))
        assert scorecard.quantile(0.2) == 400.0 + 1100.0 * 1 / 4 and scorecard.quantile(1.0) == 5000.0


def _old_rows(state: dict[str, Any]) -> list[dict[str, Any]]:
    buckets = state["state"]["_windows"]["_buckets"]
    return [row for bucket in buckets.values() for rows in bucket["_rows"].values() for row in rows.values()]


def test_state_from_before_ranges_reads_its_bins_edges_until_it_leaves_the_window():
    assert all("turnaround_range" not in row for row in _old_rows(OLD_STATE))
    card = VendorScorecard.from_dict(copy.deepcopy(OLD_STATE))  # 3 labels in (0, 300]
    old = card.scorecard("v")
    assert old.ranges is None and old.quantile(0.5) == 150.0  # as before: interpolated between the edges
    card.update(1300.0, "v", "a1", 1000.0)  # a new bucket keeps a range, the window of both none
    assert card.scorecard("v").ranges is None and card.scorecard("v").quantile(1.0) == 1800.0
    card.update(850.0, "v", "a1", 1200.0)  # into an old bucket with labels: its edges stay
    assert "turnaround_range" not in card.window().row("v")
    assert "turnaround_range" not in card.window().row("v", "a1")
    card.update(4300.0, "v", "a1", 1000.0)  # every old bucket has left the window
    assert card.scorecard("v").ranges == (None, (1000.0, 1000.0), None)
    assert card.scorecard("v").quantile(0.5) == 1000.0


def test_a_row_of_old_state_without_labels_starts_keeping_ranges():
    tally = LabelTally.from_dict(
        {
            "type": "LabelTally",
            "params": {"turnaround_bounds": [300.0]},
            "state": {
                "_rows": {
                    "v": {
                        "*": {
                            "labels": 0,
                            "turnaround": [0, 0],
                            **{p: [1, 1] for p in ("gold", "judge", "consensus")},
                        },
                    }
                }
            },
        }
    )
    tally.update("v", "*", 120.0)
    assert tally.row("v")["turnaround_range"] == {"0": [120, 120]}


def test_state_with_dense_ranges_on_every_row_reads_and_is_kept_sparse_for_vendors_only():
    # as written on 2026-11-26 before ranges were kept sparse: a range, or None, per bin of every row
    card = VendorScorecard(window_seconds=7200, bucket_seconds=600, turnaround_bounds=[300.0, 1800.0])
    card.update(0.0, "v", "a", 400.5).update(100.0, "v", "a", 1499.2).update(700.0, "v", "b", 60.0)
    state = json.loads(json.dumps(card.to_dict()))
    del state["state"]["_names"]  # rows were dicts then
    dense = {"0": [None, [400.5, 1499.2], None], "600": [[60.0, 60.0], None, None]}
    for start, bucket in state["state"]["_windows"]["_buckets"].items():
        bucket["_rows"] = json.loads(json.dumps(card._rows(int(start))))
        for row in bucket["_rows"]["v"].values():
            row["turnaround_range"] = dense[start]
    restored = VendorScorecard.from_dict(state)
    scorecard = restored.scorecard("v")
    assert scorecard.ranges == ((60, 60), (400, 1500), None) and scorecard.quantile(1.0) == 1500
    assert restored.scorecard("v", "a").ranges is None  # an annotator's quantiles read its bins' edges
    assert restored.scorecard("v", "a").quantile(1.0) == 1800.0
    kept = {start: restored._windows.bucket(start) for start in (0, 600)}
    assert isinstance(kept[0], LabelTally) and isinstance(kept[600], LabelTally)
    assert kept[0].row("v")["turnaround_range"] == {"1": [400, 1500]}
    assert kept[600].row("v")["turnaround_range"] == {"0": [60, 60]}
    assert "turnaround_range" not in kept[0].row("v", "a") and "turnaround_range" not in kept[600].row(
        "v", "b"
    )
    restored.update(800.0, "v", "b", 2000.0)
    assert restored.scorecard("v").ranges == ((60, 60), (400, 1500), (2000, 2000))


def test_ranges_are_whole_seconds_within_their_bins_edges():
    tally = LabelTally(turnaround_bounds=[60.5, 300.0])
    for turnaround in (60.2, 60.7, 299.1, 300.0, 1000.4):
        tally.update("v", "a", turnaround)
    # 60.2 up to 61 would leave its bin (0, 60.5]: limits at a bound stay exact
    assert tally.row("v")["turnaround_range"] == {"0": [60, 60.5], "1": [60.5, 300], "2": [1000, 1001]}
    assert "turnaround_range" not in tally.row("v", "a")
    card = _card([7.0, 7.0, 86400.0]).scorecard("v")
    assert card.quantile(0.5) == 7.0 and card.quantile(1.0) == 86400.0
