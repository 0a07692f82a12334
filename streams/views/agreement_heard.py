"""Whether a judge still judges a dimension: its newest verdict time, heard and stamped into state.

The agreement view drops a judge and dimension's figures once it has had no pair and no verdict on the
dimension for ``idle_seconds`` of the worker's clock (``AgreementView._drop_unheard``). Its pairs' newest turn
time is in its ``agreement_detail`` breakdown; its verdicts (``judged`` observations, whose shard, the judge,
is its pairs' and so its breakdown's on Kafka too) are heard here, and their newest time is stamped into that
breakdown (:meth:`~detectors.agreement_breakdown.AgreementBreakdown.hear`, through ``Aggregator.change``, so
to the changelog) by the first verdict at least a look period (``every``: ``idle_seconds /
SWEEPS_PER_IDLE``, a day) newer than the stamp: one write per judge and dimension per day of verdicts, never
one per verdict.

How stale a stamp can be: a verdict newer than the stamp by less than ``every`` leaves it be, and those heard
before a restart or rebalance are lost with the worker's memory, so after one the newest verdict may be up to
``every`` newer than the stamp. A stamp therefore counts as heard ``every`` after its time, never before the
newest verdict: a restart never hastens a drop (it may come up to a day after the 30 days). Stamping at the
daily look instead would lose the verdicts between the look and a restart however much newer than the stamp (a
judge judging again after weeks), and hasten that judge's drop. Until 2026-11-26 verdicts were kept in memory
only, and after each start every judge counted as heard at the first verdict or contact since: a fleet
restarted or rebalanced more often than every 30 days never dropped a retired judge's figures.

A breakdown without a stamp (state from before 2026-11-26, or one made by a pair since the start before any
verdict or contact) counts, as before, as heard at the first verdict or contact since the start (not a
label's: its turn may be old), or at the look until one comes, and is stamped so at its next pair, verdict or
look once one has come: from the start it was recovered at, not from each later one. Not before one: a look
then stands at a label's or pair's turn, which may be old, and a stamp of it dropped a judge still judging at
the next look (found by review, 2026-11-26).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from detectors.agreement_breakdown import AgreementBreakdown
from streams.aggregate import Aggregator, key
from streams.views.idle_looks import IDLE_SECONDS, SWEEPS_PER_IDLE
from streams.views.spike_silence import source_partition

JudgeDimension = tuple[str, str]
#: In :attr:`VerdictsHeard._stamps`: a breakdown without a stamp (any verdict stamps it), and no breakdown
#: (nothing to stamp)
UNSTAMPED, NO_BREAKDOWN = -math.inf, math.inf


def counted_heard_at(stamp: float, idle_seconds: float = IDLE_SECONDS) -> float:
    """When a judge and dimension whose breakdown is stamped ``stamp`` counts as last heard: a look period
    (``idle_seconds / SWEEPS_PER_IDLE``) after it, as a newer verdict by less than that may be lost with a
    restart.

    >>> counted_heard_at(0.0) / 86400
    1.0
    """
    return stamp + idle_seconds / SWEEPS_PER_IDLE


class VerdictsHeard:
    """Each judge and dimension's newest verdict since the start, and its breakdown's stamp of it.

    >>> from prometheus_client import CollectorRegistry
    >>> from streams.metrics import Metrics
    >>> aggregator, day = Aggregator(Metrics(CollectorRegistry())), 86400.0
    >>> at = key("agreement_detail", "judge-a", "safety")
    >>> aggregator.store.put(at, {"detector": AgreementBreakdown().to_dict(), "applied": {}}, None)
    >>> verdicts = VerdictsHeard(idle_seconds=30 * day)
    >>> for hours in range(0, 49, 6):  # a verdict every 6 hours: stamped once a day of them
    ...     verdicts.heard(aggregator, "judge-a", ["safety"], hours * 3600.0, None)
    >>> aggregator.flush(), aggregator.detector(at).heard / day
    (1, 2.0)
    >>> verdicts.forget()  # a restart: the stamp counts as heard a day after it
    >>> verdicts.heard_at(("judge-a", "safety"), 2 * day, look=5 * day) / day
    3.0
    """

    def __init__(self, idle_seconds: float) -> None:
        self.idle_seconds = idle_seconds
        self.every = idle_seconds / SWEEPS_PER_IDLE
        self._newest: dict[JudgeDimension, float] = {}
        # the first verdict or contact since the start or rebalance (not a label's: its turn may be old)
        self._since: float | None = None
        # each judge and dimension's breakdown's stamp, as read or written since the start
        self._stamps: dict[JudgeDimension, float] = {}

    def heard(
        self,
        aggregator: Aggregator,
        judge_id: str,
        dimensions: Iterable[str],
        ts: float,
        partition: int | None,
    ) -> None:
        """A verdict of ``judge_id`` on ``dimensions`` of a turn at ``ts``: stamped into a dimension's
        breakdown if it is a period newer than the stamp."""
        self.contact(ts)
        newest, stamps = self._newest, self._stamps
        for dimension in dimensions:
            jd = (judge_id, dimension)
            if ts > newest.get(jd, -math.inf):
                newest[jd] = ts
            stamp = stamps.get(jd)
            if stamp is None:
                stamp = stamps[jd] = self._read(aggregator, jd)
            if ts >= stamp + self.every:
                self._stamp(aggregator, jd, stamp, ts, partition)

    def contact(self, ts: float) -> None:
        """An observation that starts the count of an unstamped breakdown, the first since the start."""
        if self._since is None:
            self._since = ts

    def paired(self, jd: JudgeDimension, breakdown: AgreementBreakdown) -> None:
        """``jd``'s breakdown took a pair (written with it): stamped if it has no stamp, as at a look."""
        if breakdown.heard is None and self._since is not None:
            breakdown.hear(max(self._newest.get(jd, -math.inf), self._since))
        self._stamps[jd] = UNSTAMPED if breakdown.heard is None else breakdown.heard

    def heard_at(self, jd: JudgeDimension, stamp: float | None, look: float) -> float:
        """The time ``jd``, whose breakdown holds ``stamp``, counts as last heard at the look starting at
        ``look``: the stamp's period after it, or without one the first verdict or contact since the start
        (the look, before one), or a newer verdict heard since the start."""
        counted = self._fallback(look) if stamp is None else counted_heard_at(stamp, self.idle_seconds)
        return max(self._newest.get(jd, -math.inf), counted)

    def looked(self, aggregator: Aggregator, kept: Iterable[JudgeDimension], look: float) -> None:
        """After the look starting at ``look``: stamp the breakdowns of ``kept`` without a stamp with the
        first verdict or contact since the start, once one has come, and forget verdicts too old to keep
        anything at the looks to come."""
        before = look - self.idle_seconds
        self._newest = {jd: ts for jd, ts in self._newest.items() if ts >= before}
        stamps = self._stamps
        for jd in kept:
            stamp = stamps.get(jd)
            if stamp is None:
                stamp = stamps[jd] = self._read(aggregator, jd)
            if stamp == UNSTAMPED and self._since is not None:  # not at a label's or pair's old turn
                self._stamp(aggregator, jd, stamp, self._since, source_partition(aggregator, jd[0]))

    def dropped(self, jd: JudgeDimension) -> None:
        self._stamps.pop(jd, None)

    def forget(self) -> None:
        """After a start or rebalance: verdicts are heard, and stamps read, afresh."""
        self._newest.clear()
        self._stamps.clear()
        self._since = None

    def _fallback(self, look: float) -> float:
        return self._since if self._since is not None else look

    def _read(self, aggregator: Aggregator, jd: JudgeDimension) -> float:
        breakdown = aggregator.detector(key("agreement_detail", *jd))
        if not isinstance(breakdown, AgreementBreakdown):
            return NO_BREAKDOWN
        return UNSTAMPED if breakdown.heard is None else breakdown.heard

    def _stamp(
        self, aggregator: Aggregator, jd: JudgeDimension, stamp: float, ts: float, partition: int | None
    ) -> None:
        """Stamp ``jd``'s breakdown (``stamp``: its stamp) with the newest of ``ts`` and the verdicts heard,
        and, if it has none, the first verdict or contact since the start."""
        value = max(ts, self._newest.get(jd, -math.inf), stamp if stamp != UNSTAMPED else self._fallback(ts))
        changed = aggregator.change(key("agreement_detail", *jd), partition, lambda b: b.hear(value))
        heard = changed.heard if isinstance(changed, AgreementBreakdown) else None
        self._stamps[jd] = NO_BREAKDOWN if heard is None else heard
