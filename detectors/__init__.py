"""Online detectors: pure, small, serialisable algorithms with no I/O (one per module)."""

from detectors.agreement import AgreementTracker
from detectors.base import Detector
from detectors.exceptions import DetectorError, StateError

__all__ = ["AgreementTracker", "Detector", "DetectorError", "StateError"]
