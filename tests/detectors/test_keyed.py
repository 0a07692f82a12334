"""KeyedDetectors keeps each key's newest event time, and drops the detectors of keys gone idle."""

from __future__ import annotations

from detectors.keyed import OTHER, KeyedDetectors

DAY = 86400.0


def test_idle_keys_are_dropped_and_give_their_room_to_new_keys() -> None:
    keyed = KeyedDetectors("ClassAccuracy", max_keys=3)
    keyed.update("v1", "refund", "refund", ts=0.0).update("v2", "refund", "cancel", ts=DAY)
    keyed.update("v3", "refund", "refund", ts=DAY)
    assert keyed.keys == ["other", "v1", "v2"]
    assert keyed.drop_idle(now=10 * DAY, idle_seconds=9.5 * DAY) == ["v1"]
    assert keyed.keys == ["other", "v2"] and keyed.last_seen == {"other": DAY, "v2": DAY}
    keyed.update("v4", "cancel", "cancel", ts=10 * DAY)
    assert keyed.keys == ["other", "v2", "v4"] and keyed.get("v4").n == 1
    assert keyed.drop_idle(now=10 * DAY + 1, idle_seconds=10 * DAY) == []  # idle exactly that long: kept


def test_the_newest_event_time_is_kept_whatever_the_order() -> None:
    keyed = KeyedDetectors("ClassAccuracy")
    for ts in (5.0, 3.0, 7.0, 6.0):
        keyed.update("v1", "refund", "refund", ts=ts)
    keyed.update("v1", "refund", "refund")  # no event time: the newest stays
    assert keyed.last_seen == {"v1": 7.0}


def test_state_from_before_event_times_is_stamped_at_the_first_look() -> None:
    keyed = KeyedDetectors("ClassAccuracy").update("v1", "refund", "refund", ts=0.0)
    data = keyed.to_dict()
    assert data["state"]["_last_seen"] == {"v1": 0.0}
    del data["state"]["_last_seen"]  # as written before 2026-11-26
    old = KeyedDetectors.from_dict(data)
    assert old.last_seen == {} and old.keys == ["v1"]
    assert old.drop_idle(now=50 * DAY, idle_seconds=30 * DAY) == []
    assert old.last_seen == {"v1": 50 * DAY}
    again = KeyedDetectors.from_dict(old.to_dict())
    assert again.last_seen == {"v1": 50 * DAY}
    assert again.drop_idle(now=80 * DAY + 1, idle_seconds=30 * DAY) == ["v1"]


def test_merge_keeps_the_newest_event_time_of_each_key() -> None:
    ours = KeyedDetectors("ClassAccuracy", max_keys=3).update("v1", "a", "a", ts=5.0)
    theirs = KeyedDetectors("ClassAccuracy", max_keys=3).update("v1", "a", "a", ts=9.0)
    theirs.update("v2", "a", "a", ts=2.0).update("v3", "a", "a")
    ours.merge(theirs)
    assert ours.keys == [OTHER, "v1", "v2"]  # v3 folded, as v3 was
    assert ours.last_seen == {"v1": 9.0, "v2": 2.0}
    assert ours.get("v1").n == 2


def test_stamp_gives_keys_without_an_event_time_one_and_keeps_the_others() -> None:
    keyed = KeyedDetectors("ClassAccuracy").update("v1", "a", "a", ts=3.0).update("v2", "a", "a")
    assert keyed.stamp(8.0) is keyed
    assert keyed.last_seen == {"v1": 3.0, "v2": 8.0}
    assert keyed.stamp(9.0).last_seen == {"v1": 3.0, "v2": 8.0}  # stamped once
