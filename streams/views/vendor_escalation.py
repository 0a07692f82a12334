"""A vendor SLA breach as an escalation record (``streams/views/vendors.py`` publishes it): summary, status,
revision and evidence, with the scorecard's figures and, for gold accuracy, the golden turns the vendor
missed most recently."""

from __future__ import annotations

from typing import Any

from detectors.vendor_scorecard import Scorecard, VendorScorecard
from streams.emit import UNKNOWN_SEGMENT, iso
from streams.policy import escalation_id
from streams.vendor_sla import VendorSla, Verdict
from streams.views.agreement_report import finite_or_none
from streams.views.vendor_figures import describe, figures


def sla_escalation(
    sla: VendorSla,
    state: dict[str, Any],
    change: str,
    vendor: str,
    verdict: Verdict,
    scorecard: Scorecard,
    card: VendorScorecard,
    lapsed: bool = False,
    removed: bool = False,
) -> dict[str, Any]:
    """The escalation of ``vendor``'s SLA of ``verdict`` as ``state`` (:meth:`SlaStatus.status`) and its
    ``change`` (``firing``, ``updated``, ``resolved``) say, with the figures of ``scorecard``; its event
    time is the revision's (``published``). ``lapsed``: closed for want of evidence; ``removed``: closed
    for want of a target (``verdict`` judges nothing)."""
    assert card.watermark is not None
    severity = sla.severity
    subject = f"{vendor}|{verdict.sla}|{state['episode']}"
    if state.get("created") is not None:  # a target forgotten and judged again starts at episode 1 again
        subject += f"|{state['created']!r}"
    eid = escalation_id("vendor_sla", subject)
    if removed:
        summary = f"Vendor SLA breach closed: {vendor} has no {verdict.sla} target any more"
    elif lapsed and scorecard.labels == 0:
        summary = f"Vendor SLA breach closed: no labels from {vendor} in the window to judge {verdict.sla}"
    elif lapsed:
        summary = (
            f"Vendor SLA breach closed: too few samples from {vendor} in the window to judge {verdict.sla}"
        )
    elif change == "resolved":
        summary = f"Vendor SLA met again: {vendor} {describe(verdict)}"
    else:
        summary = f"Vendor SLA breach: {vendor} {describe(verdict)}"
    return {
        "schema_version": 1,
        "escalation_id": eid,
        "kind": "vendor_sla",
        "severity": severity,
        "status": "resolved" if change == "resolved" else "firing",
        "revision": state["revision"],
        "dimension": None,
        "segment": dict(UNKNOWN_SEGMENT),
        "event_time": iso(state["published"]),
        # the golden turns the vendor missed most recently (of the window's, at most 10), as they are now
        "turn_ids": card.missed_gold(vendor) if verdict.sla == "gold_accuracy" else [],
        "summary": summary,
        "evidence": {
            "vendor_id": vendor,
            "sla": verdict.sla,
            "value": finite_or_none(verdict.value),
            "target": finite_or_none(verdict.target),
            "samples": verdict.samples,
            **{k: finite_or_none(v) for k, v in verdict.detail.items()},
            "breached_since": iso(state["since"]),
            "closed_without_labels": lapsed and scorecard.labels == 0,
            "closed_without_evidence": lapsed,
            "closed_without_target": removed,
            "episode": state["episode"],
            "window_start": iso(card.window_start or card.watermark),
            "window_end": iso(card.watermark),
            "scorecard": figures(scorecard),
            "runbook_url": sla.runbook_url,
        },
    }
