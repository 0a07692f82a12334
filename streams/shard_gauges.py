"""Gauges of the aggregates a worker owns by shard key, refreshed after each rebalance.

The aggregation stage's state is sharded by the key of the observations topic (a judge, ``humans``,
``review``...). After a rebalance a worker shows the figures of the shards it owns now, from its recovered
table, and stops showing those of shards another worker took over: a stale value (a vendor SLA breached)
would keep an alert firing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping

from detectors import AgreementTracker
from detectors.agreement_breakdown import AgreementBreakdown
from detectors.category_spikes import CategorySpikes
from streams.aggregate import Aggregator, key
from streams.labels import OTHER, UNKNOWN
from streams.metrics import Metrics
from streams.views.spikes import set_spike_active, slice_values
from streams.views.vendors import VENDOR_GAUGES

#: Gauges (Metrics attributes) set by the aggregates of one observations shard key (streams/join.py)
SHARD_GAUGES: dict[str, tuple[str, ...]] = {
    "humans": (
        "raters_alpha",
        "raters_fleiss_kappa",
        "raters_items",
        "raters_ties",
        "vendor_consensus_ratio",
        "vendor_gold_accuracy",
        "gold_items_suspect",
        *VENDOR_GAUGES,
        "live_intent_accuracy",
        "live_intent_ece",
    ),
    "review": ("review_expected_per_hour",),
}


def _judge(labels: dict[str, str]) -> str:
    return labels["judge_id"]


def _judge_or_humans_by_segment(labels: dict[str, str]) -> str:
    return "humans" if labels["segment"] == "vendor" else labels["judge_id"]  # per vendor: from labels


def _judge_or_humans_by_source(labels: dict[str, str]) -> str:
    return "humans" if labels["source"] == "human" else labels["judge_id"]


def _journey(labels: dict[str, str]) -> str:
    return labels["journey"]


#: Gauges of aggregates sharded by what their labels name (a judge's observations on the judge's shard, a
#: turn's on its journey's), and the shard key of a child given its labels
KEYED_GAUGES: dict[str, Callable[[dict[str, str]], str]] = {
    **dict.fromkeys(
        (
            "gwet_ac1",
            "agreement_bound",
            "window_agreement_ratio",
            "window_cohen_kappa",
            "window_gwet_ac1",
            "window_agreement_pairs",
            "judge_gold_accuracy",
            "judge_sensitivity",
            "judge_specificity",
            "judge_calibration_bound",
            "judge_ece",
            "calibrated_rate",
            "calibrated_rate_bound",
            "version_lift",
            "version_lift_bound",
            "version_decision",
            "version_p_value",
            "version_turns",
            "version_calibrated_lift",
            "version_calibrated_lift_bound",
            "version_calibrated_decision",
            "version_calibrated_p_value",
            "version_calibrated_turns",
            "perceptual_drift_statistic",
            "perceptual_drift_active",
        ),
        _judge,
    ),
    **dict.fromkeys(
        ("segment_agreement_ratio", "segment_cohen_kappa", "segment_gwet_ac1", "segment_agreement_pairs"),
        _judge_or_humans_by_segment,
    ),
    **dict.fromkeys(("guardrail_recall", "guardrail_precision"), _judge_or_humans_by_source),
    **dict.fromkeys(
        (
            "version_outcome_lift",
            "version_outcome_lift_bound",
            "version_outcome_decision",
            "version_outcome_p_value",
            "version_outcome_turns",
        ),
        _journey,
    ),
}


def clear_lost_children(metrics: Metrics, owns: Callable[[str], bool]) -> None:
    """Remove the children of :data:`KEYED_GAUGES` whose shard this worker does not own: the worker that owns
    it exports them, and a copy left here would show the old figure beside it. Children whose label was
    folded (``other``, ``unknown``) name no one shard and stay."""
    for name, shard_of in KEYED_GAUGES.items():
        gauge = getattr(metrics, name)
        names = gauge._labelnames
        for metric in gauge.collect():
            for sample in metric.samples:
                shard = shard_of(sample.labels)
                if shard in (OTHER, UNKNOWN) or owns(shard):
                    continue
                gauge.remove(*(sample.labels[n] for n in names))  # a gauge's child has one sample


def clear_lost_shards(metrics: Metrics, owns: Callable[[str], bool]) -> None:
    """Clear the gauges of single-shard aggregates (every human label; the review budget) whose shard key
    this worker does not own (``owns(shard_key)`` false): a labelled gauge loses its children, a gauge
    without labels (prometheus_client's ``clear`` leaves its value) is set to NaN, which Prometheus' ``max``
    and ``min`` skip and comparisons never satisfy."""
    for shard, names in SHARD_GAUGES.items():
        if not owns(shard):
            for name in names:
                gauge = getattr(metrics, name)
                if gauge._labelnames:
                    gauge.clear()
                else:
                    gauge.set(math.nan)


def export_agreement(
    metrics: Metrics, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool]
) -> None:
    """Agreement gauges from the aggregates at ``keys`` (the recovered table's), for the judges this worker
    owns only: a restarted worker shows its figures before new pairs arrive, a worker that lost them stops
    showing stale ones."""
    m = metrics
    for gauge in (m.agreement_ratio, m.cohen_kappa, m.agreement_pairs):
        gauge.clear()
    recovered = [(p, t) for p, t in aggregator.owned_detectors(keys, "agreement", owns) if len(p) == 2]
    # the judges with the newest pairs first: labelling a judge admits it to the fresh process's label guards,
    # and in the state's order the oldest judges took the room and the newest showed as other after a restart
    recovered.sort(key=lambda item: -_newest_pair(aggregator, *item[0]))
    for (judge_id, dimension), tracker in recovered:
        assert isinstance(tracker, AgreementTracker)
        # a judge past the guard's room (older than the newest 20, by default) goes unexported, not folded:
        # its figures are in report.json, and ConvowatchLabelValuesFolded is about new values only
        judge, dim = (
            m.guards["judge_id"].unless_folded(judge_id),
            m.guards["dimension"].unless_folded(dimension),
        )
        if judge is None or dim is None:
            continue
        labels = (judge, dim)
        m.agreement_ratio.labels(*labels).set(tracker.percent_agreement)
        m.cohen_kappa.labels(*labels).set(tracker.cohen_kappa)
        m.agreement_pairs.labels(*labels).set(tracker.n)


def _newest_pair(aggregator: Aggregator, judge_id: str, dimension: str) -> float:
    """The end of a judge and dimension's finest agreement window (its newest pair's time to the window's
    bucket: 5 minutes by default), or -inf."""
    breakdown = aggregator.detector(key("agreement_detail", judge_id, dimension))
    if not isinstance(breakdown, AgreementBreakdown) or not breakdown.windows:
        return -math.inf
    finest = min(breakdown.windows, key=lambda name: breakdown.windows[name][1])
    end = breakdown.window_bounds(finest)[1]
    return -math.inf if end is None else end


def export_spikes(
    metrics: Metrics,
    aggregator: Aggregator,
    keys: Iterable[str],
    owns: Callable[[str], bool],
    severity: Mapping[str, str],
) -> None:
    """``convowatch_defect_spike_active`` from the spike aggregates at ``keys`` whose source (a judge, or
    ``humans``) this worker owns: 1 for each category in alarm, with its ``severity`` (by category). A spike
    open on a shard another worker took over no longer shows here, and one recovered in alarm shows before
    its next observation. A category the taxonomy no longer has (a dimension moved to another) is not
    shown: nothing feeds its detector any more, so it would read 1 for good (and it raised KeyError in the
    rebalance handler, at every rebalance)."""
    metrics.spike_open.clear()
    for parts, spikes in aggregator.owned_detectors(keys, "spike", owns):
        source, values = slice_values(parts)
        assert isinstance(spikes, CategorySpikes)
        for category in spikes.in_alarm:
            if category in severity:
                set_spike_active(metrics, category, severity[category], source, values, True)
