"""The ``perceptual_drift`` escalation of ``streams/views/perceptual.py``: its kind, severity and record,
firing, resolved, or closed without traffic (the view feeds the detectors and says when).
"""

from __future__ import annotations

from typing import Any

from detectors.score_drift import ScoreDrift
from streams.emit import UNKNOWN_SEGMENT, iso
from streams.policy import escalation_id

KIND = "perceptual_drift"
SEVERITY = "medium"


def drift_value(
    detector: ScoreDrift,
    where: tuple[str, str, str, str],
    ts: float,
    turn_id: str | None,
    firing: bool,
    silent: bool = False,
) -> dict[str, Any]:
    """The escalation of the drift of ``detector`` at ``where`` (judge, modality, model version, score),
    firing or resolved at event time ``ts`` by the turn ``turn_id`` (None: no turn), or closed at ``ts``
    because its scores stopped (``silent``)."""
    judge_id, modality, model_version, score = where
    episode = detector.n_alarms
    eid = escalation_id(KIND, f"{judge_id}|{modality}|{model_version}|{score}", detector.created)
    summary = detector.summary()
    ref, win = summary["reference"], summary["window"]
    what = f"{score} scores of {modality} outputs from {model_version} (judge {judge_id})"
    if firing:
        d = detector.statistic
        if d > detector.threshold:
            distance = f"KS distance {d:.3f} > {detector.threshold:.3f}"
        else:  # a later check's, sent again after a restart: open while above the resolve threshold
            distance = f"KS distance {d:.3f}, above the {detector.resolve_threshold:.3f} it ends at"
        text = (
            f"Perceptual drift: {what} no longer match their reference: {distance}; median "
            f"{ref['p50']:.3f} -> {win['p50']:.3f}, p05-p95 {ref['p05']:.3f}-{ref['p95']:.3f} -> "
            f"{win['p05']:.3f}-{win['p95']:.3f}"
        )
    elif silent:
        quiet = (ts - (detector.last_arrival or ts)) / 3600
        text = (
            f"Perceptual drift closed without traffic: no {what} for {quiet:.1f} h; KS distance "
            f"{detector.statistic:.3f} at the last test"
        )
    else:
        text = f"Perceptual drift over: {what} match their reference again (KS {detector.statistic:.3f})"
    value = {
        "schema_version": 1,
        "escalation_id": eid,
        "kind": KIND,
        "severity": SEVERITY,
        "status": "firing" if firing else "resolved",
        "revision": 2 * episode - (1 if firing else 0),
        "dimension": None,
        "segment": {**UNKNOWN_SEGMENT, "modality": modality, "model_version": model_version},
        "event_time": iso(ts),
        "turn_ids": [] if turn_id is None else [turn_id],
        "summary": text,
        "evidence": {
            "judge_id": judge_id,
            "score": score,
            "statistic": detector.statistic,
            "threshold": detector.threshold,
            "p_value": detector.p_value,
            "check_alpha": detector.check_alpha,
            "episode": episode,
            "scores_seen": detector.n,
            "reference": ref,
            "window": win,
            "closed_without_traffic": silent,
        },
    }
    return value
