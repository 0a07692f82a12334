"""An agreement breakdown keeps the newest time its owner heard the judge (``hear``) through its state, and
state written until 2026-11-26, without it, still loads."""

from __future__ import annotations

import json

from detectors.agreement_breakdown import AgreementBreakdown


def _breakdown() -> AgreementBreakdown:
    breakdown = AgreementBreakdown(segments=["journey"], windows={"1h": [3600, 300]})
    return breakdown.update(100.0, {"journey": "shopper"}, "pass", "fail")


def test_the_stamp_survives_a_json_round_trip_and_only_moves_forward() -> None:
    breakdown = _breakdown().hear(5000.0).hear(200.0)
    restored = AgreementBreakdown.from_dict(json.loads(json.dumps(breakdown.to_dict())))
    assert restored.heard == 5000.0
    assert restored.to_dict() == breakdown.to_dict()


def test_state_without_the_stamp_loads_unstamped_and_keeps_counting() -> None:
    old = _breakdown().to_dict()
    del old["state"]["_heard"]  # as written until 2026-11-26
    restored = AgreementBreakdown.from_dict(json.loads(json.dumps(old)))
    assert restored.heard is None and restored.last_seen == 100.0
    restored.update(200.0, {"journey": "shopper"}, "pass", "pass").hear(300.0)
    assert restored.n == 2 and restored.heard == 300.0
