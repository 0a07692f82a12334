"""A retired judge's agreement and calibration aggregates, dropped on the worker's clock, and their gauges.

A judge and dimension that has had no pair for ``idle_seconds`` of the worker's clock
(:class:`~streams.views.worker_clock.WorkerClock`) before the start of the look, and that its view does not
count as ``heard`` (the judge's verdicts on it, their newest time stamped into its breakdown:
``streams/views/agreement_heard.py``), loses its pair
aggregates, ``agreement``, ``agreement_detail`` and ``calibration`` (shard: the judge), and every gauge of
theirs; its ``agreement_vendor`` aggregate (shard: ``humans``) goes once it has had no label for as long.
Its newest pair is read from its breakdown (the newest turn time its segment values hold). Until 2026-11-26
these stayed for good: the cumulative figures had no idle rule, and the breakdowns' looked at the judge's own
pairs, which a retired judge never sends; ``ConvowatchJudgeAgreementLow`` of a judge replaced for disagreeing
with humans kept firing, and a restart exported its 198 series again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from detectors.agreement_breakdown import AgreementBreakdown
from streams.aggregate import Aggregator, key
from streams.metrics import Metrics
from streams.views.spike_silence import source_partition

#: The aggregates of a judge and dimension's pairs (shard: the judge), ``agreement_detail`` the one read.
PAIR_KINDS = ("agreement_detail", "agreement", "calibration")
#: Gauges (Metrics attributes) of a judge and dimension's pair aggregates, labelled ``judge_id`` and
#: ``dimension``
PAIR_GAUGES = (
    "agreement_ratio",
    "cohen_kappa",
    "agreement_pairs",
    "gwet_ac1",
    "agreement_bound",
    "window_agreement_ratio",
    "window_cohen_kappa",
    "window_gwet_ac1",
    "window_agreement_pairs",
    "judge_sensitivity",
    "judge_specificity",
    "judge_ece",
    "judge_calibration_bound",
)
#: Gauges of the figures per segment value (``segment``, ``segment_value``; the vendor's are ``humans``')
SEGMENT_GAUGES = (
    "segment_agreement_ratio",
    "segment_cohen_kappa",
    "segment_gwet_ac1",
    "segment_agreement_pairs",
)


def drop_unheard(
    aggregator: Aggregator,
    owners: set[tuple[str, str]],
    kinds: tuple[str, ...],
    shard: str | None,
    look: float,
    idle_seconds: float,
    heard: Callable[[tuple[str, str], AgreementBreakdown], bool] = lambda jd, breakdown: False,
) -> list[tuple[str, str]]:
    """Delete the aggregates ``kinds`` of each judge and dimension of ``owners`` whose breakdown (at
    ``kinds[0]``) holds no pair at or after ``look - idle_seconds``, unless it is ``heard`` (its judge still
    judges the dimension: told from the verdict times its breakdown is stamped with), each to the changelog
    partition of its shard (``shard``, or the judge); those dropped, which leave ``owners``, as do those this
    worker holds no breakdown of (dropped, or a shard moved away). A breakdown from before turn times were
    kept (2026-11-26) is stamped ``look`` (written so): idle from then on."""
    dropped = []
    for jd in sorted(owners):
        at = key(kinds[0], *jd)
        breakdown = aggregator.detector(at)
        if not isinstance(breakdown, AgreementBreakdown):
            owners.discard(jd)
            continue
        partition = source_partition(aggregator, shard or jd[0])
        if not breakdown.timed:
            aggregator.change(at, partition, lambda b: b.drop_idle(look, idle_seconds))
            continue
        newest = breakdown.last_seen
        if (newest is None or newest < look - idle_seconds) and not heard(jd, breakdown):
            for kind in kinds:
                if aggregator.detector(key(kind, *jd)) is not None:
                    aggregator.delete(key(kind, *jd), partition)
            owners.discard(jd)
            dropped.append(jd)
    return dropped


def remove_pair_gauges(metrics: Metrics, jd: tuple[str, str], segments: Iterable[str]) -> None:
    """Remove the children of :data:`PAIR_GAUGES` of judge and dimension ``jd``, and of
    :data:`SEGMENT_GAUGES` of its ``segments`` (their series budget freed)."""
    labels = {"judge_id": jd[0], "dimension": jd[1]}
    for name in PAIR_GAUGES:
        getattr(metrics, name).remove_by_labels(labels)
    for segment in segments:
        remove_segment_gauges(metrics, jd, segment)


def remove_segment_gauges(
    metrics: Metrics, jd: tuple[str, str], segment: str, value: str | None = None
) -> None:
    """Remove the children of :data:`SEGMENT_GAUGES` of judge and dimension ``jd``'s ``segment`` (its
    ``value`` only, if given)."""
    labels = {"judge_id": jd[0], "dimension": jd[1], "segment": segment}
    if value is not None:
        labels["segment_value"] = value
    for name in SEGMENT_GAUGES:
        getattr(metrics, name).remove_by_labels(labels)
