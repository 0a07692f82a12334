"""Tally rows are stored as positional lists; every earlier stored form (rows as dicts) still reads."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import pytest

from detectors.exceptions import StateError
from detectors.label_tally import LabelTally
from detectors.vendor_scorecard import VendorScorecard


def _card(seed: int) -> VendorScorecard:
    """Two vendors past a cap of 3 annotators (so an ``other`` row), gold, judge and consensus counts."""
    rng = random.Random(seed)
    card = VendorScorecard(
        window_seconds=7200, bucket_seconds=600, turnaround_bounds=[300.0, 1800.0], max_annotators=3
    )
    for i in range(300):
        vendor = rng.choice(["v", "w"])
        gold = (rng.randint(0, 2), 2) if rng.random() < 0.2 else (0, 0)
        consensus = (int(rng.random() < 0.8), 1) if rng.random() < 0.3 else (0, 0)
        turnaround = rng.expovariate(1 / 900) if rng.random() < 0.9 else None
        card.update(
            30.0 * i,
            vendor,
            f"{vendor}{rng.randint(1, 3)}",
            turnaround,
            gold,
            (rng.randint(0, 2), 2),
            consensus,
            "g",
        )
    return card


def _as_dict_rows(card: VendorScorecard) -> dict[str, Any]:
    """``card``'s state as written until 2026-11-26: every bucket's rows as dicts, no names table."""
    state = json.loads(json.dumps(card.to_dict()))
    del state["state"]["_names"]
    for start, bucket in state["state"]["_windows"]["_buckets"].items():
        bucket["_rows"] = json.loads(json.dumps(card._rows(int(start))))
    return state


def _figures(card: VendorScorecard) -> list[Any]:
    tally = card.window()
    return [
        (vendor, who, card.scorecard(vendor, who, tally))
        for vendor in card.vendors
        for who in ("*", *card.annotators(vendor))
    ]


def test_rows_are_stored_as_lists_with_names_once_per_record():
    card = _card(1)
    state = card.to_dict()["state"]
    names = state["_names"]
    assert len(names) == len(set(names)) and {"v", "w", "*", "other"} <= set(names)
    for bucket in state["_windows"]["_buckets"].values():
        for row in bucket["_rows"]:
            assert isinstance(row, list) and all(isinstance(at, int) for at in row[:2])
            assert len(row) == (13 if names[row[1]] == "*" else 12)
    assert "labels" not in json.dumps(state)


@pytest.mark.parametrize("seed", range(3))
def test_state_with_rows_as_dicts_with_sparse_ranges_reads_as_the_positional_form(seed):
    card = _card(seed)
    old = VendorScorecard.from_dict(_as_dict_rows(card))
    new = VendorScorecard.from_dict(json.loads(json.dumps(card.to_dict())))
    assert _figures(old) == _figures(new) == _figures(card)
    assert old.to_dict() == new.to_dict() == card.to_dict()
    for restored in (old, new, card):
        restored.update(9000.0, "v", "v1", 100.0, judge=(1, 1))
    assert _figures(old) == _figures(new) == _figures(card)


def test_a_tally_reads_rows_as_dicts_and_as_lists():
    tally = LabelTally(turnaround_bounds=[300.0])
    tally.update("v", "a", 120.0, gold=(1, 2)).update("v", "b", 400.0, judge=(1, 1))
    as_dicts = {**tally.to_dict(), "state": {"_rows": json.loads(json.dumps(tally._rows))}}
    for data in (as_dicts, json.loads(json.dumps(tally.to_dict()))):
        restored = LabelTally.from_dict(data)
        assert restored.to_dict() == tally.to_dict()
        assert [restored.row("v", w) for w in ("*", "a", "b")] == [tally.row("v", w) for w in ("*", "a", "b")]
    assert tally.row("v")["turnaround_range"] == {"0": [120, 120], "1": [400, 400]}


@pytest.mark.parametrize(
    "change",
    [
        lambda row: row.pop(),  # a row too short
        lambda row: row.append(None),  # or too long
        lambda row: row.__setitem__(0, 999),  # a name not in the table
        lambda row: row.__setitem__(1, "v"),  # a name where an index goes
    ],
)
def test_a_stored_row_of_the_wrong_shape_raises_state_error(change):
    data = json.loads(json.dumps(_card(0).to_dict()))
    change(next(iter(data["state"]["_windows"]["_buckets"].values()))["_rows"][0])
    with pytest.raises(StateError):
        VendorScorecard.from_dict(copy.deepcopy(data))
