"""A worker's wait, at its start, for a Kafka broker that does not answer yet.

Until 2026-11-26 a worker started while the broker was away exited 1 after 10 s. In Kubernetes that is a
crash loop, backed off for up to 5 minutes after the broker's return: after an outage during which pods
were rescheduled or a deploy ran, monitoring stayed down for minutes after the broker was back, and open
alerts resolved meanwhile. :class:`BrokerWait` waits instead, alive (``/healthz`` 200) and not ready
(``/readyz`` says what for), for at most ``CONVOWATCH_BROKER_WAIT_SECONDS``. A broker that answers but
refuses the worker (authentication, TLS) is not waited for: a restart, which reads the settings anew, is
what mends that.
"""

from __future__ import annotations

import logging
import math
import socket
import struct
import time
from collections.abc import Callable

from streams.config import Settings
from streams.exceptions import BrokerUnreachable
from streams.kafka_client import BrokerProbe, raise_if_refused

log = logging.getLogger("convowatch.broker_wait")

#: How often a worker waiting for the broker at its start says so in the log, after the first time
WAIT_LOG_SECONDS = 60.0
#: Longest one probe of that wait waits for an answer, and shortest time between two: a stop (SIGTERM) and
#: the broker's return are seen within about this long
WAIT_PROBE_SECONDS = 2.0
#: librdkafka's longest pause between reconnects during that wait (its default, 10 s, would notice a
#: broker back up to 10 s late)
WAIT_RECONNECT_MS = 1000
#: How long the broker's address may answer in another protocol than the configured one (a listener that is
#: not Kafka's, or one that answers a TLS client's address in plain Kafka) before the worker exits 1 naming
#: ``CONVOWATCH_SECURITY_PROTOCOL``, instead of waiting ``CONVOWATCH_BROKER_WAIT_SECONDS`` for it
MISMATCH_PATIENCE_SECONDS = 10.0


class BrokerWait:
    """Waits (:meth:`wait`) for at most ``settings.broker_wait_seconds`` until the broker answers, probing
    every :data:`WAIT_PROBE_SECONDS` and calling ``beat`` between probes (the worker's liveness heartbeat:
    it is alive, waiting); :meth:`readiness` says what it waits for. It logs a warning naming the address
    and how long it has waited at the first failed probe and every ``log_every`` seconds after. A broker that
    answers but refuses the worker (authentication, TLS) is no wait: :class:`BrokerUnreachable` at once, as
    from :func:`~streams.kafka_client.check_broker`; nor, after ``mismatch_patience`` seconds, a listener
    shown to speak another protocol than ``CONVOWATCH_SECURITY_PROTOCOL`` (a PLAINTEXT listener to a TLS
    client: it answers a Kafka request in plain text; a listener that is not Kafka's). An address that
    accepts connections and closes or never answers them (a broker starting up, hung or at its connection
    quota, a proxy with no broker behind it, or a TLS listener to a PLAINTEXT client, which librdkafka does
    not tell apart) is waited for, its reason saying so.
    :meth:`stop` (safe from a signal handler) ends the wait within about :data:`WAIT_PROBE_SECONDS`.
    """

    def __init__(
        self,
        settings: Settings,
        beat: Callable[[], None] = lambda: None,
        log_every: float = WAIT_LOG_SECONDS,
        mismatch_patience: float = MISMATCH_PATIENCE_SECONDS,
    ) -> None:
        self.settings = settings
        self.beat = beat
        self.log_every = log_every
        self.mismatch_patience = mismatch_patience
        self._stopping = False
        self._since: float | None = None  # when the wait began; None before and after it
        self._reason: str | None = None  # why the last probe failed
        self._mismatched_since: float | None = None  # since when every probe met another protocol

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stopping

    def stop(self) -> None:
        """End the wait (a plain assignment: safe in a signal handler)."""
        self._stopping = True

    def readiness(self) -> str | None:
        """A readiness check: what the worker waits for (None before the wait and once the broker
        answered)."""
        if self._since is None:
            return None
        waited = (
            f"waiting {time.monotonic() - self._since:.0f}s for the Kafka broker at {self.settings.broker}"
        )
        return f"{waited} to answer: {self._reason}" if self._reason else f"{waited} to answer"

    def wait(self) -> bool:
        """Return True once the broker answers, False if :meth:`stop` came first. Raise
        :class:`BrokerUnreachable` when it refuses this worker, or has not answered within
        ``settings.broker_wait_seconds``."""
        settings = self.settings
        probe = BrokerProbe(settings, **{"reconnect.backoff.max.ms": WAIT_RECONNECT_MS})
        started = self._since = time.monotonic()
        deadline = started + settings.broker_wait_seconds
        logged = -math.inf
        while not self._stopping:
            self.beat()
            began = time.monotonic()
            reason = probe(max(0.1, min(WAIT_PROBE_SECONDS, deadline - began)))
            now = time.monotonic()
            if reason is None:
                if self._reason is not None:
                    log.warning(
                        "Kafka broker at %s answered after %.1fs; starting", settings.broker, now - started
                    )
                self._since = self._reason = None
                return not self._stopping  # a stop during a probe that succeeded: not started
            if self._stopping:
                break  # a stop during the probe: stopped, whatever the probe says
            raise_if_refused(settings, probe, reason)
            self._reason = self._why(probe, reason, now)
            if now >= deadline:
                raise BrokerUnreachable(
                    f"the Kafka broker at {settings.broker} did not answer within "
                    f"{settings.broker_wait_seconds:g}s (CONVOWATCH_BROKER_WAIT_SECONDS): {self._reason}; "
                    "check --broker / CONVOWATCH_BROKER"
                )
            if now - logged >= self.log_every:
                logged = now
                log.warning(
                    "Kafka broker at %s does not answer (%s); waiting for it, %.0fs so far, at most %gs "
                    "(CONVOWATCH_BROKER_WAIT_SECONDS)",
                    settings.broker,
                    self._reason,
                    now - started,
                    settings.broker_wait_seconds,
                )
            if (pause := began + WAIT_PROBE_SECONDS - time.monotonic()) > 0 and not self._stopping:
                time.sleep(min(pause, deadline - now))  # a probe that failed fast: no busy loop
        return False

    def _why(self, probe: BrokerProbe, reason: str, now: float) -> str:
        """Why the broker did not answer ``probe`` (``reason``); :class:`BrokerUnreachable` once it has
        answered in another protocol for ``mismatch_patience`` seconds: a listener that is not Kafka's (an
        HTTP port), or a TLS client's address that answers Kafka in plain text. librdkafka's "connecting to a
        PLAINTEXT broker listener?" alone is no proof: it says so of any TLS handshake the peer closes (a
        broker at its connection quota, a proxy with no broker behind it), a wait's case (review,
        2026-11-26)."""
        settings = self.settings
        mismatched = probe.mismatched
        confirmed = mismatched is not None and (
            probe.not_kafka
            or (settings.security_protocol.endswith("SSL") and speaks_plaintext_kafka(settings.broker))
        )
        if not confirmed:
            self._mismatched_since = None
        else:
            if self._mismatched_since is None:
                self._mismatched_since = now
            if now - self._mismatched_since >= self.mismatch_patience:
                raise BrokerUnreachable(
                    f"the listener at {settings.broker} does not speak Kafka over "
                    f"{settings.security_protocol} ({mismatched}); check CONVOWATCH_SECURITY_PROTOCOL and "
                    "that --broker / CONVOWATCH_BROKER names the Kafka listener of that protocol"
                )
            return f"{reason} ({mismatched}; check CONVOWATCH_SECURITY_PROTOCOL)"
        if mismatched is not None:
            return (
                f"{reason} ({mismatched}): a broker at its connection quota, a proxy with no broker behind "
                "it, or another protocol's listener (CONVOWATCH_SECURITY_PROTOCOL)"
            )
        if accepts_connections(settings.broker):
            return (
                f"{reason}; it accepts connections but does not answer as Kafka over "
                f"{settings.security_protocol}: starting up, hung, or not that protocol's listener "
                "(CONVOWATCH_SECURITY_PROTOCOL)"
            )
        return f"{reason} ({probe.cause})" if probe.cause else reason


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    """(host, port) of each address of ``bootstrap`` (``host:port[,...]``) that reads as one."""
    addresses = []
    for address in bootstrap.split(","):
        host, _, port = address.strip().rpartition("://")[2].rpartition(":")
        if port.isdigit():
            addresses.append((host.strip("[]"), int(port)))
    return addresses


#: A Kafka ApiVersions v0 request (api key 18) with correlation id 7 and client id "convowatch", and its frame
_API_VERSIONS_REQUEST = struct.pack(">hhih", 18, 0, 7, 10) + b"convowatch"
_API_VERSIONS = struct.pack(">i", len(_API_VERSIONS_REQUEST)) + _API_VERSIONS_REQUEST


def speaks_plaintext_kafka(bootstrap: str, timeout: float = 1.0) -> bool:
    """Whether any address of ``bootstrap`` answers a Kafka request sent in plain text (a PLAINTEXT
    listener): the reply's size is sane and it carries the request's correlation id.

    >>> speaks_plaintext_kafka("127.0.0.1:1")
    False
    """
    for host, port in _addresses(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout) as connection:
                connection.settimeout(timeout)
                connection.sendall(_API_VERSIONS)
                head = b""
                while len(head) < 8 and (chunk := connection.recv(8 - len(head))):
                    head += chunk
        except OSError:
            continue
        if len(head) == 8:
            size, correlation = struct.unpack(">ii", head)
            if 4 <= size <= 1 << 20 and correlation == 7:
                return True
    return False


def accepts_connections(bootstrap: str, timeout: float = 0.5) -> bool:
    """Whether a TCP connection to any address of ``bootstrap`` (``host:port[,...]``) succeeds.

    >>> accepts_connections("127.0.0.1:1")
    False
    """
    for host, port in _addresses(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                return True
        except OSError:
            continue
    return False
