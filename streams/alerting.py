"""Escalations to Alertmanager, when ``CONVOWATCH_ALERTMANAGER_URL`` is set (shared by worker and demo)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

from streams.aggregate import Aggregator
from streams.alertmanager import AlertmanagerSink
from streams.config import Settings
from streams.exceptions import ConfigError
from streams.join import TurnJoiner
from streams.metrics import Metrics
from streams.taxonomy import load_taxonomy

#: What became of escalation alerts in the sink (``convowatch_alertmanager_alerts_total{result}``)
ALERT_RESULTS = ("sent", "failed", "dropped", "expired", "invalid")

log = logging.getLogger("convowatch.alerting")


def build_alertmanager_sink(
    settings: Settings, metrics: Metrics, generator_url: str | None
) -> AlertmanagerSink | None:
    """A started sink, or None when no Alertmanager is configured."""
    if settings.alertmanager_url is None:
        return None

    def count(name: str, n: int) -> None:
        metrics.alertmanager_alerts.labels(name).inc(n)

    for result in ALERT_RESULTS:  # at 0 from the start, so that an alert on increase() sees the first one
        metrics.alertmanager_alerts.labels(result)

    try:
        sink = AlertmanagerSink(
            settings.alertmanager_url.get_secret_value(),
            generator_url=generator_url,
            resend_seconds=settings.alert_resend_seconds,
            expire_after=settings.alert_expire_seconds,
            metrics=count,
            teams=load_taxonomy(settings.taxonomy).teams(),
        )
    except ValueError as exc:
        raise ConfigError(f"CONVOWATCH_ALERTMANAGER_URL: {exc}") from None
    metrics.alertmanager_active.set_function(lambda: float(sink.active))
    return sink.start()


def publish_escalation(sink: AlertmanagerSink | None) -> Callable[[dict[str, Any]], None]:
    """A callback publishing each escalation record to ``sink`` (a no-op without one)."""
    if sink is None:
        return lambda value: None
    return sink.publish


def resend_open_alerts(
    sink: AlertmanagerSink,
    aggregator: Aggregator,
    keys: Iterable[str],
    owns: Callable[[str], bool],
    source: Callable[[str], Any],
) -> int:
    """Give ``sink`` the escalations open in the aggregates at ``keys`` whose shard key this worker ``owns``
    (views with ``open_escalations``: defect spikes, judge drift, volume and latency anomalies, perceptual
    drift, vendor SLA breaches, version regressions), each with its ``source``
    (:meth:`AlertmanagerSink.forget`); how many. After a rebalance: a restarted worker's sink starts empty,
    and one that took shards over holds none of theirs. Nothing else sends them again before their next
    revision (a spike's resolution, hours later perhaps), so Alertmanager resolved them after four re-send
    periods while they were still open, and the incident went on unseen."""
    at = time.time()
    keys = list(keys)
    sent = 0
    for view in aggregator.views:
        open_escalations = getattr(view, "open_escalations", None)
        if open_escalations is None:
            continue
        for shard_key, value in open_escalations(aggregator, keys, owns, at):
            sink.publish(value, source(shard_key))
            sent += 1
    if sent:
        log.info("sending %d open escalations to Alertmanager again, after a rebalance", sent)
    return sent


def resend_open_high_risk(
    sink: AlertmanagerSink, joiner: TurnJoiner, within_seconds: float, source: Callable[[int | None], Any]
) -> int:
    """Give ``sink`` the high-risk escalations of the turns ``joiner`` holds whose last event is within
    ``within_seconds`` (the sink's expiry) of the newest, each with ``source(partition)``; how many. After a
    restart or a rebalance, as :func:`resend_open_alerts`: a critical page resolved by itself four re-send
    periods after every deploy, before anybody acted on it."""
    sent = 0
    for _, partition, value in joiner.open_escalations(within_seconds):
        sink.publish(value, source(partition))
        sent += 1
    if sent:
        log.info("sending %d high-risk escalations to Alertmanager again, after a rebalance", sent)
    return sent
