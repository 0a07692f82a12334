"""``convowatch worker``: check the broker, create topics, serve metrics, run the Faust worker."""

from __future__ import annotations

import logging

import faust
from prometheus_client import CollectorRegistry, start_http_server

from streams.admin import create_topics
from streams.alerting import build_alertmanager_sink, publish_escalation
from streams.app import KafkaTransport
from streams.config import Settings
from streams.kafka_client import BrokerMonitor, quiet_client_logs
from streams.metrics import Metrics

log = logging.getLogger("convowatch.worker")


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Blocks until the worker is stopped (SIGTERM or SIGINT)."""
    create_topics(settings)  # raises BrokerUnreachable with the address when the broker does not answer
    registry = CollectorRegistry()
    metrics = Metrics(registry, label_max_values=settings.label_max_values)
    monitor = BrokerMonitor(settings, metrics)  # convowatch_broker_connected, _outages_total; log
    server, _ = start_http_server(settings.metrics_port, addr=settings.metrics_host, registry=registry)
    log.warning("convowatch metrics on http://%s:%d/metrics", settings.metrics_host, server.server_port)
    metrics_url = f"http://{settings.metrics_host}:{server.server_port}/metrics"
    alerts = build_alertmanager_sink(settings, metrics, generator_url=metrics_url)
    transport = KafkaTransport(settings, metrics, escalation_sinks=[publish_escalation(alerts)])
    quiet_client_logs()  # after the Kafka clients are imported: their loggers exist
    monitor.start()
    worker = faust.Worker(transport.app, loglevel=loglevel, quiet=True)
    try:
        worker.execute_from_commandline()
    finally:
        if alerts is not None:
            alerts.close()
