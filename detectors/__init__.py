"""Online detectors: pure, small, serialisable algorithms with no I/O (one per module)."""

from detectors.agreement import AgreementTracker
from detectors.agreement_breakdown import AgreementBreakdown
from detectors.agreement_stats import AgreementStats, wilson_interval
from detectors.base import Detector
from detectors.bernoulli_cusum import BernoulliCUSUM
from detectors.calibrated_comparison import CalibratedComparison, CalibratedVersionComparison
from detectors.calibration import BinaryCalibration, ClassAccuracy
from detectors.category_spikes import CategorySpikes
from detectors.defect_rate_spike import DefectRateSpike, arl0_for_budget
from detectors.exceptions import DetectorError, NotHeldError, StateError
from detectors.gold_items import GoldItemTally
from detectors.keyed import KeyedDetectors
from detectors.msprt import MixtureSPRT, VersionComparison
from detectors.multi_rater import InterAnnotatorAgreement, consensus
from detectors.ppi import PredictionPoweredRate
from detectors.rater_panel import RaterPanel
from detectors.rater_vs_consensus import RaterVsConsensus
from detectors.review_sampler import ReviewSampler
from detectors.score_drift import ScoreDrift
from detectors.sla_status import SlaStatus
from detectors.traffic_watch import TrafficWatch
from detectors.vendor_scorecard import LabelTally, VendorScorecard
from detectors.windowed import EventTimeWindows

__all__ = [
    "AgreementBreakdown",
    "AgreementStats",
    "AgreementTracker",
    "BernoulliCUSUM",
    "BinaryCalibration",
    "CalibratedComparison",
    "CalibratedVersionComparison",
    "CategorySpikes",
    "ClassAccuracy",
    "DefectRateSpike",
    "Detector",
    "DetectorError",
    "EventTimeWindows",
    "GoldItemTally",
    "InterAnnotatorAgreement",
    "KeyedDetectors",
    "LabelTally",
    "MixtureSPRT",
    "NotHeldError",
    "PredictionPoweredRate",
    "RaterPanel",
    "RaterVsConsensus",
    "ReviewSampler",
    "ScoreDrift",
    "SlaStatus",
    "StateError",
    "TrafficWatch",
    "VendorScorecard",
    "VersionComparison",
    "arl0_for_budget",
    "consensus",
    "wilson_interval",
]
