"""Kafka client settings from :class:`Settings`, for confluent-kafka (librdkafka) and Faust (aiokafka).

Also the broker checks: :func:`check_broker` before a command starts (a worker waits for the broker
instead: :mod:`streams.broker_wait`), and :class:`BrokerMonitor`, which keeps probing while a worker runs so
an outage shows up in the metrics and the log.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Iterable, Sequence
from typing import Any

import aiokafka.client
import faust
from aiokafka.protocol.metadata import MetadataRequest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient

from streams.config import Settings
from streams.exceptions import BrokerUnreachable
from streams.metrics import Metrics
from streams.periodic import Periodic

log = logging.getLogger("convowatch.kafka")
#: librdkafka's own log lines go through Python logging instead of raw ``%3|...`` lines on stderr.
librdkafka_log = logging.getLogger("convowatch.librdkafka")


def confluent_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings; the password is revealed only here, inside the client config."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.broker,
        "security.protocol": settings.security_protocol,
        # Java's and aiokafka's partitioner: the same turn_id lands in the same partition on every topic.
        "partitioner": "murmur2_random",
        "logger": librdkafka_log,
        # a producer's default is true: a metadata request naming a missing topic would have a broker with
        # auto.create.topics.enable create it with the broker's defaults (streams.admin creates them)
        "allow.auto.create.topics": False,
    }
    if settings.security_protocol.startswith("SASL"):
        config["sasl.mechanism"] = sasl_mechanism(settings)
        config["sasl.username"] = settings.sasl_username or ""
        config["sasl.password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    if settings.ssl_cafile:
        config["ssl.ca.location"] = str(settings.ssl_cafile)
    config.update(extra)
    return config


def sasl_mechanism(settings: Settings) -> str:
    """The SASL mechanism every client uses: ``CONVOWATCH_SASL_MECHANISM``, PLAIN if unset (Faust's default;
    librdkafka's is GSSAPI)."""
    return settings.sasl_mechanism or "PLAIN"


def admin_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    config = confluent_config(settings, **extra)
    config.pop("partitioner")
    return config


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the configured protocol, or ``None`` for PLAINTEXT."""
    context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    if settings.security_protocol.startswith("SASL"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        return faust.SASLCredentials(
            username=settings.sasl_username or "",
            password=password,
            mechanism=sasl_mechanism(settings),
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


#: What to check when the TLS handshake with the broker fails.
TLS_SETTINGS = "check CONVOWATCH_SSL_CAFILE / CONVOWATCH_SECURITY_PROTOCOL"
#: librdkafka's words for a listener of another protocol than the client's (its error texts)
PROTOCOL_HINTS = ("broker listener?", "incorrect security.protocol", "connecting to a SSL listener?")


def probe_failure(errors: Sequence[KafkaError], reason: str) -> str:
    """Why a metadata request failed with ``reason``, given the errors librdkafka reported meanwhile
    (``error_cb``): a rejected authentication or TLS handshake, which the request itself reports only as
    "Broker transport failure", else ``reason``."""
    if auth := [e for e in errors if e.code() == KafkaError._AUTHENTICATION]:
        return f"authentication failed: {auth[-1].str()}"
    if tls := [e for e in errors if e.code() == KafkaError._SSL]:
        return f"TLS handshake with the broker failed: {tls[-1].str()}; {TLS_SETTINGS}"
    return reason


class BrokerProbe:
    """A metadata request with the configured credentials; remembers why the last one failed."""

    def __init__(self, settings: Settings, **extra: Any) -> None:
        self.errors: list[KafkaError] = []
        # log_level 0: failed connects are reported once, by the caller, not as one line per retry
        self.admin = AdminClient(admin_config(settings, log_level=0, error_cb=self.errors.append, **extra))

    def __call__(self, timeout: float) -> str | None:
        """``None`` if the broker answered within ``timeout``, else the reason it did not."""
        self.errors.clear()
        try:
            if self.admin.list_topics(timeout=timeout).brokers:
                return None
            reason = "metadata lists no brokers"
        except KafkaException as exc:
            reason = exc.args[0].str() if exc.args else str(exc)
        self.admin.poll(0)  # serves error_cb: the underlying cause (refused, authentication, TLS, ...)
        return probe_failure(self.errors, reason)

    @property
    def authentication_failed(self) -> bool:
        return any(e.code() == KafkaError._AUTHENTICATION for e in self.errors)

    @property
    def tls_failed(self) -> bool:
        return any(e.code() == KafkaError._SSL for e in self.errors)

    @property
    def cause(self) -> str | None:
        """The last error librdkafka reported during the last request (a refused connection, a name that
        does not resolve), if any; one that says why before one that only counts the brokers down."""
        telling = [e for e in self.errors if e.code() != KafkaError._ALL_BROKERS_DOWN] or self.errors
        return telling[-1].str() if telling else None

    @property
    def not_kafka(self) -> bool:
        """Whether the last request's answer was not Kafka's (an HTTP server: a message of 1.2 GB)."""
        return any(e.code() == KafkaError._BAD_MSG for e in self.errors)

    @property
    def mismatched(self) -> str | None:
        """librdkafka's error of the last request that says the listener speaks another protocol than the
        configured one, or is not Kafka's (an SSL client on a PLAINTEXT listener, an HTTP server), if any."""
        for error in reversed(self.errors):
            text = error.str()
            if error.code() == KafkaError._BAD_MSG or any(hint in text for hint in PROTOCOL_HINTS):
                return text
        return None


class MetadataRequestNoAutoCreate(MetadataRequest):
    """aiokafka's metadata request, asking the broker not to create the topics it names (version 4 on)."""

    def __init__(
        self, topics: list[str] | None = None, allow_auto_topic_creation: bool | None = False
    ) -> None:
        super().__init__(topics, allow_auto_topic_creation=allow_auto_topic_creation)


def refuse_topic_auto_creation() -> None:
    """Make every aiokafka client of this process (Faust's producer and consumers) ask that the topics its
    metadata requests name are never auto-created.

    aiokafka (0.14) offers no setting for it: its metadata requests allow auto-creation, so on a broker with
    ``auto.create.topics.enable=true`` a topic missing when a client named it (a changelog deleted while a
    worker ran) was created with the broker's defaults: ``num.partitions`` partitions,
    ``cleanup.policy=delete``. Missing topics are created by :mod:`streams.admin` instead, with convowatch's
    settings (Faust creates none: ``topic_allow_declare=False``).
    """
    aiokafka.client.MetadataRequest = MetadataRequestNoAutoCreate  # type: ignore[misc]


async def track_topics(client: Any, topics: Iterable[str]) -> None:
    """Make an aiokafka client keep the metadata of every topic in ``topics`` (await before producing).

    aiokafka refreshes metadata only for the topics it *tracks* (all topics while it tracks none). A topic
    first learned from an all-topics refresh is known but untracked; the first tracked topic then narrows
    every refresh and the untracked topic drops out of the metadata. A batch already queued for it finds no
    leader and waits for one that never comes, until the producer's request timeout (20 minutes under
    Faust): the worker's commit (a producer flush) and its next batch hang with it. Tracking every topic
    the worker produces to, up front, keeps them all in every refresh
    (``tests/integration/test_producer_metadata.py`` reproduces the hang without it).
    """
    await asyncio.gather(*(client.add_topic(topic) for topic in topics))


def check_broker(settings: Settings, timeout: float = 10.0) -> None:
    """Raise :class:`BrokerUnreachable` naming the address unless the broker answers within ``timeout``.

    Rejected SASL credentials fail at once, with a message that names the user (never the password); so
    does a failed TLS handshake (an unverifiable broker certificate, a listener of another protocol).
    """
    probe = BrokerProbe(settings)
    deadline = time.monotonic() + timeout
    while True:
        reason = probe(max(0.1, min(1.0, deadline - time.monotonic())))
        if reason is None:
            return
        raise_if_refused(settings, probe, reason)
        if time.monotonic() >= deadline:
            raise BrokerUnreachable(
                f"cannot reach the Kafka broker at {settings.broker} within {timeout:.0f}s "
                f"({reason}); check --broker / CONVOWATCH_BROKER"
            )


def raise_if_refused(settings: Settings, probe: BrokerProbe, reason: str) -> None:
    """Raise :class:`BrokerUnreachable` if the failed ``probe`` (``reason``) was refused: rejected SASL
    credentials (named with the user, never the password) or a failed TLS handshake. A restart, which reads
    the settings anew, mends these; waiting does not."""
    if probe.authentication_failed:
        raise BrokerUnreachable(
            f"the Kafka broker at {settings.broker} rejected the credentials of SASL user "
            f"{settings.sasl_username!r} ({sasl_mechanism(settings)}): {reason}; check "
            "CONVOWATCH_SASL_USERNAME / CONVOWATCH_SASL_PASSWORD / CONVOWATCH_SASL_MECHANISM"
        )
    if probe.tls_failed:
        raise BrokerUnreachable(f"Kafka broker at {settings.broker}: {reason}")


class RepeatFilter(logging.Filter):
    """Lets one record per logger and message template through every ``window`` seconds; the next one
    that passes says how many were held back. aiokafka logs each failed reconnect (about a thousand lines
    a second while a broker is down); :class:`BrokerMonitor` reports the outage itself."""

    def __init__(self, window: float = 30.0) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[tuple[str, str], list[float]] = {}  # (logger, template) -> [last passed, held]

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        template = record.msg if isinstance(record.msg, str) else type(record.msg).__name__
        state = self._seen.setdefault((record.name, template), [-self.window, 0])
        if now - state[0] < self.window:
            state[1] += 1
            return False
        if state[1]:
            record.msg = f"{record.msg} [{int(state[1])} more like this in the last {self.window:.0f}s]"
        state[0], state[1] = now, 0
        return True


class SaslRequestFilter(logging.Filter):
    """Drops aiokafka's debug line of a SASL authenticate request: with PLAIN, the request it prints whole
    carries the password in clear (``Request to host:port n: SaslAuthenticateRequest_v1(...)``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "SaslAuthenticate" not in record.getMessage()


def quiet_client_logs(window: float = 30.0) -> None:
    """Install a :class:`RepeatFilter` on the Kafka clients' loggers (aiokafka's and Faust's producer), and
    a :class:`SaslRequestFilter` before it on aiokafka's connection logger."""
    logging.getLogger("aiokafka.conn").addFilter(SaslRequestFilter())
    repeat = RepeatFilter(window)
    names = [n for n in logging.root.manager.loggerDict if n.startswith("aiokafka")]
    for name in [*names, "faust.transport.producer"]:
        logging.getLogger(name).addFilter(repeat)


class BrokerMonitor:
    """Probes the broker every ``settings.broker_probe_interval_seconds`` from a daemon thread.

    Sets ``convowatch_broker_connected`` (1/0), counts outages in ``convowatch_broker_outages_total`` and
    logs each outage's start and end. It runs outside Faust's event loop on purpose: it keeps reporting
    while the Kafka clients are stuck reconnecting or a table is recovering.
    """

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.interval = settings.broker_probe_interval_seconds
        self.timeout = max(1.0, self.interval)
        self.down_since: float | None = None
        self.up_since = time.monotonic()  # when the broker last came back (or the monitor started)
        #: since when the probes have failed because the broker refuses this worker (authentication or TLS:
        #: a rotated password, an expired certificate), which only a restart with new credentials mends
        self.refused_since: float | None = None
        self._probe = BrokerProbe(settings)
        self._timer = Periodic(self.interval, "convowatch-broker-monitor", self.check)
        metrics.broker_connected.set(1)  # the worker checked the broker before starting

    def start(self) -> BrokerMonitor:
        self._timer.start()
        return self

    def stop(self) -> None:
        self._timer.stop()

    def check(self) -> bool:
        """Probe once and update the metrics; True if the broker answered."""
        started = time.monotonic()
        reason = self._probe(self.timeout)
        now = time.monotonic()
        if reason is None and self.down_since is not None:
            outage = now - self.down_since
            self.down_since = None
            self.up_since = now
            self.metrics.broker_connected.set(1)
            self.metrics.broker_last_outage_seconds.set(outage)
            log.warning("Kafka broker at %s reachable again after %.1fs", self.settings.broker, outage)
        elif reason is not None and self.down_since is None:
            self.down_since = started
            self.metrics.broker_connected.set(0)
            self.metrics.broker_outages.inc()
            log.error("Kafka broker at %s unreachable: %s", self.settings.broker, reason)
        refused = reason is not None and (self._probe.authentication_failed or self._probe.tls_failed)
        if refused and self.refused_since is None:
            self.refused_since = started
            if self.down_since != started:  # new since the outage's first line
                log.error("Kafka broker at %s refuses this worker: %s", self.settings.broker, reason)
        elif not refused:
            self.refused_since = None
        return reason is None

    @property
    def refused(self) -> bool:
        """Whether the last probe failed because the broker refuses this worker."""
        return self.refused_since is not None

    @property
    def unreachable(self) -> bool:
        """Whether the broker has not answered since the last probe, for a cause other than refusing this
        worker (:attr:`refused`): one that its return mends without a restart."""
        return self.down_since is not None and not self.refused
