"""Errors raised by the pipeline, the transports and the command line."""

from __future__ import annotations


class ConvowatchError(Exception):
    """Root of every error raised by :mod:`streams`; the CLI prints its message and exits non-zero."""


class ConfigError(ConvowatchError):
    """A configuration file or setting that cannot be used; the message names the file and key."""


class BrokerUnreachable(ConvowatchError):
    """The Kafka broker did not answer at the configured address."""
