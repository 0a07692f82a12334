"""RaterPanel and RaterVsConsensus drop the annotators and vendors gone idle, and new ones take their room.

Until 2026-11-26 the first 1,000 annotators and 100 vendors a panel saw held their rows for good: after
turnover every new one was pooled as ``other``.
"""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

from detectors.exceptions import NotHeldError
from detectors.rater_panel import RaterPanel
from detectors.rater_vs_consensus import OTHER_RATERS, RaterVsConsensus

DAY = 86400.0
IDLE = 30 * DAY


def _figures(panel: RaterPanel) -> Any:
    """What a panel reports (report.json ``raters``), NaN as None (to compare)."""
    reliability = panel.reliability()
    return _without_nan(
        {
            "items": panel.n_items,
            "consensus": panel.consensus_counts,
            "ties": panel.ties,
            "alpha": reliability.krippendorff_alpha,
            "kappa": reliability.fleiss_kappa,
            "annotators": panel.per_annotator,
            "vendors": panel.per_vendor,
            "judges": {j: panel.judge(j).summary() for j in panel.judges},
        }
    )


def _without_nan(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_without_nan(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def test_idle_raters_give_their_rows_to_new_ones_and_other_takes_no_room() -> None:
    rvc = RaterVsConsensus(max_raters=2)
    rvc.update({"a": "pass", "b": "pass"}, ts=0.0).update({"a": "pass", "c": "fail"}, ts=5 * DAY)
    assert rvc.raters == ["a", "b", OTHER_RATERS]
    assert rvc.drop_idle(now=31 * DAY, idle_seconds=IDLE) == ["b"]
    rvc.update({"a": "pass", "d": "pass"}, ts=31 * DAY)  # b's place, though other has a row
    assert rvc.raters == ["a", "d", OTHER_RATERS]
    assert rvc.last_seen == {"a": 31 * DAY, "d": 31 * DAY, OTHER_RATERS: 5 * DAY}
    assert rvc.drop_idle(now=36 * DAY, idle_seconds=IDLE) == [OTHER_RATERS]
    assert rvc.drop_idle(now=36 * DAY, idle_seconds=IDLE) == []


def test_raters_merge_keeps_the_newest_time_of_each() -> None:
    one = RaterVsConsensus().update({"a": "x", "b": "x"}, ts=5.0)
    two = RaterVsConsensus().update({"a": "x", "c": "x"}, ts=9.0).update({"b": "x", "c": "y"}, ts=2.0)
    assert one.merge(two).last_seen == {"a": 9.0, "b": 5.0, "c": 9.0}


def test_an_item_taken_out_after_a_rater_was_dropped_gives_up_nothing_for_it() -> None:
    rvc, item = RaterVsConsensus(), {"a": "pass", "b": "pass"}
    rvc.update(item, ts=0.0).update({"b": "pass", "c": "fail"}, ts=40 * DAY)
    assert rvc.drop_idle(now=40 * DAY, idle_seconds=IDLE) == ["a"]
    for ts in (
        None,
        10 * DAY,
    ):  # without its time, or after the horizon: a was pooled, and other holds nothing
        with pytest.raises(NotHeldError):
            rvc.remove(item, ts=ts)
    rvc.remove(item, ts=0.0)
    assert rvc.n_items == 1 and rvc.per_rater["b"]["n"] == 1 and rvc.raters == ["b", "c"]


def _traffic(rng: random.Random, days: range) -> list[tuple[float, dict[str, str], dict[str, str]]]:
    """Two items a day of annotators b and one of c1..c3 (vendors vb, vc), with a judge's label."""
    items = []
    for day in days:
        for k in range(2):
            mate = f"c{rng.randrange(3) + 1}"
            labels = {"b": rng.choice(["pass", "fail"]), mate: rng.choice(["pass", "fail"])}
            items.append((day * DAY + k * 3600.0, labels, {"b": "vb", mate: "vc"}))
    return items


def test_an_item_replaced_after_one_of_its_annotators_and_vendors_was_dropped_counts_once() -> None:
    # a turn labelled on day 0 by a (vendor va) and b, labelled again by c1 on day 40 (a join TTL over 30
    # days): a and va were dropped on day 31, and the old version's comparisons of a went with them; the
    # rest of it comes out, as if the turn had only ever been counted with its three labels
    rng = random.Random(3)
    traffic = _traffic(rng, range(1, 41))
    first = {"a": "pass", "b": "fail"}, {"a": "va", "b": "vb"}, {"judge-a": "pass"}
    again = {"a": "pass", "b": "fail", "c1": "fail"}, {"a": "va", "b": "vb", "c1": "vc"}, {"judge-a": "pass"}
    panel, never = RaterPanel(), RaterPanel()  # never: the turn counted once, with its three labels
    panel.update(*first, ts=0.0)
    for ts, labels, vendors in traffic:
        for p in (panel, never):
            if ts == 31 * DAY:
                assert p.drop_idle(ts, IDLE) == ((["a"], ["va"]) if p is panel else ([], []))
            p.update(labels, vendors, {"judge-a": "pass"}, ts=ts)
    panel.remove(*first, ts=0.0).update(*again, ts=40.5 * DAY)
    never.update(*again, ts=40.5 * DAY)
    assert _figures(panel) == _figures(never)
    assert panel.per_annotator["a"]["n"] == 1 and panel.per_vendor["va"]["items"] == 1

    # without the item's time, as an older join sends it, the panel cannot tell a dropped annotator from a
    # pooled one: it takes the item out of no part and counts the new version on top
    stale = RaterPanel()
    stale.update(*first, ts=0.0)
    stale.drop_idle(31 * DAY, IDLE)
    stale.remove(*first).update(*again, ts=40.5 * DAY)
    assert stale.n_items == 2


def test_a_pooled_annotators_newer_item_comes_out_of_other() -> None:
    panel = RaterPanel(max_annotators=2, max_vendors=1)
    panel.update({"a": "pass", "b": "pass"}, {"a": "v1", "b": "v1"}, ts=0.0)
    panel.drop_idle(31 * DAY, IDLE)  # a and b dropped: a horizon at day 1
    panel.update({"c": "pass", "d": "pass"}, {"c": "v1", "d": "v1"}, ts=32 * DAY)
    item = {"c": "pass", "d": "pass", "e": "fail"}, {"c": "v1", "d": "v1", "e": "v2"}
    panel.update(*item, ts=33 * DAY)  # e and v2 pooled: past the caps
    before = _figures(panel)
    again = {**item[0], "f": "pass"}, {**item[1], "f": "v2"}
    panel.remove(*item, ts=33 * DAY).update(*again, ts=34 * DAY)
    assert panel.n_items == before["items"]
    assert panel.per_annotator[OTHER_RATERS]["n"] == 2  # e's and f's on the new version
    assert panel.per_vendor[OTHER_RATERS]["n"] == 2


def _as_before(data: dict[str, Any]) -> dict[str, Any]:
    """A panel's state without event times, as written before 2026-11-26."""
    state = {k: v for k, v in data["state"].items() if k not in ("_vendor_seen", "_vendors_dropped_before")}
    raters = {k: v for k, v in state["_raters"].items() if k not in ("_last_seen", "_dropped_before")}
    return {**data, "state": {**state, "_raters": raters}}


def test_state_from_before_event_times_is_stamped_at_the_first_look() -> None:
    panel = RaterPanel().update(
        {"a": "pass", "b": "fail"}, {"a": "va", "b": "vb"}, {"judge-a": "pass"}, ts=0.0
    )
    old = RaterPanel.from_dict(_as_before(panel.to_dict()))
    assert _figures(old) == _figures(panel)
    assert old.drop_idle(50 * DAY, IDLE) == ([], [])  # stamped at day 50
    again = RaterPanel.from_dict(old.to_dict())
    assert again.drop_idle(80 * DAY, IDLE) == ([], [])
    assert again.drop_idle(81 * DAY, IDLE) == (["a", "b"], ["va", "vb"])
    assert again.per_annotator == {} and again.per_vendor == {} and again.n_items == 1
