"""Online detectors: pure, small, serialisable algorithms with no I/O (one per module)."""

from detectors.agreement import AgreementTracker
from detectors.base import Detector
from detectors.category_spikes import CategorySpikes
from detectors.exceptions import DetectorError, StateError

__all__ = ["AgreementTracker", "Detector", "DetectorError", "StateError"]

# Agreement with intervals, multi-rater agreement, calibration, prediction-powered rates, event-time windows.
from detectors.agreement_stats import AgreementStats, wilson_interval
from detectors.calibration import BinaryCalibration, ClassAccuracy
from detectors.msprt import MixtureSPRT, VersionComparison
from detectors.multi_rater import InterAnnotatorAgreement, RaterVsConsensus, consensus
from detectors.ppi import PredictionPoweredRate
from detectors.review_sampler import ReviewSampler
from detectors.traffic_watch import TrafficWatch
from detectors.windowed import EventTimeWindows

__all__ += [
    "AgreementStats",
    "BinaryCalibration",
    "CategorySpikes",
    "ClassAccuracy",
    "EventTimeWindows",
    "InterAnnotatorAgreement",
    "MixtureSPRT",
    "PredictionPoweredRate",
    "RaterVsConsensus",
    "ReviewSampler",
    "TrafficWatch",
    "VersionComparison",
    "consensus",
    "wilson_interval",
]
from detectors.defect_rate_spike import BernoulliCUSUM, DefectRateSpike, arl0_for_budget  # noqa: E402, F401
