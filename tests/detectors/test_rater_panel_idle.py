"""RaterVsConsensus (and RaterPanel) drop the annotators and vendors gone idle, and new ones take their room.

Until 2026-11-26 the first 1,000 annotators and 100 vendors a panel saw held their rows for good: after
turnover every new one was pooled as ``other``.
"""

from __future__ import annotations

import pytest

from detectors.exceptions import NotHeldError
from detectors.rater_vs_consensus import OTHER_RATERS, RaterVsConsensus

DAY = 86400.0
IDLE = 30 * DAY


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
