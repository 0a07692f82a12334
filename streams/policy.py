"""The high-risk policy: which single failures escalate at once, as one escalation per turn.

By default a ``safety`` or ``bias`` fail (``high_risk`` in the taxonomy), or any failing dimension on a
turn whose ``risk_topics`` include a high-risk topic (earnings, identity, fraud), from the judge or a human.
A later verdict or label on the same turn updates the escalation: same ``escalation_id``, next revision. A
human label on one of its dimensions adds to its evidence (:func:`human_review`), and once humans have
passed every dimension only judges failed, the escalation resolves (:func:`overturned`); a later fail of a
dimension not so passed fires it again.

The judges' share of it (:func:`judged_high_risk_fails`) is what review sampling always requests, so what
makes 1 the inclusion probability of the turn's labels: the join decides it with the escalation and publishes
it on the turn's observations (``streams/join_observations.py``); the views read it there.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

from schemas.common import FAIL, PASS, QUALITY_DIMENSIONS
from streams.emit import UNKNOWN_SEGMENT, Emit, Entry, iso
from streams.metrics import Metrics
from streams.taxonomy import SEVERITIES, Taxonomy

#: An overturn counts in ``convowatch_escalations_overturned_total`` only this long (event time) after its
#: escalation fired: the backstop ConvowatchHighRiskEscalations subtracts the overturns of its 5-minute
#: window from the escalations of it, and an overturn of an older escalation (which paged already, or was
#: muted by its alert) would cancel a new one of the same severity, which then never paged.
OVERTURN_BACKSTOP_SECONDS = 300.0


def escalation_id(kind: str, subject: str, created: float | None = None) -> str:
    """Stable id of an escalation about ``subject``: re-delivery and updates keep it. ``created``: the event
    time the detector that counts the subject's episodes was created at, where it recorded one. A detector
    dropped when idle and made again counts from episode 1 again, and without it its first alarm had the id
    of the dropped one's first, long resolved; detectors from state written until 2026-11-26 have none,
    and keep the ids they had.

    >>> subject = "judge-a|safety|*|1"
    >>> escalation_id("judge_drift", subject), escalation_id("judge_drift", subject, 5.0)
    ('judge_drift-6acf2183b64d7300c216', 'judge_drift-d915ef59b859d662aeb3')
    """
    if created is not None:
        subject = f"{subject}|{created!r}"
    return f"{kind}-{hashlib.blake2b(subject.encode(), digest_size=10).hexdigest()}"


def high_risk_failure(taxonomy: Taxonomy, dimension: str, label: str, risky_turn: bool) -> bool:
    """Whether ``label`` on ``dimension`` makes its turn a high-risk failure: a fail of a quality dimension
    the taxonomy marks ``high_risk``, or of any quality dimension on a turn about a high-risk topic
    (``risky_turn``). The one copy of the rule."""
    return (
        label == FAIL
        and dimension in QUALITY_DIMENSIONS
        and (risky_turn or taxonomy.policy(dimension).high_risk)
    )


def judged_high_risk_fails(triggers: list[list[str]]) -> list[str]:
    """The dimensions, sorted, of the judges' failures among a turn's high-risk ``triggers``: what review
    sampling always requests (a human's failure was reviewed by a human already)."""
    return sorted({dim for source, _, dim in triggers if source == "judge"})


def judged_high_risk_fails_of(
    taxonomy: Taxonomy, judges: Iterable[Mapping[str, str]], risky_turn: bool
) -> list[str]:
    """:func:`judged_high_risk_fails` of a turn from its judges' labels (dimension -> label, one mapping per
    judge) as an observation carries them: for an observation of a join from before it carried the decision.
    """
    return sorted(
        {
            dim
            for labels in judges
            for dim, label in labels.items()
            if high_risk_failure(taxonomy, dim, label, risky_turn)
        }
    )


def human_review(entry: Entry, triggers: list[list[str]]) -> dict[str, dict[str, int]]:
    """Per dimension of ``triggers`` that humans labelled on the turn (``entry``): how many of their labels
    pass and how many fail, as an escalation's evidence shows them (``human_review``)."""
    dims = {dim for _, _, dim in triggers}
    review: dict[str, dict[str, int]] = {}
    for record in entry["human"].values():
        for dim, label in record["labels"].items():
            if dim in dims:
                counts = review.setdefault(dim, {PASS: 0, FAIL: 0})
                counts[label] += 1
    return dict(sorted(review.items()))


def overturned(triggers: list[list[str]], review: dict[str, dict[str, int]]) -> bool:
    """Whether human review overturns a high-risk failure: only judges fail it (a human's fail would be a
    trigger), and humans labelled each of its dimensions, every label a pass."""
    return all(source == "judge" for source, _, _ in triggers) and all(
        dim in review and review[dim][PASS] > 0 and review[dim][FAIL] == 0 for _, _, dim in triggers
    )


class HighRiskPolicy:
    def __init__(self, taxonomy: Taxonomy, metrics: Metrics) -> None:
        self.taxonomy = taxonomy
        self.metrics = metrics

    def triggers(self, entry: Entry, failures: list[Any]) -> list[list[str]]:
        """The ``failures`` (``TurnOutputs.failures``) that make ``entry`` a high-risk failure, sorted:
        [source, source id, dimension] of each fail on a high-risk dimension, or of any on a turn about a
        high-risk topic."""
        turn = entry["turn"]
        risky_turn = bool(turn and turn["risk"])
        return sorted(
            [source, source_id, dim]
            for source, source_id, dim, _ in failures
            if high_risk_failure(self.taxonomy, dim, FAIL, risky_turn)
        )

    def evaluate(self, turn_id: str, entry: Entry, triggers: list[list[str]]) -> list[Emit]:
        """The escalation to (re-)publish for ``entry`` with its :meth:`triggers`, if they, its known segment
        or the :func:`human_review` of its dimensions changed (``review`` is absent from the state of an
        entry written before 2026-11-26: no review published)."""
        turn = entry["turn"]
        if not triggers:
            return []
        review = human_review(entry, triggers)
        state = entry["esc"] or {"rev": 0, "triggers": [], "segment_known": False}
        if (
            state["triggers"] == triggers
            and state["segment_known"] == (turn is not None)
            and state.get("review", {}) == review
        ):
            return []
        esc = entry["esc"] = {
            "rev": state["rev"] + 1,
            "triggers": triggers,
            "segment_known": turn is not None,
            "review": review,
        }
        value = self.escalation(turn_id, entry)
        self._count(state, esc, value, _newest_ts(entry))
        return [Emit("escalations", value["escalation_id"], value)]

    def _count(self, state: dict[str, Any], esc: dict[str, Any], value: dict[str, Any], now: float) -> None:
        """Count the escalation (``value``, its state ``esc`` after ``state``, at event time ``now``) when it
        first fires, and when human review first resolves it within :data:`OVERTURN_BACKSTOP_SECONDS` of
        that, with the severity it was counted with: the backstop ConvowatchHighRiskEscalations pages for
        those counted and not overturned. Once each, in the entry's state, so a replay counts neither again.
        """
        # one whose judges' fail humans had passed already comes resolved (an entry written before ``fired``
        # was kept fired at its first revision; one written before ``fired_severity`` takes the current one)
        fired = bool(state.get("fired", state["rev"] > 0))
        fired_at = state.get("fired_at")  # event time; None in an entry written before it was kept
        severity = state.get("fired_severity", value["severity"])
        if value["status"] == "firing" and not fired:
            self.metrics.escalations.labels("high_risk_failure", severity).inc()
            fired_at = now
        was_firing = state["rev"] > 0 and not overturned(state["triggers"], state.get("review", {}))
        counted = bool(state.get("overturn_counted"))
        if value["status"] == "resolved" and was_firing and not counted:
            counted = True  # decided once, whether it counts or not
            if fired_at is not None and now - fired_at <= OVERTURN_BACKSTOP_SECONDS:
                self.metrics.escalations_overturned.labels("high_risk_failure", severity).inc()
        esc["fired"] = fired or value["status"] == "firing"
        if esc["fired"]:
            esc["fired_severity"] = severity
        if fired_at is not None:
            esc["fired_at"] = fired_at
        if counted:
            esc["overturn_counted"] = True

    def escalation(self, turn_id: str, entry: Entry) -> dict[str, Any]:
        """The escalation of ``entry`` as its latest revision published it (``entry["esc"]`` set)."""
        turn = entry["turn"]
        risky_turn = bool(turn and turn["risk"])
        triggers = entry["esc"]["triggers"]
        review = entry["esc"].get("review", {})
        resolved = overturned(triggers, review)
        dims = sorted({t[2] for t in triggers})
        primary = min(dims, key=self._priority)  # the dimension the alert is labelled and routed by
        severity = self.taxonomy.policy(primary).severity
        if risky_turn and severity in ("medium", "low"):
            severity = "high"
        segment = turn["segment"] if turn else UNKNOWN_SEGMENT
        sources = ", ".join(f"{s} {i} says {d} fails" for s, i, d in triggers)
        topics = f" about {'/'.join(turn['risk'])}" if risky_turn else ""
        outcome = "; overturned by human review, every label a pass" if resolved else ""
        evidence: dict[str, Any] = {
            "dimensions": dims,
            "triggers": triggers,
            "human_review": review,
            "risk_topics": turn["risk"] if turn else [],
            "runbook_url": self.taxonomy.policy(primary).runbook_url,
        }
        if resolved:
            evidence["resolution"] = "overturned_by_human_review"
        return {
            "schema_version": 1,
            "escalation_id": escalation_id("high_risk_failure", turn_id),
            "kind": "high_risk_failure",
            "severity": severity,
            "status": "resolved" if resolved else "firing",
            "revision": entry["esc"]["rev"],
            "dimension": primary,
            "segment": dict(segment),
            "event_time": iso(turn["ts"] if turn else min(self._source_ts(entry, t) for t in triggers)),
            "turn_ids": [turn_id],
            "summary": f"High-risk failure on turn {turn_id}{topics}: {sources}{outcome}",
            "evidence": evidence,
        }

    def _priority(self, dimension: str) -> tuple[int, bool, str]:
        """Most severe first, then high-risk before not, then by name."""
        policy = self.taxonomy.policy(dimension)
        return SEVERITIES.index(policy.severity), not policy.high_risk, dimension

    @staticmethod
    def _source_ts(entry: Entry, trigger: list[str]) -> float:
        source, source_id, _ = trigger
        return float(entry["judge" if source == "judge" else "human"][source_id]["ts"])


def _newest_ts(entry: Entry) -> float:
    """The event time of the newest record of ``entry``, the one being joined among them (its ``last`` is
    moved only once the event went through)."""
    newest = float(entry["last"])
    if entry["turn"] is not None:
        newest = max(newest, float(entry["turn"]["ts"]))
    for group in (entry["judge"], entry["human"]):
        for record in group.values():
            newest = max(newest, float(record["ts"]))
    return newest
