"""Views of the aggregation stage: each keeps one family of aggregates (see ``streams.aggregate``)."""

from __future__ import annotations

from streams.aggregate import View
from streams.config import Settings
from streams.golden import load_golden
from streams.metrics import Metrics
from streams.taxonomy import Taxonomy
from streams.views.agreement import AgreementView
from streams.views.calibration import CalibrationView
from streams.views.drift import JudgeDriftView
from streams.views.gold import GoldView
from streams.views.label_flow import LabelFlowView
from streams.views.live_model import LiveModelView
from streams.views.ppi import DefectRateView
from streams.views.raters import RatersView
from streams.views.spikes import SpikeView
from streams.views.traffic import TrafficView
from streams.views.versions import VersionView


def default_views(settings: Settings, metrics: Metrics, taxonomy: Taxonomy) -> list[View]:
    return [
        AgreementView(
            metrics,
            windows=settings.agreement_windows,
            refresh_every=settings.divergence_refresh_every,
            refresh_seconds=settings.divergence_refresh_seconds,
        ),
        JudgeDriftView(metrics),
        TrafficView(metrics),
        SpikeView(
            metrics,
            taxonomy,
            false_alarms_per_day=settings.spike_false_alarms_per_day,
            turns_per_day=settings.spike_turns_per_day,
        ),
        *divergence_views(settings, metrics),
        VersionView(
            metrics,
            horizon_seconds=settings.version_horizon_seconds,
            alpha=settings.version_alpha,
            tau2=settings.version_tau2,
            min_samples=settings.version_min_samples,
        ),
    ]


def divergence_views(settings: Settings, metrics: Metrics) -> list[View]:
    """Humans, judges and the live model against each other (besides ``AgreementView``)."""
    every, seconds = settings.divergence_refresh_every, settings.divergence_refresh_seconds
    return [
        RatersView(metrics, every, seconds),
        GoldView(metrics, load_golden(settings.golden)),
        CalibrationView(metrics, every, seconds),
        DefectRateView(metrics, every, seconds),
        LiveModelView(metrics, every, seconds),
        LabelFlowView(metrics),
    ]
