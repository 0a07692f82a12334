"""The lag monitor's clients while the broker is away: their error events are served at every check, not
left to pile up in librdkafka's memory (0.56 MB a minute before 2026-11-26, never given back)."""

from __future__ import annotations

import socket

import pytest
from confluent_kafka import KafkaException
from prometheus_client import CollectorRegistry

from streams.config import Settings
from streams.lag import ConsumerLagMonitor
from streams.metrics import Metrics


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_checks_serve_the_clients_errors_while_the_broker_is_away() -> None:
    settings = Settings(broker=f"127.0.0.1:{closed_port()}", lag_interval_seconds=0.5)
    monitor = ConsumerLagMonitor(settings, Metrics(CollectorRegistry()), ["t"], group="g")
    try:
        for _ in range(2):  # the second check serves what the first one's requests left queued
            with pytest.raises(KafkaException):
                monitor.check()
        assert monitor.client_errors > 0
    finally:
        monitor.stop()
