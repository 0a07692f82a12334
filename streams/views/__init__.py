"""Views of the aggregation stage: each keeps one family of aggregates (see ``streams.aggregate``)."""

from __future__ import annotations

from streams.aggregate import View
from streams.config import Settings
from streams.golden import load_golden
from streams.metrics import Metrics
from streams.taxonomy import Taxonomy
from streams.vendor_sla import load_vendor_sla
from streams.views.agreement import AgreementView
from streams.views.calibration import CalibrationView
from streams.views.drift import JudgeDriftView
from streams.views.gold import GoldView
from streams.views.label_flow import LabelFlowView
from streams.views.live_model import LiveModelView
from streams.views.outcomes import OutcomeView
from streams.views.perceptual import PerceptualView
from streams.views.ppi import DefectRateView
from streams.views.raters import RatersView
from streams.views.review import ReviewView
from streams.views.spikes import SpikeView
from streams.views.traffic import TrafficView
from streams.views.vendors import VendorsView
from streams.views.version_calibrated import VersionCalibratedView
from streams.views.version_outcomes import VersionOutcomeView
from streams.views.versions import VersionView


def default_views(settings: Settings, metrics: Metrics, taxonomy: Taxonomy) -> list[View]:
    return [
        AgreementView(
            metrics,
            windows=settings.agreement_windows,
            refresh_every=settings.divergence_refresh_every,
            refresh_seconds=settings.divergence_refresh_seconds,
        ),
        JudgeDriftView(
            metrics,
            false_alarms_per_day=settings.drift_false_alarms_per_day,
            pairs_per_day=settings.drift_pairs_per_day,
            uniform_probability=settings.review_min_probability,
        ),
        TrafficView(metrics),
        PerceptualView(
            metrics,
            reference_size=settings.perceptual_reference_size,
            window_size=settings.perceptual_window_size,
            check_every=settings.perceptual_check_every,
            false_alarms=settings.perceptual_false_alarms,
            horizon=settings.perceptual_horizon,
        ),
        SpikeView(
            metrics,
            taxonomy,
            false_alarms_per_day=settings.spike_false_alarms_per_day,
            turns_per_day=settings.spike_turns_per_day,
            judges=settings.spike_judges,
            labelled_turns_per_day=settings.spike_labelled_turns_per_day,
            uniform_probability=settings.review_min_probability,
        ),
        *divergence_views(settings, metrics),
        VersionView(
            metrics,
            horizon_seconds=settings.version_horizon_seconds,
            alpha=settings.version_alpha,
            tau2=settings.version_tau2,
            min_samples=settings.version_min_samples,
        ),
        VersionOutcomeView(
            metrics,
            horizon_seconds=settings.version_horizon_seconds,
            alpha=settings.version_alpha,
            tau2=settings.version_tau2,
            min_samples=settings.version_min_samples,
        ),
        VersionCalibratedView(
            metrics,
            horizon_seconds=settings.version_horizon_seconds,
            alpha=settings.version_alpha,
            tau2=settings.version_tau2,
            min_samples=settings.version_min_samples,
            min_labels=settings.version_min_labels,
        ),
        OutcomeView(
            metrics,
            idle_seconds=settings.conversation_idle_seconds,
            recontact_window_seconds=settings.recontact_window_seconds,
            max_conversations=settings.conversations_max,
        ),
        ReviewView(
            metrics,
            taxonomy,
            budget_per_hour=settings.review_budget_per_hour,
            segment_floor_per_hour=settings.review_segment_floor_per_hour,
            min_probability=settings.review_min_probability,
            seed=settings.review_seed,
            queues=settings.review_queues,
            default_queue=settings.review_default_queue,
        ),
    ]


def divergence_views(settings: Settings, metrics: Metrics) -> list[View]:
    """Humans, judges and the live model against each other (besides ``AgreementView``)."""
    every, seconds = settings.divergence_refresh_every, settings.divergence_refresh_seconds
    golden = load_golden(settings.golden)
    sla = load_vendor_sla(settings.vendor_sla)
    return [
        RatersView(metrics, every, seconds),
        GoldView(metrics, golden, max_vendors=sla.max_vendors, max_annotators=sla.max_annotators),
        CalibrationView(metrics, every, seconds),
        DefectRateView(metrics, every, seconds),
        LiveModelView(metrics, every, seconds),
        LabelFlowView(metrics),
        VendorsView(metrics, sla, golden),
    ]
