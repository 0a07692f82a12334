"""The agreement view's gauges: a judge and dimension's interval figures, its windows' and its segment values'
(``streams/views/agreement.py`` decides when; the cumulative ones it sets on each pair)."""

from __future__ import annotations

from collections.abc import Callable

from detectors import AgreementStats
from detectors.agreement_breakdown import AgreementBreakdown
from streams.labels import OTHER, UNKNOWN
from streams.metrics import Metrics

#: Metric label guard of each segment (``streams.metrics.Metrics.guards``).
SEGMENT_GUARDS = {
    "journey": "journey",
    "intent": "intent",
    "model_version": "model_version",
    "channel": "channel",
    "modality": "modality",
    "vendor": "vendor_id",
    "judge_version": "judge_version",
}


def export_overall(metrics: Metrics, stats: AgreementStats, labels: tuple[str, str]) -> None:
    """AC1 and the intervals of a judge and dimension (``labels``: their metric label values)."""
    summary = stats.summary()
    metrics.gwet_ac1.labels(*labels).set(summary["gwet_ac1"])
    for statistic in ("percent_agreement", "cohen_kappa", "gwet_ac1"):
        low, high = summary[f"{statistic}_interval"]
        metrics.agreement_bound.labels(*labels, statistic, "lower").set(low)
        metrics.agreement_bound.labels(*labels, statistic, "upper").set(high)


def export_windows(metrics: Metrics, breakdown: AgreementBreakdown, labels: tuple[str, str]) -> None:
    """The figures of each window ``breakdown`` was created with (the setting may change since)."""
    for name in breakdown.windows:
        window = breakdown.window(name)
        metrics.window_agreement_ratio.labels(*labels, name).set(window.percent_agreement)
        metrics.window_cohen_kappa.labels(*labels, name).set(window.cohen_kappa)
        metrics.window_gwet_ac1.labels(*labels, name).set(window.gwet_ac1)
        metrics.window_agreement_pairs.labels(*labels, name).set(window.n)


def export_segment(
    metrics: Metrics,
    labels: tuple[str, str],
    name: str,
    value: str,
    stats: AgreementStats,
    label_of: Callable[[str, str | None], str] | None = None,
) -> None:
    """The figures of segment ``name``'s ``value``, unless the metric guard (``label_of``, by default
    ``metrics.label``) or the aggregate fold it into ``other``: report.json only."""
    label = (label_of or metrics.label)(SEGMENT_GUARDS[name], None if value == UNKNOWN else value)
    if label != value or value == OTHER:
        return
    series = (*labels, name, label)
    metrics.segment_agreement_ratio.labels(*series).set(stats.percent_agreement)
    metrics.segment_cohen_kappa.labels(*series).set(stats.cohen_kappa)
    metrics.segment_gwet_ac1.labels(*series).set(stats.gwet_ac1)
    metrics.segment_agreement_pairs.labels(*series).set(stats.n)
