"""How a vendor's figures read: a scorecard as report.json and escalation evidence show it, and a verdict
as an escalation summary says it (``streams/views/vendors.py``)."""

from __future__ import annotations

import math
from typing import Any

from detectors.label_tally import Scorecard
from streams.vendor_sla import Verdict


def figures(card: Scorecard) -> dict[str, Any]:
    """A scorecard as report.json shows it: undefined figures are ``None``."""

    def finite(value: float) -> float | None:
        return value if math.isfinite(value) else None

    return {
        "labels": card.labels,
        "labels_per_hour": finite(card.labels_per_hour),
        "covered_seconds": card.covered_seconds,
        "turnaround_p50_seconds": finite(card.quantile(0.5)),
        "turnaround_p90_seconds": finite(card.quantile(0.9)),
        "turnaround_bounds_seconds": list(card.bounds),
        "turnaround_counts": list(card.histogram),
        "gold_correct": card.gold[0],
        "gold_total": card.gold[1],
        "gold_accuracy": finite(card.gold_accuracy),
        "judge_agreeing": card.judge[0],
        "judge_total": card.judge[1],
        "judge_agreement": finite(card.judge_agreement),
        "consensus_agreeing": card.consensus[0],
        "consensus_total": card.consensus[1],
        "consensus_agreement": finite(card.consensus_agreement),
    }


def describe(verdict: Verdict) -> str:
    """The verdict in words: the estimate, and the upper confidence bound a breach is judged by."""
    value, target, detail = verdict.value, verdict.target, verdict.detail

    def bound(shown: str) -> str:
        if "upper_bound" not in detail:  # not judged
            return ""
        return f", at most {shown} at {detail['confidence_level']:.0%} confidence"

    upper = detail.get("upper_bound", math.nan)
    if verdict.sla == "labels_per_hour":
        return f"delivers {value:.1f} labels per hour{bound(f'{upper:.1f}')} (target at least {target:g})"
    if verdict.sla == "turnaround":
        q = detail["quantile"]
        shown = "over " + _duration(target) if math.isinf(value) else _duration(value)
        within = f"; {detail['share_within']:.0%} within it{bound(f'{upper:.0%}')}" if verdict.samples else ""
        return f"p{q * 100:g} turnaround {shown} (target at most {_duration(target)}){within}"
    name = {
        "gold_accuracy": "gold accuracy",
        "judge_agreement": "agreement with the judges",
        "consensus_agreement": "agreement with the annotators' consensus",
    }[verdict.sla]
    items = f"{verdict.samples} items"
    if detail.get("records", verdict.samples) < verdict.samples:  # several to a label record
        items += (
            f" of {detail['records']:.0f} labels, worth {detail['effective_samples']:.0f} independent items"
        )
    return f"{name} {value:.1%} over {items}{bound(f'{upper:.1%}')} (target at least {target:.0%})"


def _duration(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 60:.0f} min"
