"""Gauges of the aggregates a worker owns by shard key, refreshed after each rebalance.

The aggregation stage's state is sharded by the key of the observations topic (a judge, ``humans``,
``review``...). After a rebalance a worker shows the figures of the shards it owns now, from its recovered
table, and stops showing those of shards another worker took over: a stale value (a vendor SLA breached)
would keep an alert firing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from detectors import AgreementTracker
from detectors.category_spikes import CategorySpikes
from streams.aggregate import Aggregator
from streams.emit import SEP
from streams.metrics import Metrics
from streams.views.spikes import set_spike_active, spike_slice

#: Gauges (Metrics attributes) set by the aggregates of one observations shard key (streams/join.py)
SHARD_GAUGES: dict[str, tuple[str, ...]] = {
    "humans": (
        "raters_alpha",
        "raters_fleiss_kappa",
        "raters_items",
        "raters_ties",
        "vendor_consensus_ratio",
        "vendor_gold_accuracy",
        "vendor_labels_per_hour",
        "vendor_turnaround",
        "vendor_window_gold_accuracy",
        "vendor_window_judge_agreement",
        "vendor_window_consensus_agreement",
        "vendor_sla_breached",
    ),
    "review": ("review_expected_per_hour",),
}


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
    for key in keys:
        kind, *parts = key.split(SEP)
        if kind != "agreement" or len(parts) != 2:
            continue
        judge_id, dimension = parts
        if not owns(judge_id):
            continue
        tracker = aggregator.detector(key)
        assert isinstance(tracker, AgreementTracker)
        labels = (m.label("judge_id", judge_id), m.label("dimension", dimension))
        m.agreement_ratio.labels(*labels).set(tracker.percent_agreement)
        m.cohen_kappa.labels(*labels).set(tracker.cohen_kappa)
        m.agreement_pairs.labels(*labels).set(tracker.n)


def export_spikes(
    metrics: Metrics, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool]
) -> None:
    """``convowatch_defect_spike_active`` from the spike aggregates at ``keys`` whose source (a judge, or
    ``humans``) this worker owns: 1 for each category in alarm. A spike open on a shard another worker took
    over no longer shows here, and one recovered in alarm shows before its next observation."""
    metrics.spike_active.clear()
    for key in keys:
        if not key.startswith(f"spike{SEP}"):
            continue
        source, values = spike_slice(key)
        if not owns(source):
            continue
        spikes = aggregator.detector(key)
        assert isinstance(spikes, CategorySpikes)
        for category in spikes.in_alarm:
            set_spike_active(metrics, category, source, values, True)
