"""report.json's agreement rows (``streams/views/agreement.py``'s aggregates), and the helpers other views'
rows share: every figure of an :class:`~detectors.AgreementStats`, NaN as ``None``, intervals as
``[low, high]``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from detectors import AgreementStats, AgreementTracker
from detectors.agreement_breakdown import AgreementBreakdown
from streams.aggregate import Aggregator, key
from streams.emit import iso


def agreement_rows(aggregator: Aggregator) -> list[dict[str, Any]]:
    """One row per judge and dimension, sorted; undefined figures are ``None``. Windows are as of the newest
    turn time of the judge and dimension (they do not depend on the order pairs arrived in)."""
    rows = []
    for (judge_id, dimension), tracker in aggregator.items("agreement"):
        assert isinstance(tracker, AgreementTracker)
        row: dict[str, Any] = {
            "judge_id": judge_id,
            "dimension": dimension,
            "segment": None,
            "segment_value": None,
            "n": tracker.n,
            "percent_agreement": finite_or_none(tracker.percent_agreement),
            "cohen_kappa": finite_or_none(tracker.cohen_kappa),
            "confusion": tracker.confusion,
        }
        breakdown = aggregator.detector(key("agreement_detail", judge_id, dimension))
        if isinstance(breakdown, AgreementBreakdown):
            row |= {k: v for k, v in stats_row(breakdown.overall()).items() if k not in row}
            row["windows"] = {
                name: {
                    "start": iso_or_none(breakdown.window_bounds(name)[0]),
                    "end": iso_or_none(breakdown.window_bounds(name)[1]),
                    **stats_row(breakdown.window(name)),
                }
                for name in breakdown.windows
            }
        rows.append(row)
    return rows


def segment_rows(aggregator: Aggregator) -> list[dict[str, Any]]:
    """One row per judge, dimension, segment and value (vendor rows: the judge against each annotator's own
    label), sorted."""
    rows = []
    for prefix in ("agreement_detail", "agreement_vendor"):
        for (judge_id, dimension), breakdown in aggregator.items(prefix):
            assert isinstance(breakdown, AgreementBreakdown)
            for name in breakdown.segments:
                for value, stats in breakdown.segment(name).items():
                    rows.append(
                        {
                            "judge_id": judge_id,
                            "dimension": dimension,
                            "segment": name,
                            "segment_value": value,
                            **stats_row(stats),
                        }
                    )
    rows.sort(key=lambda r: (r["judge_id"], r["dimension"], r["segment"], r["segment_value"]))
    return rows


def stats_row(stats: AgreementStats) -> dict[str, Any]:
    """Every figure of ``stats`` for report.json: NaN becomes ``None``, intervals ``[low, high]``."""
    summary = stats.summary()
    return {
        "n": stats.n,
        "percent_agreement": finite_or_none(summary["percent_agreement"]),
        "percent_agreement_interval": interval_or_none(summary["percent_agreement_interval"]),
        "cohen_kappa": finite_or_none(summary["cohen_kappa"]),
        "cohen_kappa_interval": interval_or_none(summary["cohen_kappa_interval"]),
        "gwet_ac1": finite_or_none(summary["gwet_ac1"]),
        "gwet_ac1_interval": interval_or_none(summary["gwet_ac1_interval"]),
        "confusion": stats.confusion,
    }


def finite_or_none(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def interval_or_none(bounds: Iterable[float]) -> list[float] | None:
    """``[low, high]``, or ``None`` when undefined."""
    low, high = bounds
    return [low, high] if math.isfinite(low) and math.isfinite(high) else None


def iso_or_none(ts: float | None) -> str | None:
    return None if ts is None else iso(ts)
