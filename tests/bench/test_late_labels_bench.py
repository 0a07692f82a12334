"""bench/late_labels.py on a short run: labels of turns sent for review meet them past the join's cap."""

from __future__ import annotations

from bench.late_labels import run


def test_review_keeps_let_every_late_label_of_a_requested_turn_meet_it() -> None:
    before, after = (run(3_000, 1.0, 500, seed=3, control_share=0.02, keeps=keeps) for keeps in (False, True))
    assert before["labels_of_requested_turns"] == after["labels_of_requested_turns"] > 20
    assert after["requested_met_share"] == 1.0
    assert before["requested_met_share"] < 0.5  # 1-24 h late, against 500 s of turns held
    assert after["control_met_share"] < 0.5  # turns nobody requested are not kept
    assert after["peak_pending"] == before["peak_pending"] == 500  # the cap holds either way
    assert after["kept_for_review_at_end"] == after["labels_of_requested_turns"]
