"""``convowatch worker``: serve metrics and health, wait for the broker, create topics, check the ACLs, run
the Faust worker."""

from __future__ import annotations

import asyncio
import logging
import math
import signal
import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, ProcessCollector

from streams.admin import create_topics
from streams.alerting import build_alertmanager_sink
from streams.app import KafkaTransport, data_dir
from streams.broker_wait import BrokerWait
from streams.config import Settings
from streams.golden import load_golden
from streams.health import Health, serve, server_url
from streams.kafka_client import BrokerMonitor, quiet_client_logs, refuse_topic_auto_creation
from streams.lag import ConsumerLagMonitor
from streams.metrics import Metrics
from streams.partition_marker import check_partition_count
from streams.periodic import Periodic
from streams.permissions import check_permissions
from streams.shutdown import ShutdownDeadline, Worker
from streams.taxonomy import load_taxonomy
from streams.topics import partition_count_topic
from streams.vendor_sla import load_vendor_sla

log = logging.getLogger("convowatch.worker")


def run_worker(settings: Settings, loglevel: str = "warning") -> None:
    """Blocks until the worker is stopped (SIGTERM or SIGINT)."""
    use_event_loop(settings.event_loop)
    registry = CollectorRegistry()
    # process_start_time_seconds: ConvowatchHighRiskEscalations counts a just-started worker's counters whole
    ProcessCollector(registry=registry)
    metrics = Metrics(registry, label_max_values=settings.label_max_values)
    metrics.worker_role.labels(settings.role).set(1)  # rule ConvowatchJoinStageDown / AggregateStageDown
    health = Health(settings.health_stall_seconds)
    check_local_files(settings)  # before any topic is created: a wrong file left the cluster half set up
    server = serve(registry, health, settings.metrics_host, settings.metrics_port)  # a port in use: first
    if not wait_for_broker(settings, health):  # a refusal, or no answer in time: BrokerUnreachable
        log.warning("stopped while waiting for the Kafka broker at %s", settings.broker)
        return
    created = create_topics(settings)
    check_permissions(settings)  # the ACLs this role needs, all named now, not as the first batch fails
    # the state's, recorded at its first start: topics grown since are refused (off if it may not be made)
    check_partition_count(settings, exists=created.get(partition_count_topic(settings)) != "refused")
    refuse_topic_auto_creation()  # Faust's clients: a topic missing now is not created with broker defaults
    monitor = BrokerMonitor(settings, metrics)  # convowatch_broker_connected, _outages_total; log
    base = server_url(settings.metrics_host, server.server_port)  # not 0.0.0.0: alerts link to it
    log.warning("convowatch metrics on %s/metrics, health on %s/healthz and %s/readyz", base, base, base)
    alerts = build_alertmanager_sink(settings, metrics, generator_url=f"{base}/metrics")
    transport = KafkaTransport(settings, metrics, alerts=alerts, broker_down=lambda: monitor.unreachable)
    lag = ConsumerLagMonitor(settings, metrics, transport.agent_topics, group=transport.app.conf.id)
    health.add_liveness("progress", progress_check(transport, lag, monitor, settings.health_stall_seconds))
    health.add_readiness("broker", lambda: None if monitor.down_since is None else "Kafka broker unreachable")
    health.add_readiness("partitions", lambda: partitions_check(transport))
    health.started()
    quiet_client_logs()  # after the Kafka clients are imported: their loggers exist
    monitor.start()
    lag.start()
    deadline = ShutdownDeadline(settings.shutdown_timeout_seconds, waiting_for=lambda: outage(monitor))
    worker = Worker(transport.app, loglevel=loglevel, quiet=True, deadline=deadline)
    beats = loop_heartbeat(worker.loop, health.beat).start()
    try:
        worker.execute_from_commandline()
    finally:
        beats.stop()
        lag.stop()
        if alerts is not None:
            alerts.close()


def wait_for_broker(settings: Settings, health: Health) -> bool:
    """Wait until the broker answers (:class:`~streams.broker_wait.BrokerWait`), live (the wait beats the
    heartbeat) and not ready, its reason under ``broker``; False if SIGTERM or SIGINT came first (nothing
    is started yet: the worker exits 0). Faust installs its own handlers later."""
    wait = BrokerWait(settings, beat=health.beat)
    health.add_readiness("broker", wait.readiness)
    previous = {sig: signal.signal(sig, lambda *_: wait.stop()) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        answered = wait.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return answered and not wait.stopping  # a stop after the broker answered, before the handlers went


def check_local_files(settings: Settings) -> None:
    """What the worker reads and writes on this host, each a one-line :class:`ConfigError` naming its file
    when it cannot be used: the data directory (created), the taxonomy, the golden set and the vendor SLA
    file. The settings were checked as they were read, the Alertmanager URL among them."""
    data_dir(settings)
    load_taxonomy(settings.taxonomy)
    load_golden(settings.golden)
    load_vendor_sla(settings.vendor_sla)


def outage(monitor: BrokerMonitor) -> str | None:
    """What a stop that does not end is probably waiting for, if the broker monitor knows."""
    if monitor.down_since is None:
        return None
    seconds = time.monotonic() - monitor.down_since
    if monitor.refused:
        return f"the Kafka broker has refused this worker (authentication or TLS) for {seconds:.0f} s"
    return f"the Kafka broker has been unreachable for {seconds:.0f} s"


def use_event_loop(name: str) -> None:
    """Make ``name`` (``Settings.event_loop``) the loop the Faust worker creates: uvloop or asyncio's own."""
    if name == "uvloop":
        import uvloop  # a dependency on every platform uvloop supports

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    else:
        asyncio.set_event_loop_policy(asyncio.DefaultEventLoopPolicy())
    log.info("event loop: %s", name)


def loop_heartbeat(loop: asyncio.AbstractEventLoop, beat: Callable[[], None]) -> Periodic:
    """Schedules ``beat`` on the worker's event loop every second from a daemon thread: it runs only while
    the loop turns, so a blocked loop shows as a stale heartbeat (``/healthz``)."""
    return Periodic(1.0, "convowatch-heartbeat", lambda: loop.call_soon_threadsafe(beat))


def partitions_check(transport: KafkaTransport) -> str | None:
    if not transport.recovered:
        return "waiting for the first partition assignment and table recovery"
    if transport.app.rebalancing:
        return "rebalancing"
    return None


def progress_check(
    transport: KafkaTransport, lag: ConsumerLagMonitor, monitor: BrokerMonitor, stall_seconds: float
) -> Callable[[], str | None]:
    """Fails when no batch has completed for ``stall_seconds`` although the partitions this worker owns
    have lag (outside rebalances and recovery, which may legitimately take longer). Not while the broker
    is unreachable, nor within ``stall_seconds`` of its return: a restart would not bring it back, and a
    restarted worker cannot start without it (readiness reports the outage). But a broker that refuses this
    worker (a rotated password, an expired certificate) for ``stall_seconds`` fails it, lag or not (the
    lag monitor, refused too, keeps its last figures): a restart, which reads the credentials anew, is what
    mends that (until 2026-11-26 /healthz stayed 200 for good)."""

    def check() -> str | None:
        if not transport.recovered or transport.app.rebalancing or monitor.unreachable:
            return None
        now = time.monotonic()
        if monitor.refused_since is not None and (refused := now - monitor.refused_since) > stall_seconds:
            return f"the Kafka broker has refused this worker for {refused:.0f}s (authentication or TLS)"
        refused_since = monitor.refused_since if monitor.refused_since is not None else -math.inf
        idle = now - max(transport.last_progress, monitor.up_since, refused_since)
        if idle <= stall_seconds:
            return None
        owned = transport.owned
        behind = sum(n for tp, n in lag.latest.items() if tp in owned)
        if behind == 0:
            return None
        return f"no batch completed for {idle:.0f}s while {behind} messages wait on this worker's partitions"

    return check
