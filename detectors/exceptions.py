"""Errors raised by detectors."""

from __future__ import annotations


class DetectorError(Exception):
    """Root of every error raised by :mod:`detectors`."""


class StateError(DetectorError):
    """A serialised state that does not belong to this detector or this version."""


class NotHeldError(DetectorError, ValueError):
    """``remove`` of what a detector's counts do not hold (never added, or taken out already)."""
