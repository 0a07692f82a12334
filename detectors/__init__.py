"""Online detectors: pure, small, serialisable algorithms with no I/O (one per module)."""

from detectors.agreement import AgreementTracker
from detectors.base import Detector
from detectors.exceptions import DetectorError, StateError

__all__ = ["AgreementTracker", "Detector", "DetectorError", "StateError"]

# Agreement with intervals, multi-rater agreement, calibration, prediction-powered rates, event-time windows.
from detectors.agreement_stats import AgreementStats, wilson_interval
from detectors.calibration import BinaryCalibration, ClassAccuracy
from detectors.multi_rater import InterAnnotatorAgreement, RaterVsConsensus, consensus
from detectors.ppi import PredictionPoweredRate
from detectors.windowed import EventTimeWindows

__all__ += [
    "AgreementStats",
    "BinaryCalibration",
    "ClassAccuracy",
    "EventTimeWindows",
    "InterAnnotatorAgreement",
    "PredictionPoweredRate",
    "RaterVsConsensus",
    "consensus",
    "wilson_interval",
]
