"""Errors raised while turning untrusted bytes into events."""

from __future__ import annotations


class SchemaError(Exception):
    """Root of every error raised by :mod:`schemas`."""


class InvalidRecord(SchemaError):
    """A record that cannot become an event.

    ``reason`` is a short, bounded code (safe as a metric label); ``detail`` is the human-readable
    explanation written to the dead-letter record.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
