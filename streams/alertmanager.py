"""Escalations to Prometheus Alertmanager: one alert per escalation, kept alive while it fires.

:class:`AlertmanagerSink` owns the client side of Alertmanager's protocol, which is the one Prometheus
follows (the alert of an escalation is built by :func:`streams.alertmanager_payload.alert_from_escalation`,
held by :class:`streams.alertmanager_held.HeldAlerts` and POSTed by
:class:`streams.alertmanager_http.AlertsEndpoint`):

- a new or changed escalation is POSTed to ``/api/v2/alerts`` at once (batched for ~150 ms);
- every active alert is re-sent every ``resend_seconds`` (default 60) with ``endsAt`` = now + 4 x
  ``resend_seconds``: Alertmanager considers an alert resolved once its ``endsAt`` has passed, so alerts of
  a convowatch process that died resolve by themselves a few minutes later instead of firing forever;
- an escalation published with ``status: resolved`` is sent once with ``endsAt`` = now, then forgotten;
- ``high_risk_failure`` escalations are about one turn and nothing ever resolves them, so the sink resolves
  them itself after ``expire_after`` seconds (default 6 h) without an update; otherwise Alertmanager's
  state, and the pages it sends, would grow without bound. A later revision of the same escalation fires
  it again. Kinds with a resolution signal of their own (spikes, drift) are never expired;
- HTTP and connection errors are retried with exponential backoff; nothing ever raises into the caller.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from streams.alertmanager_held import HeldAlerts, Outgoing
from streams.alertmanager_http import AlertmanagerUnavailable, AlertsEndpoint
from streams.alertmanager_payload import alert_from_escalation, alert_labels

_log = logging.getLogger(__name__)

#: Escalation kinds that nothing resolves (one per turn): :class:`AlertmanagerSink` expires them.
EXPIRING_KINDS = frozenset({"high_risk_failure"})


class AlertmanagerSink:
    """Keeps Alertmanager's view of convowatch's escalations current, from a background thread.

    ``publish`` is cheap, thread-safe and never raises. Call :meth:`start` once and :meth:`close` at the
    end (or use the sink as a context manager). Counters, readable as attributes at any time: ``sent``
    (alerts Alertmanager accepted), ``failed`` (alerts in POSTs that failed, each attempt counted, as in
    Prometheus' ``prometheus_notifications_errors_total``), ``dropped`` (active alerts forgotten because
    more than ``max_active`` were held: Alertmanager resolves them when their ``endsAt`` passes),
    ``expired`` (alerts resolved by ``expire_after``), ``invalid`` (escalations that could not be turned
    into an alert). ``metrics``, if given, is called as ``metrics(name, amount)`` on every change of one.

    ``url`` is Alertmanager's base URL (``http://alertmanager:9093``, with any ``--web.route-prefix``) or
    the full ``.../api/v2/alerts`` endpoint; ``http://user:password@host:9093`` sends HTTP basic auth.
    The sink sends to one Alertmanager. Alertmanagers in a highly available cluster share silences and
    notification logs but not alerts: run one sink per instance, never one behind a load balancer.
    """

    def __init__(
        self,
        url: str,
        *,
        generator_url: str | None = None,
        resend_seconds: float = 60.0,
        expire_after: float | None = 6 * 3600.0,
        expiring_kinds: frozenset[str] = EXPIRING_KINDS,
        max_active: int = 10_000,
        batch_delay: float = 0.15,
        max_batch: int = 500,
        timeout: float = 10.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        metrics: Callable[[str, int], None] | None = None,
        teams: Mapping[str, str] | None = None,
    ) -> None:
        self._alerts = AlertsEndpoint(url)
        if resend_seconds <= 0 or max_active < 1 or max_batch < 1 or timeout <= 0 or batch_delay < 0:
            raise ValueError("resend_seconds, max_active, max_batch and timeout must be positive")
        if expire_after is not None and expire_after <= 0:
            raise ValueError("expire_after must be positive (or None to never expire)")
        #: where alerts are POSTed (without credentials: it appears in logs and ``last_error``)
        self.endpoint = self._alerts.url
        self.generator_url = generator_url
        self.resend_seconds = resend_seconds
        # max_active, expiring_kinds and expire_after: read-only properties, held by HeldAlerts
        self._held = HeldAlerts(max_active, frozenset(expiring_kinds), expire_after)
        self.batch_delay = batch_delay
        self.max_batch = max_batch
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = max(backoff_max, backoff_initial)
        self._metrics = metrics
        #: owning team per dimension (the taxonomy's ``owner``): the alert's ``team`` label, for routing
        self.teams = dict(teams or {})

        self.sent = 0
        self.failed = 0
        self.dropped = 0
        self.expired = 0
        self.invalid = 0
        self.last_error: str | None = None

        self._cond = threading.Condition(threading.Lock())
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._flush_at: float | None = None
        self._in_flight = 0
        self._close_timeout = 5.0
        self._scan_interval = max(0.05, min(resend_seconds, expire_after or math.inf, 60.0) / 4)
        self._next_scan = time.monotonic() + self._scan_interval
        self._retry_at = 0.0
        self._backoff = backoff_initial

    # -- caller side ---------------------------------------------------------------------------------

    def publish(self, escalation: Mapping[str, Any], source: Any = None) -> None:
        """Record a new or updated escalation (status ``resolved`` resolves it); sent shortly after.
        ``source`` (hashable: the topic partition it came from) lets :meth:`forget` drop it."""
        try:
            self._publish(escalation, source)
        except Exception as exc:  # never into the pipeline
            with self._cond:
                self.invalid += 1
            _log.warning("escalation not sent to Alertmanager: %s", exc)
            self._count("invalid", 1)

    def _publish(self, escalation: Mapping[str, Any], source: Any) -> None:
        value = copy.deepcopy(dict(escalation))  # held for hours: not shared with the caller
        if team := self.teams.get(str(value.get("dimension") or "")):
            value["team"] = team
        labels = alert_labels(value)  # rejects what could never be sent, here rather than later
        with self._cond:
            now = time.monotonic()
            dropped = self._held.record(value, labels, source, now)
            if dropped is None:
                return  # re-delivered or out of date (at-least-once delivery)
            if self._flush_at is None:
                self._flush_at = now + self.batch_delay
            self.dropped += dropped
            self._cond.notify_all()
        if dropped:
            _log.warning(
                "more than %d active alerts: dropped the %d least recently updated", self.max_active, dropped
            )
            self._count("dropped", dropped)

    def forget(self, keep: Callable[[Any], bool]) -> int:
        """Stop holding (and re-sending) the firing alerts whose ``source`` ``keep`` refuses, without
        resolving them; how many. After a rebalance: another worker publishes their updates now, and a copy
        re-sent from here would fire again what that worker resolves. Resolves not yet delivered stay."""
        with self._cond:
            forgotten = self._held.forget(keep)
        if forgotten:
            _log.info("no longer re-sending %d alerts of partitions another worker owns now", forgotten)
        return forgotten

    @property
    def max_active(self) -> int:
        """Most alerts held; past it the least recently updated are dropped."""
        return self._held.max_active

    @property
    def expiring_kinds(self) -> frozenset[str]:
        """Escalation kinds whose alerts resolve after ``expire_after`` seconds without an update."""
        return self._held.expiring_kinds

    @property
    def expire_after(self) -> float | None:
        """Seconds without an update before an alert of ``expiring_kinds`` resolves (None: never)."""
        return self._held.expire_after

    @property
    def active(self) -> int:
        """Alerts held: firing, or resolved and not yet delivered."""
        with self._cond:
            return len(self._held)

    def escalations(self) -> list[dict[str, Any]]:
        """The escalations held (latest revision each), least recently updated first."""
        with self._cond:
            return self._held.escalations()

    @property
    def pending(self) -> int:
        """Alerts waiting to be sent, or being sent."""
        with self._cond:
            return self._held.waiting + self._in_flight

    def flush(self, timeout: float = 5.0) -> bool:
        """Send new and changed alerts now; wait until none is waiting (``False`` after ``timeout``).

        Alerts Alertmanager rejected (HTTP 4xx) are not waited for; those waiting for a retry are.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            if self._flush_at is not None:
                self._flush_at = time.monotonic()  # no need to wait for the batch delay
                self._cond.notify_all()
            while self._held.waiting or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(min(remaining, 0.5))
            return True

    def start(self) -> AlertmanagerSink:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="convowatch-alertmanager", daemon=True)
            self._thread.start()
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread after one last attempt (bounded by ``timeout``) to send what is pending.

        Firing alerts are not resolved (a process stopping does not end the problem): unless something
        re-sends them, Alertmanager resolves them when their ``endsAt`` (4 x ``resend_seconds``) passes.
        """
        with self._cond:
            self._close_timeout = timeout
            self._stop.set()
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout + 1.0)

    def __enter__(self) -> AlertmanagerSink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- background thread ---------------------------------------------------------------------------

    def _count(self, name: str, amount: int) -> None:
        if self._metrics is not None and amount:
            try:
                self._metrics(name, amount)
            except Exception:
                _log.exception("Alertmanager sink metrics callback failed")

    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cond:
                now = time.monotonic()
                due = self._due(now)
                if due > now:
                    self._cond.wait(due - now)
                    continue
                batch = self._collect(now)
            if batch:
                self._send(batch, self.timeout)
        with self._cond:  # last attempt, no retry
            batch = self._collect(time.monotonic(), scan=False)
        if batch:
            self._send(batch, min(self.timeout, self._close_timeout))

    def _due(self, now: float) -> float:
        """When the thread must next act (monotonic)."""
        if now < self._retry_at:
            return self._retry_at
        due = self._next_scan
        if self._held.waiting:
            due = min(due, self._flush_at if self._flush_at is not None else now)
        return due

    def _collect(self, now: float, scan: bool = True) -> list[Outgoing]:
        """Take what must be sent now: new and changed alerts, and (on a scan) those due for re-sending."""
        self._flush_at = None
        resend_before = None
        if scan and now >= self._next_scan:
            self._next_scan = now + self._scan_interval
            # due a little early rather than a whole scan late
            resend_before = now - self.resend_seconds + self._scan_interval / 2
        batch, expired = self._held.take(now, resend_before)
        self.expired += expired
        if expired:
            _log.info("resolved %d high-risk alerts without updates for %.0f s", expired, self.expire_after)
            self._count("expired", expired)
        self._in_flight = len(batch)
        return batch

    def _send(self, batch: list[Outgoing], timeout: float) -> None:
        now = datetime.now(UTC)
        valid_until = now + timedelta(seconds=4 * self.resend_seconds)
        items: list[tuple[str, int, dict[str, Any]]] = []
        for out in batch:
            try:
                alert = alert_from_escalation(
                    out.escalation,
                    self.generator_url,
                    out.resolved_at,
                    valid_until=valid_until,
                    now=now,
                    latest_start=out.first_seen,
                )
            except Exception as exc:  # checked in publish; kept from killing the thread
                _log.warning("escalation %s not sent to Alertmanager: %s", out.eid, exc)
                continue
            items.append((out.eid, out.version, alert))
        for start in range(0, len(items), self.max_batch):
            chunk = items[start : start + self.max_batch]
            try:
                self._alerts.post([alert for _, _, alert in chunk], timeout)
            except AlertmanagerUnavailable as exc:
                self._failed(chunk, items[start + self.max_batch :], str(exc))
                return
            except Exception as exc:  # rejected (4xx) or a bug: retrying the same alerts will not help
                self._done_with(chunk, delivered=False, error=str(exc))
                continue
            self._done_with(chunk, delivered=True)
        with self._cond:
            self._in_flight = 0
            self._cond.notify_all()

    def _failed(self, chunk: list[Any], rest: list[Any], error: str) -> None:
        with self._cond:
            first = self.last_error is None
            self.failed += len(chunk)
            self.last_error = error
            self._held.retry(eid for eid, _, _ in chunk + rest)  # sent again after the backoff
            delay = self._backoff * random.uniform(0.75, 1.0)
            self._backoff = min(self._backoff * 2, self.backoff_max)
            self._retry_at = time.monotonic() + delay
            self._in_flight = 0
            self._cond.notify_all()
        (_log.warning if first else _log.debug)("%s; retrying in %.1f s", error, delay)
        self._count("failed", len(chunk))

    def _done_with(
        self, chunk: list[tuple[str, int, dict[str, Any]]], delivered: bool, error: str = ""
    ) -> None:
        recovered = False
        with self._cond:
            self._held.done_with(chunk, time.monotonic())
            if delivered:
                self.sent += len(chunk)
                recovered = self.last_error is not None
                self.last_error = None
                self._backoff = self.backoff_initial
            else:
                self.failed += len(chunk)
                self.last_error = error
        if delivered:
            if recovered:
                _log.info("Alertmanager %s reachable again", self.endpoint)
            self._count("sent", len(chunk))
        else:
            _log.error("%s; %d alerts not accepted", error, len(chunk))
            self._count("failed", len(chunk))
