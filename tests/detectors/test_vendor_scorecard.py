"""Vendor scorecards: exact counts against a plain recount, window expiry by event time, caps, JSON state."""

from __future__ import annotations

import copy
import json
import math
import random
from typing import Any

import pytest

from detectors import base
from detectors.exceptions import NotHeldError
from detectors.sla_status import SlaStatus
from detectors.vendor_scorecard import MISSED_GOLD_KEPT, OTHER, LabelTally, Scorecard, VendorScorecard

WINDOW, BUCKET = 7200, 600
BOUNDS = [300.0, 1800.0, 3600.0]


def _events(seed: int = 17, n: int = 2000) -> list[tuple[Any, ...]]:
    """(ts, vendor, annotator, turnaround, gold, judge, consensus), some late, over ~14 h."""
    rng = random.Random(seed)
    ts, events = 1_700_000_000.0, []
    for _ in range(n):
        ts += rng.expovariate(1 / 25)
        vendor = rng.choice(["vendor-a", "vendor-b", "vendor-c"])
        annotator = f"{vendor[-1]}{rng.randrange(3)}"
        late = rng.uniform(0, 9000) if rng.random() < 0.05 else 0.0
        if rng.random() < 0.2:  # a consensus comparison, no label
            events.append((ts - late, vendor, annotator, None, (0, 0), (0, 0), (int(rng.random() < 0.8), 1)))
            continue
        gold = (int(rng.random() < 0.9), 1) if rng.random() < 0.1 else (0, 0)
        agree = rng.randint(0, 3)
        turnaround = rng.expovariate(1 / (900 if vendor != "vendor-b" else 2400))
        events.append((ts - late, vendor, annotator, turnaround, gold, (agree, 3), (0, 0)))
    return events


def _recount(
    events: list[tuple[Any, ...]], vendor: str, annotator: str | None, start: float
) -> dict[str, Any]:
    """The window's figures by brute force: accepted events (not too late) with ts >= start."""
    mine = [
        e for e in events if e[1] == vendor and (annotator is None or e[2] == annotator) and e[0] >= start
    ]
    labelled = [e for e in mine if e[3] is not None]
    histogram = [0] * (len(BOUNDS) + 1)
    for e in labelled:
        histogram[sum(e[3] > b for b in BOUNDS)] += 1
    by_record = {  # each event a label record: [records, Σa², Σam, Σm²] of those with comparisons
        f"{name}_clusters": (
            sum(e[i][1] > 0 for e in mine),
            sum(e[i][0] ** 2 for e in mine),
            sum(e[i][0] * e[i][1] for e in mine),
            sum(e[i][1] ** 2 for e in mine),
        )
        for i, name in ((4, "gold"), (5, "judge"))
    }
    return {
        "labels": len(labelled),
        "histogram": tuple(histogram),
        **{
            name: (sum(e[i][0] for e in mine), sum(e[i][1] for e in mine))
            for i, name in ((4, "gold"), (5, "judge"), (6, "consensus"))
        },
        **by_record,
    }


def _accepted(events: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The events a ring of WINDOW/BUCKET keeps: dropped when older than the window at their arrival."""
    kept, watermark = [], -math.inf
    for e in events:
        watermark = max(watermark, e[0])
        if (e[0] // BUCKET) * BUCKET >= (watermark // BUCKET) * BUCKET - WINDOW + BUCKET:
            kept.append(e)
    return kept


def _feed(card: VendorScorecard, events: list[tuple[Any, ...]]) -> VendorScorecard:
    for e in events:
        assert card.update(*e) is card
    return card


def test_exact_counts_per_vendor_and_annotator_over_the_window():
    events = _events()
    card = _feed(VendorScorecard(WINDOW, BUCKET, BOUNDS), events)
    kept = _accepted(events)
    assert card.too_late == len(events) - len(kept) > 0
    start = card.window_start
    assert start == (card.watermark // BUCKET) * BUCKET - WINDOW + BUCKET
    assert card.vendors == ["vendor-a", "vendor-b", "vendor-c"]
    tally = card.window()
    for vendor in card.vendors:
        assert card.annotators(vendor) == [f"{vendor[-1]}{i}" for i in range(3)]
        for annotator in (None, *card.annotators(vendor)):
            got = card.scorecard(vendor, annotator or "*", tally=tally)
            want = _recount(kept, vendor, annotator, start)
            assert got.labels == want["labels"] > 0
            assert got.histogram == want["histogram"]
            assert (got.gold, got.judge, got.consensus) == (want["gold"], want["judge"], want["consensus"])
            assert (got.gold_clusters, got.judge_clusters) == (want["gold_clusters"], want["judge_clusters"])
            assert got.judge_clusters[0] < got.judge[1]  # up to 3 comparisons a record: fewer records
            assert got.full_window and got.covered_seconds == card.watermark - start
            assert got.labels_per_hour == pytest.approx(got.labels * 3600 / (card.watermark - start))
            # within a bound: exact counts
            assert got.within(1800.0) == sum(want["histogram"][:2])
    slow, fast = card.scorecard("vendor-b"), card.scorecard("vendor-a")
    assert slow.quantile(0.9) > 1800.0 > fast.quantile(0.5)


def test_the_window_slides_by_event_time_and_old_labels_expire():
    card = VendorScorecard(window_seconds=3600, bucket_seconds=600, turnaround_bounds=BOUNDS)
    for i in range(6):  # one label every 10 minutes, from t=0 to t=3000
        card.update(600.0 * i, "vendor-a", "a1", 100.0, judge=(1, 1))
        if i == 1:  # the window reaches back before the first label: throughput not over all of it
            assert card.scorecard("vendor-a").full_window is False
    a = card.scorecard("vendor-a")
    assert (a.labels, a.full_window, a.covered_seconds, a.labels_per_hour) == (6, True, 3000.0, 7.2)
    card.update(3600.0, "vendor-b", "b1", 100.0)  # another vendor moves event time: bucket 0 leaves
    a = card.scorecard("vendor-a")
    assert (card.window_start, a.labels, a.judge) == (600, 5, (5, 5))
    assert a.full_window and a.covered_seconds == 3000.0
    card.update(100.0, "vendor-a", "a1", 100.0)  # older than the window: dropped, nothing counted
    assert card.too_late == 1 and card.scorecard("vendor-a").labels == 5
    card.update(7 * 3600.0, "vendor-b", "b1", 50.0)  # hours later: vendor-a has nothing left in the window
    a = card.scorecard("vendor-a")  # and no longer has a slot: no label, no time covered
    assert (a.labels, a.covered_seconds, math.isnan(a.labels_per_hour), math.isnan(a.judge_agreement)) == (
        0,
        0.0,
        True,
        True,
    )
    assert card.vendors == ["vendor-b"]


def test_vendors_and_annotators_past_the_caps_fold_into_other():
    card = VendorScorecard(max_vendors=2, max_annotators=3)
    for i, (vendor, annotator) in enumerate(
        [("v1", "x1"), ("v1", "x2"), ("v2", "y1"), ("v3", "z1"), ("v2", "y2"), ("v1", "x1"), ("v3", "z2")]
    ):
        card.update(60.0 * i, vendor, annotator, 30.0)
    assert card.vendors == ["other", "v1", "v2"]
    assert card.annotators("v1") == ["x1", "x2"]
    assert card.annotators("v2") == ["other", "y1"]
    assert card.annotators(OTHER) == ["other"]  # x1, x2 and y1 were the three annotators tracked
    assert card.scorecard(OTHER).labels == card.scorecard(OTHER, OTHER).labels == 2
    assert card.scorecard("v1", "x1").labels == 2 and card.scorecard("v2").labels == 2


def test_consensus_comparisons_are_removed_from_their_bucket_while_it_is_in_the_window():
    # an item counted again with a later annotator's label takes its last version's comparisons out
    card = VendorScorecard(window_seconds=3600, bucket_seconds=600, max_vendors=1, max_annotators=1)
    card.update(0.0, "v", "a1", consensus=(1, 1))
    card.update(700.0, "v", "a1", consensus=(0, 1))
    card.update(700.0, "w", "b1", consensus=(1, 1))  # past both caps: counted as other/other
    card.remove(0.0, "v", "a1", (1, 1)).remove(700.0, "w", "b1", (1, 1))
    assert card.scorecard("v").consensus == card.scorecard("v", "a1").consensus == (0, 1)
    assert card.scorecard(OTHER).consensus == (0, 0)
    before = card.to_dict()
    with pytest.raises(NotHeldError):  # the bucket holds (0, 1) for a1, not (1, 1): nothing changes
        card.remove(700.0, "v", "a1", (1, 1))
    assert card.to_dict() == before
    card.update(5000.0, "v", "a1", turnaround=10.0)  # bucket 600 leaves the window
    before = card.to_dict()
    card.remove(700.0, "v", "a1", (0, 1))  # gone with its bucket: nothing left to take out
    assert card.to_dict() == before and card.too_late == 0 and card.watermark == 5000.0


def _json(card: VendorScorecard) -> VendorScorecard:
    """The scorecard restored from its state as stored."""
    return VendorScorecard.from_dict(json.loads(json.dumps(card.to_dict(), allow_nan=False)))


def test_vendors_and_annotators_past_the_caps_get_slots_once_the_window_holds_none_of_the_old_ones():
    # month 1: 100 annotators (the cap), two vendors (the cap) and a third folded into other; all leave.
    # The caps counted every id ever seen, so a month later every new one was "other" for good
    card = VendorScorecard(window_seconds=86400, bucket_seconds=3600, max_vendors=2, max_annotators=100)
    for i in range(100):
        card.update(i * 60.0, "vendor-a", f"old-{i}", 600.0)
    card.update(7000.0, "vendor-b", "b-old", 600.0).update(7100.0, "vendor-c", "c-old", 600.0)
    assert card.vendors == ["other", "vendor-a", "vendor-b"] and card.annotators(OTHER) == [OTHER]
    card = _json(card)
    day = 86400.0
    for j in range(5):
        card.update(30 * day + j * 60.0, "vendor-a", f"new-{j}", 600.0, gold=(0, 1))
    card.update(30 * day + 600.0, "vendor-c", "c-new", 300.0, judge=(1, 1))
    assert card.vendors == ["vendor-a", "vendor-c"]
    assert card.annotators("vendor-a") == [f"new-{j}" for j in range(5)]
    new = card.scorecard("vendor-a", "new-0")
    assert (new.labels, new.gold) == (1, (0, 1))
    assert card.scorecard("vendor-c").labels == card.scorecard("vendor-c", "c-new").labels == 1
    assert card.window().annotators("vendor-a") == card.annotators("vendor-a")  # no "other" row


def test_a_held_vendor_keeps_its_slot_and_first_label_time_while_the_window_holds_none_of_its_counts():
    card = VendorScorecard(window_seconds=3600, bucket_seconds=600, max_vendors=2)
    card.update(0.0, "quiet", "q1", 60.0).update(300.0, "busy", "b1", 60.0)
    card = _json(card.hold({"quiet", "never-seen", OTHER}))  # held as stored: only a vendor with a slot
    assert card.to_dict()["state"]["_held"] == ["quiet"]
    for i in range(12):  # 2 hours of busy's labels: quiet's last label left the window an hour ago
        card.update(1200.0 + 600.0 * i, "busy", "b1", 60.0)
    quiet = card.scorecard("quiet")
    assert card.vendors == ["busy", "quiet"] and card.annotators("quiet") == []  # its annotator left
    assert (quiet.labels, quiet.full_window, quiet.labels_per_hour) == (0, True, 0.0)
    assert quiet.covered_seconds == card.watermark - card.window_start
    card.update(7900.0, "new", "n1", 60.0)  # every slot taken: the new vendor is counted under other
    assert card.vendors == ["busy", "other", "quiet"]
    card.update(7950.0, "quiet", "q2", 60.0)  # back: under its own name, first label time kept
    assert card.scorecard("quiet").labels == 1 and card.scorecard("quiet").full_window
    card.hold(set())  # released: gone once the window holds none of its counts, and its slot is free
    card.update(7950.0 + 3600.0, "busy", "b1", 60.0).update(7950.0 + 3700.0, "new", "n1", 60.0)
    assert card.vendors == ["busy", "new"]
    assert card.scorecard("quiet").labels == 0 and not card.scorecard("quiet").full_window
    with pytest.raises(ValueError, match="set of strings"):
        card.hold(["busy"])  # type: ignore[arg-type]


def test_a_slot_given_while_other_holds_counts_starts_at_the_next_bucket_and_removals_find_them():
    card = VendorScorecard(window_seconds=3600, bucket_seconds=600, max_annotators=2)
    card.update(0.0, "v", "a1", 60.0).update(700.0, "v", "a2", 60.0)  # the two slots
    card.update(1300.0, "v", "b1", consensus=(1, 1))  # past the cap: under other
    card.update(3500.0, "v", "b1", consensus=(0, 1))
    card.update(3650.0, "v", "a2", 60.0)  # bucket 0 leaves the window, and a1 with it: a slot is free
    assert card.annotators("v") == ["a2", OTHER]
    card.update(3400.0, "v", "b1", consensus=(1, 1))  # b1 gets it, but other holds b1's counts up to
    # bucket 3000: b1's own name from bucket 3600 on (else removals would look for them under it)
    assert card.annotators("v") == ["a2", "b1", OTHER]
    assert (card.scorecard("v", "b1").consensus, card.scorecard("v", OTHER).consensus) == ((0, 0), (2, 3))
    card = _json(card)
    card.update(3700.0, "v", "b1", consensus=(1, 1))
    assert card.scorecard("v", "b1").consensus == (1, 1)
    for ts, pair in ((1300.0, (1, 1)), (3500.0, (0, 1)), (3400.0, (1, 1))):  # superseded: found in other
        card.remove(ts, "v", "b1", pair)
    assert card.scorecard("v", OTHER).consensus == (0, 0) and card.scorecard("v").consensus == (1, 1)
    card.remove(3700.0, "v", "b1", (1, 1))
    assert card.scorecard("v").consensus == card.scorecard("v", "b1").consensus == (0, 0)
    card.update(7900.0, "v", "c1", 60.0)  # a2's and b1's counts have left: c1 has a slot at once
    assert card.annotators("v") == ["c1"] and card.scorecard("v", "c1").labels == 1


def test_removals_take_out_what_update_added_while_vendors_and_annotators_come_and_go():
    """Random turnover past both caps, late events, removals of earlier comparisons in any order: every
    removal of a comparison still in the window finds it, and the window holds exactly the others."""
    rng = random.Random(31)
    card = VendorScorecard(window_seconds=3600, bucket_seconds=600, max_vendors=2, max_annotators=3)
    added: list[tuple[float, str, str, tuple[int, int]]] = []
    ts, slots = 0.0, 0
    for _ in range(4000):
        ts += rng.expovariate(1 / 15)
        if added and rng.random() < 0.3:
            comparison = added.pop(rng.randrange(len(added)))
            card.remove(*comparison)  # raises NotHeldError if it is not where update put it
            continue
        vendor = f"v{int(ts // 4000) + rng.randrange(3)}"  # the pools move on: old ids leave
        annotator = f"{vendor}-{int(ts // 2500) + rng.randrange(3)}"
        at = ts - (rng.uniform(0, 2400) if rng.random() < 0.2 else 0.0)
        pair = (int(rng.random() < 0.8), 1)
        late = card.too_late
        card.update(at, vendor, annotator, consensus=pair)
        if card.too_late == late:
            added.append((at, vendor, annotator, pair))
        slots = max(slots, len(card.vendors))
    start = card.window_start
    assert start is not None
    kept = [c for c in added if c[0] // 600 * 600 >= start]
    tally = card.window()
    held = [tally.row(v)["consensus"] for v in tally.vendors]
    assert [sum(h[0] for h in held), sum(h[1] for h in held)] == [
        sum(c[3][0] for c in kept),
        sum(c[3][1] for c in kept),
    ]
    assert slots <= 3 and set(tally.vendors) <= set(card.vendors)  # two vendors and other, no more
    assert len({v for _, v, _, _ in kept}) > 3  # ... though more than that came through the window


#: State as the scorecard wrote it before slots were given up (commit 72a2c5a): no "_since", every id
#: ever seen in "_seen". max_annotators 2: b1 counted under other.
OLD_STATE: dict[str, Any] = {
    "type": "VendorScorecard",
    "params": {
        "window_seconds": 3600,
        "bucket_seconds": 600,
        "turnaround_bounds": [300.0, 1800.0],
        "max_vendors": 50,
        "max_annotators": 2,
    },
    "state": {
        "_windows": {
            "_buckets": {
                "0": {
                    "_rows": {
                        "v": {
                            "*": {
                                "labels": 2,
                                "turnaround": [2, 0, 0],
                                "gold": [2, 3],
                                "judge": [1, 2],
                                "consensus": [0, 0],
                            },
                            "a1": {
                                "labels": 1,
                                "turnaround": [1, 0, 0],
                                "gold": [2, 3],
                                "judge": [0, 0],
                                "consensus": [0, 0],
                            },
                            "a2": {
                                "labels": 1,
                                "turnaround": [1, 0, 0],
                                "gold": [0, 0],
                                "judge": [1, 2],
                                "consensus": [0, 0],
                            },
                        }
                    }
                },
                "600": {
                    "_rows": {
                        "v": {
                            "*": {
                                "labels": 1,
                                "turnaround": [1, 0, 0],
                                "gold": [1, 1],
                                "judge": [0, 0],
                                "consensus": [1, 1],
                            },
                            "other": {
                                "labels": 1,
                                "turnaround": [1, 0, 0],
                                "gold": [1, 1],
                                "judge": [0, 0],
                                "consensus": [1, 1],
                            },
                        }
                    }
                },
            },
            "_watermark": 800.0,
            "_too_late": 0,
            "_n": 4,
        },
        "_seen": {"v": {"*": 0.0, "a1": 0.0, "a2": 100.0, "other": 700.0}},
    },
}


def _missed_recently(misses: list[tuple[float, str]], start: float) -> list[str]:
    """The turns of ``misses`` (ts, turn) at or after ``start``, each at its latest, newest first, 10."""
    latest: dict[str, float] = {}
    for ts, turn in misses:
        if ts >= start:
            latest[turn] = max(ts, latest.get(turn, ts))
    return sorted(latest, key=lambda turn: -latest[turn])[:10]


def test_a_vendor_keeps_its_most_recently_missed_golden_turns_each_once_of_the_window_s():
    # gold items on 40 golden turns (one missed again, by another annotator or later, is named once), some
    # late; against a recount at every step, through JSON round trips on the way
    rng = random.Random(29)
    card = VendorScorecard(WINDOW, BUCKET, BOUNDS)
    misses: dict[str, list[tuple[float, str]]] = {"vendor-a": [], "vendor-b": []}
    most = dict.fromkeys(misses, 0)
    ts, watermark = 1_700_000_000.0, -math.inf
    for i in range(3000):
        ts += rng.expovariate(1 / 20)
        at = ts - (rng.uniform(0, 9000) if rng.random() < 0.05 else 0.0)
        vendor, turn, items = rng.choice(sorted(misses)), f"g{rng.randrange(40)}", rng.randint(1, 3)
        wrong = rng.randint(1, items) if rng.random() < (0.05 if vendor == "vendor-a" else 0.4) else 0
        card.update(at, vendor, f"{vendor[-1]}{rng.randrange(3)}", gold=(items - wrong, items), turn_id=turn)
        watermark = max(watermark, at)
        if wrong and at // BUCKET * BUCKET >= watermark // BUCKET * BUCKET - WINDOW + BUCKET:  # not too late
            misses[vendor].append((at, turn))
        if i % 250 == 0:
            card = _json(card)
        start = card.window_start
        assert start is not None
        for vendor, missed in misses.items():
            assert card.missed_gold(vendor) == _missed_recently(missed, start)
            most[vendor] = max(most[vendor], len(card.missed_gold(vendor)))
    assert most == dict.fromkeys(misses, MISSED_GOLD_KEPT)  # the bound was reached, and held


def test_state_written_before_missed_golden_turns_were_kept_reads_none():
    card = VendorScorecard.from_dict(copy.deepcopy(OLD_STATE))
    assert card.missed_gold("v") == []
    card.update(900.0, "v", "a1", gold=(0, 2), turn_id="g1").update(
        950.0, "v", "a2", gold=(1, 1), turn_id="g2"
    )
    assert _json(card).missed_gold("v") == ["g1"]
    # past the caps: no turns kept for "other"
    capped = (
        VendorScorecard(max_vendors=1).update(0.0, "v", "a1").update(1.0, "w", "b1", gold=(0, 1), turn_id="g")
    )
    assert capped.vendors == [OTHER, "v"] and capped.missed_gold(OTHER) == capped.missed_gold("w") == []


def test_state_written_before_slots_were_given_up_restores_and_frees_them():
    card = VendorScorecard.from_dict(copy.deepcopy(OLD_STATE))
    assert card.annotators("v") == ["a1", "a2", OTHER]
    assert (card.scorecard("v", "a1").gold, card.scorecard("v", OTHER).consensus) == ((2, 3), (1, 1))
    # gold and judge comparisons by label record were not counted: each its own record, as they were taken
    assert card.scorecard("v").gold_clusters == (4, 3, 3, 4)
    more = VendorScorecard.from_dict(copy.deepcopy(OLD_STATE)).update(900.0, "v", "a1", 60.0, gold=(1, 3))
    assert more.scorecard("v").gold_clusters == (5, 4, 6, 13)  # and one record of 3 more
    card.remove(800.0, "v", "b1", (1, 1))  # b1 had no slot: its comparison is under other
    assert card.scorecard("v").consensus == card.scorecard("v", OTHER).consensus == (0, 0)
    card.update(3600.0, "v", "c1", 60.0)  # bucket 0 leaves, and a1 and a2 with it: c1 has a slot
    assert card.annotators("v") == ["c1", OTHER] and card.scorecard("v", "c1").labels == 1
    assert _json(card).to_dict() == card.to_dict()


@pytest.mark.parametrize("split", [1, 700, 1500])
def test_json_round_trip_mid_stream_continues_identically(split):
    events = _events(seed=23, n=2000)
    card = _feed(VendorScorecard(WINDOW, BUCKET, BOUNDS, max_annotators=7), events[:split])
    restored = VendorScorecard.from_dict(json.loads(json.dumps(card.to_dict(), allow_nan=False)))
    _feed(card, events[split:])
    _feed(restored, events[split:])
    assert restored.to_dict() == card.to_dict()
    for vendor in card.vendors:
        assert restored.scorecard(vendor) == card.scorecard(vendor)


def _containers(value: Any) -> dict[int, Any]:
    """Every list and dict in ``value`` (nested), by id."""
    found: dict[int, Any] = {}
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, list | dict) and id(item) not in found:
            found[id(item)] = item
            pending.extend(item.values() if isinstance(item, dict) else item)
    return found


def test_a_restore_builds_the_rows_once_and_shares_nothing_with_the_stored_state(monkeypatch):
    # until 2026-11-26 EventTimeWindows.from_dict copied every bucket's rows after they were built from
    # their stored lists: about 40% of a restore at the caps
    card = _feed(VendorScorecard(WINDOW, BUCKET, BOUNDS, max_annotators=7), _events(seed=23, n=1500))
    stored = json.loads(json.dumps(card.to_dict(), allow_nan=False))
    copied: list[dict[str, Any]] = []
    copy_state = base._copy
    monkeypatch.setattr(base, "_copy", lambda state: copied.append(state) or copy_state(state))
    restored = VendorScorecard.from_dict(stored)
    assert len(restored._windows.bucket_starts) > 1
    assert not [state for state in copied if state.get("_buckets")]  # rows copied
    params = _containers(stored["params"])
    shared = set(_containers(stored)) - set(params)
    assert not shared & set(_containers({k: v for k, v in vars(restored).items() if k != "_held"}))
    assert not shared & set(_containers(vars(restored._windows)))
    assert restored.to_dict() == card.to_dict()


def test_scorecard_quantiles_and_shares_interpolate_inside_bins():
    card = Scorecard(
        labels=10,
        covered_seconds=3600.0,
        full_window=True,
        bounds=(300.0, 1800.0),
        histogram=(5, 4, 1),
        gold=(9, 10),
        judge=(0, 0),
        consensus=(3, 4),
    )
    assert card.quantile(0.5) == 300.0 and card.quantile(0.7) == 1050.0
    assert math.isinf(card.quantile(0.95))  # above the last bound
    assert (
        card.within(300.0) == 5 and card.within(1050.0) == 7.0 and card.within(10_000) == 9
    )  # above the last bound: not known to be
    assert (card.gold_accuracy, card.consensus_agreement, math.isnan(card.judge_agreement)) == (
        0.9,
        0.75,
        True,
    )


def test_bad_arguments_are_refused_before_anything_changes():
    with pytest.raises(ValueError, match="strictly increasing"):
        LabelTally(turnaround_bounds=[60, 60])
    with pytest.raises(ValueError, match="multiple of bucket_seconds"):
        VendorScorecard(window_seconds=1000, bucket_seconds=300)
    card = VendorScorecard()
    card.update(10.0, "v", "a", 5.0)
    before = card.to_dict()
    for args in [
        (20.0, "v", "a", -1.0),
        (20.0, "v", "a", 5.0, (2, 1)),
        (20.0, "", "a"),
        (math.nan, "v", "a"),
        (20.0, "v", "a", None, (0, 1), (0, 0), (0, 0), ""),
        (20.0, "v", "a", None, (0, 1), (0, 0), (0, 0), 7),
    ]:
        with pytest.raises(ValueError):
            card.update(*args)
    assert card.to_dict() == before


def test_sla_status_episodes_revisions_and_unjudged_evaluations():
    status = SlaStatus(republish_seconds=100)
    changes = []
    for ts, breached in [
        (0, None),
        (10, False),
        (20, True),
        (50, True),
        (130, True),
        (140, None),
        (150, False),
    ]:
        status.update(float(ts), "v|turnaround", breached)
        changes.append((status.change, (status.status("v|turnaround") or {}).get("revision")))
    assert changes == [
        (None, None),
        (None, 0),
        ("firing", 1),
        (None, 1),
        ("updated", 2),
        (None, 2),
        ("resolved", 3),
    ]
    assert status.evaluated_at == 150.0 and status.breached == []
    status.update(200.0, "v|turnaround", True)
    assert (status.change, status.status("v|turnaround")["episode"], status.breached) == (
        "firing",
        2,
        ["v|turnaround"],
    )


def test_sla_status_forgets_what_is_over_keeps_breaches_and_reads_state_from_before():
    status = SlaStatus(republish_seconds=100, forget_after_seconds=1000)
    status.update(0.0, "a|turnaround", True)  # breached, never judged again
    status.update(0.0, "b|turnaround", True).update(50.0, "b|turnaround", False)  # closed, last judged at 50
    status.update(0.0, "c|gold_accuracy", False).update(900.0, "c|gold_accuracy", False)
    status.update(900.0, "d|turnaround", None)  # not judged: no target made
    status.update(900.0, "d|turnaround", False)
    assert status.forget(1049.0).names == ["a|turnaround", "b|turnaround", "c|gold_accuracy", "d|turnaround"]
    assert status.forget(1051.0).names == ["a|turnaround", "c|gold_accuracy", "d|turnaround"]
    assert status.forget(1e9).breached == ["a|turnaround"]  # a breach stays
    assert status.names == ["a|turnaround"]
    assert status.status("a|turnaround")["episode"] == 1
    assert _json_status(status).to_dict() == status.to_dict()

    # judged again, a forgotten target starts afresh, created anew (its escalation ids its own)
    status.update(2000.0, "b|turnaround", True)
    assert {k: status.status("b|turnaround")[k] for k in ("episode", "revision", "created")} == {
        "episode": 1,
        "revision": 1,
        "created": 2000.0,
    }

    # state written before 2026-11-26 has no judgement or creation times: judged at the first forget
    before = SlaStatus(republish_seconds=100, forget_after_seconds=1000)
    before.update(0.0, "a|turnaround", True).update(0.0, "c|gold_accuracy", False)
    old = before.to_dict()
    for target in old["state"]["_targets"].values():
        del target["judged"], target["created"]
    restored = SlaStatus.from_dict(old)
    assert restored.forget(5000.0).names == ["a|turnaround", "c|gold_accuracy"]
    assert restored.forget(6001.0).names == ["a|turnaround"]
    assert restored.status("a|turnaround").get("created") is None  # its escalation ids as before
    restored.update(6100.0, "a|turnaround", True)
    assert (restored.change, restored.status("a|turnaround")["revision"]) == ("updated", 2)


def _json_status(status: SlaStatus) -> SlaStatus:
    return SlaStatus.from_dict(json.loads(json.dumps(status.to_dict(), allow_nan=False)))
