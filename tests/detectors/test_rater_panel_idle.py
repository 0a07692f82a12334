"""RaterPanel and RaterVsConsensus drop the annotators and vendors gone idle, and new ones take their room.

Until 2026-11-26 the first 1,000 annotators and 100 vendors a panel saw held their rows for good: after
turnover every new one was pooled as ``other``.
"""

from __future__ import annotations

import math
import random
from collections import Counter
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


def _without(
    data: dict[str, Any], panel_fields: tuple[str, ...], rater_fields: tuple[str, ...]
) -> dict[str, Any]:
    state = {k: v for k, v in data["state"].items() if k not in panel_fields}
    raters = {k: v for k, v in state["_raters"].items() if k not in rater_fields}
    return {**data, "state": {**state, "_raters": raters}}


def _as_before(data: dict[str, Any]) -> dict[str, Any]:
    """A panel's state without event times, as written before 2026-11-26."""
    vendors = ("_vendor_seen", "_vendors_dropped_before", "_vendors_counts_after", "_vendors_gone")
    return _without(data, vendors, ("_last_seen", "_dropped_before", "_counts_after", "_gone"))


def _as_without_spans(data: dict[str, Any], dropped_before: float) -> dict[str, Any]:
    """A panel's state as code of 2026-11-26 wrote it, which dropped rows without recording their spans:
    the newest drop's horizon instead."""
    old = _without(data, ("_vendors_counts_after", "_vendors_gone"), ("_counts_after", "_gone"))
    old["state"]["_vendors_dropped_before"] = old["state"]["_raters"]["_dropped_before"] = dropped_before
    return old


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


def test_state_of_code_that_dropped_without_spans_restores_and_keeps_its_rule() -> None:
    # that code (2026-11-26) took an item older than its newest drop's horizon out of no row of an
    # annotator or vendor without one: the items it counted come out as it would have taken them out
    panel = RaterPanel(max_annotators=2, max_vendors=2)
    first = {"a": "pass", "b": "fail"}, {"a": "va", "b": "vb"}
    panel.update(*first, ts=0.0)
    panel.drop_idle(31 * DAY, IDLE)
    panel.update({"c": "pass", "d": "pass"}, {"c": "vc", "d": "vc"}, ts=32 * DAY)
    old = RaterPanel.from_dict(_as_without_spans(panel.to_dict(), 1 * DAY))
    assert _figures(old) == _figures(panel)
    old.remove(*first, ts=0.0)
    assert old.n_items == 1 and sorted(old.per_annotator) == ["c", "d"] and old.per_annotator["c"]["n"] == 1
    assert RaterPanel.from_dict(old.to_dict()).to_dict() == old.to_dict()


def test_the_spans_of_dropped_rows_are_forgotten_an_idle_period_after_their_drop() -> None:
    # new annotators every day, each for one item: the records of their rows stay bounded, and an item
    # of a forgotten span still gives up nothing of its dropped annotators
    rvc = RaterVsConsensus()
    for day in range(200):
        rvc.drop_idle(day * DAY, IDLE)
        rvc.update({f"a{day}": "pass", f"b{day}": "fail"}, ts=day * DAY)
    spans = rvc.to_dict()["state"]["_gone"]
    assert sorted(spans) == sorted(f"{x}{day}" for x in "ab" for day in range(138, 169))
    rvc.remove({"a0": "pass", "b0": "fail"}, ts=0.0)
    assert rvc.n_items == 199 and len(rvc.raters) == 62


# -- where remove finds an item's comparisons: where update counted them, whatever rows came and went since
# (until 2026-11-26 remove inferred it from the rows held then, reviewed in /tmp/s24/dayreview2)


def _replaced_and_never(
    before: list[tuple[Any, ...]],
    old: tuple[dict[str, str], dict[str, str], float],
    between: list[tuple[Any, ...]],
    new: tuple[dict[str, str], dict[str, str], float],
    **caps: int,
) -> tuple[RaterPanel, RaterPanel]:
    """A panel that counted a turn's ``old`` version between ``before`` and ``between`` (items, or
    ``("look", day)``) and replaced it with ``new``, and one that only ever counted ``new``."""
    panels = RaterPanel(**caps), RaterPanel(**caps)
    for replaced, panel in zip((True, False), panels, strict=True):
        steps = [*before, *([("old",)] if replaced else []), *between]
        for step in steps:
            if step[0] == "look":
                panel.drop_idle(step[1] * DAY, IDLE)
            elif step[0] == "old":
                panel.update(old[0], old[1], ts=old[2])
            else:
                panel.update(step[0], step[1], ts=step[2])
        if replaced:
            panel.remove(old[0], old[1], ts=old[2])
        panel.update(new[0], new[1], ts=new[2])
    return panels


@pytest.mark.parametrize("w_on_day_31", ["fail", "pass"])  # a cell the old comparison is in, or not
def test_an_annotator_pooled_on_an_item_then_given_a_freed_row_gives_it_back_to_other(
    w_on_day_31: str,
) -> None:
    # a and b take the rows, y is pooled daily; w is pooled on the turn's first version (day 30.5), the
    # look of day 31 drops b (and vb), and w takes its row on day 31.2: the first version is replaced hours
    # later. The old code took w's comparison out of its new row (or, of a cell the row does not hold,
    # raised inside and counted the turn twice)
    labels = {"a": "pass", "w": "fail", "x": "fail"}
    vendors = {"a": "va", "w": "vw", "x": "vx"}
    before = [({"a": "pass", "b": "pass"}, {"a": "va", "b": "vb"}, 0.0)] + [
        ({"a": "pass", "y": "pass"}, {"a": "va", "y": "vy"}, d * DAY) for d in range(1, 31)
    ]
    between = [("look", 31), ({"a": "pass", "w": w_on_day_31}, {"a": "va", "w": "vw"}, 31.2 * DAY)]
    new = {**labels, "c": "pass"}, {**vendors, "c": "vc"}, 31.5 * DAY
    replaced, never = _replaced_and_never(
        before, (labels, vendors, 30.5 * DAY), between, new, max_annotators=2, max_vendors=2
    )
    assert "w" in replaced.per_annotator and "vw" in replaced.per_vendor
    assert _figures(replaced) == _figures(never)


@pytest.mark.parametrize("a_on_return", ["pass", "fail"])  # the old comparison's cell, or another one
def test_an_annotator_dropped_then_back_keeps_its_new_row_when_an_old_item_of_its_is_replaced(
    a_on_return: str,
) -> None:
    # a (va) labels a turn on day 0 with b, is dropped at the look of day 31 and labels again on day 35;
    # the turn is labelled again on day 40.5. The old code took a's old comparison out of its new row (or
    # raised inside, and counted the turn twice)
    traffic = [(labels, vendors, ts) for ts, labels, vendors in _traffic(random.Random(3), range(1, 41))]
    before = [step for step in traffic if step[2] < 31 * DAY]
    between = [("look", 31)] + [step for step in traffic if step[2] >= 31 * DAY]
    between.append(({"a": a_on_return, "b": "fail"}, {"a": "va", "b": "vb"}, 35 * DAY + 7200.0))
    between.sort(key=lambda step: step[1] * DAY if step[0] == "look" else step[2])
    old = {"a": "pass", "b": "fail"}, {"a": "va", "b": "vb"}, 0.0
    new = {**old[0], "c1": "fail"}, {**old[1], "c1": "vc"}, 40.5 * DAY
    replaced, never = _replaced_and_never(before, old, between, new)
    assert replaced.per_annotator["a"]["n"] == 2 and replaced.per_vendor["va"]["items"] == 2
    assert _figures(replaced) == _figures(never)


def test_an_annotator_pooled_on_an_old_item_gives_it_back_to_other_after_another_was_dropped() -> None:
    # w (vw) is pooled on the turn's first version on day 1; a and va are dropped at the look of day 40,
    # and the turn is labelled again: the old code took w for a dropped annotator (the item is older than
    # the drop's horizon) and left its comparison in other, which then counted the turn twice
    before = [({"a": "pass", "b": "pass"}, {"a": "va", "b": "vb"}, 0.0)]
    between = [({"b": "pass", "p": "pass"}, {"b": "vb", "p": "vp"}, d * DAY) for d in range(2, 41)]
    between.append(("look", 40))
    old = {"a": "pass", "w": "pass"}, {"a": "va", "w": "vw"}, 1.0 * DAY
    new = {**old[0], "c": "pass"}, {**old[1], "c": "vc"}, 40.5 * DAY
    replaced, never = _replaced_and_never(before, old, between, new, max_annotators=2, max_vendors=2)
    assert replaced.per_annotator[OTHER_RATERS]["n"] == 41
    assert _figures(replaced) == _figures(never)


def _held(panel: RaterPanel) -> dict[tuple[str, str], tuple[int, ...]]:
    """Per annotator and vendor row: comparisons, agreements, ties (and a vendor's items)."""
    held: dict[tuple[str, str], tuple[int, ...]] = {}
    for part, rows in (("annotator", panel.per_annotator), ("vendor", panel.per_vendor)):
        for who, f in rows.items():
            agreed = round(f["agreement"] * f["n"]) if f["n"] else 0
            held[(part, who)] = (f["n"], agreed, f["ties"], f.get("items", 0))
    return held


def _change(
    after: dict[Any, tuple[int, ...]], before: dict[Any, tuple[int, ...]]
) -> dict[Any, tuple[int, ...]]:
    zero = (0, 0, 0, 0)
    changed = {}
    for row in after.keys() | before.keys():
        delta = tuple(a - b for a, b in zip(after.get(row, zero), before.get(row, zero), strict=True))
        if any(delta):
            changed[row] = delta
    return changed


@pytest.mark.parametrize("seed", range(4))
def test_remove_takes_out_of_each_row_what_update_put_in_it_whatever_rows_came_and_went(seed: int) -> None:
    # annotators and vendors that come and go past small caps, looks every day dropping those idle for 5
    # days, items out of order by up to 4 hours, and turns labelled again up to 10 days on (the oldest
    # still open half the time): pooled annotators given rows, rows and other dropped before a turn of
    # theirs is replaced. An item's removal changes each row by the opposite of what its update did, unless
    # the row was dropped since (its comparisons went with it; a row of the same name given later holds
    # none of them)
    rng = random.Random(seed)
    panel, idle = RaterPanel(max_annotators=4, max_vendors=2), 5 * DAY
    generation: Counter[tuple[str, str]] = Counter()  # rows dropped, per row
    open_turns: list[
        tuple[dict[str, str], dict[str, str], float, dict[Any, tuple[int, ...]], Counter[Any]]
    ] = []
    replaced = 0
    for hour in range(24 * 90):
        now = hour * 3600.0
        if hour % 24 == 0:
            annotators, vendors = panel.drop_idle(now, idle)
            generation.update([("annotator", a) for a in annotators] + [("vendor", v) for v in vendors])
        day = hour // 24
        if day % 30 >= 16:  # quiet: two annotators only, the others and other go idle
            pool = ["q1", "q2"]
        else:  # 10 at a time, each for 20 days (some with a quiet spell in between)
            pool = [f"a{k}" for k in range(54) if 2 * k - 18 <= day < 2 * k + 2]
        labels = {
            a: rng.choice(["pass", "fail"]) for a in rng.sample(pool, min(len(pool), rng.choice([2, 3])))
        }
        vendors = {a: f"v{a[1:] if a[0] == 'q' else int(a[1:]) // 5}" for a in labels}
        ts = now - rng.uniform(0, 4 * 3600.0)  # out of order by up to 4 hours
        held = _held(panel)
        n_items = panel.n_items
        if day % 30 < 22 and open_turns and rng.random() < 0.4:  # none late in a quiet spell: other idles
            old_labels, old_vendors, old_ts, counted, gens = open_turns.pop(
                0 if rng.random() < 0.5 else rng.randrange(len(open_turns))
            )
            panel.remove(old_labels, old_vendors, ts=old_ts)
            assert panel.n_items == n_items - 1  # taken out, not counted twice
            expected = {
                row: tuple(-x for x in delta)
                for row, delta in counted.items()
                if generation[row] == gens[row]
            }
            assert _change(_held(panel), held) == expected
            labels = {**old_labels, **{a: x for a, x in labels.items() if a not in old_labels}}
            vendors = {**old_vendors, **{a: v for a, v in vendors.items() if a not in old_vendors}}
            ts = max(ts, old_ts)
            held = _held(panel)
            replaced += 1
        panel.update(labels, vendors, ts=ts)
        if len(labels) < 5:
            open_turns.append((labels, vendors, ts, _change(_held(panel), held), Counter(generation)))
        open_turns = [turn for turn in open_turns if turn[2] > now - 10 * DAY]
    assert replaced > 500
