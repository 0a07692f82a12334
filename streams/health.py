"""The worker's HTTP endpoint: ``/metrics`` for Prometheus, ``/healthz`` and ``/readyz`` for orchestration
(the demo serves ``/metrics`` alone through :func:`serve_app`).

- ``/healthz`` (liveness): 200 while the worker's event loop beats and its liveness checks pass (the
  worker adds one: it makes progress on the partitions it owns while they have lag); 503 once the loop has
  not beaten for ``stall_seconds`` or a check fails (a stalled worker is restarted; its uncommitted batch
  is replayed, nothing is lost).
- ``/readyz`` (readiness): 200 when every readiness check passes (broker reachable, partitions assigned
  and tables recovered, the loop beating); 503 with the failing checks otherwise.

Both answer JSON ``{"status": "ok" | "failing", "checks": {name: "ok" | reason}}``; nothing secret and no
chat text goes into them.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

from streams.exceptions import ConfigError

#: A check returns None when healthy, else a short reason.
Check = Callable[[], str | None]


class Health:
    """Liveness from a heartbeat the worker's event loop calls (:meth:`beat`), readiness from checks."""

    def __init__(self, stall_seconds: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        if stall_seconds <= 0:
            raise ValueError(f"stall_seconds must be > 0, got {stall_seconds!r}")
        self.stall_seconds = stall_seconds
        self.clock = clock
        self.liveness: dict[str, Check] = {"heartbeat": self.heartbeat}
        self.readiness: dict[str, Check] = {}
        self._started = clock()
        self._beat: float | None = None
        self._starting = True

    def started(self) -> None:
        """Every check is registered: readiness now depends on them alone (until then: not ready)."""
        self._starting = False

    def beat(self) -> None:
        self._beat = self.clock()

    def add_liveness(self, name: str, check: Check) -> None:
        """A check whose failure means restart me (it counts for readiness too)."""
        self.liveness[name] = check

    def add_readiness(self, name: str, check: Check) -> None:
        """A check whose failure means do not count on me yet (no restart)."""
        self.readiness[name] = check

    def heartbeat(self) -> str | None:
        """None while the loop beats (or during the start-up grace of ``stall_seconds``), else why not."""
        now = self.clock()
        last = self._beat if self._beat is not None else self._started
        if now - last <= self.stall_seconds:
            return None
        what = "last heartbeat" if self._beat is not None else "start, no heartbeat since"
        return f"event loop stalled: {now - last:.0f}s since {what} (limit {self.stall_seconds:.0f}s)"

    def live(self) -> tuple[bool, dict[str, Any]]:
        return _result(self.liveness)

    def ready(self) -> tuple[bool, dict[str, Any]]:
        starting: dict[str, Check] = {"startup": lambda: "starting"} if self._starting else {}
        return _result({**self.liveness, **self.readiness, **starting})


def _result(checks: dict[str, Check]) -> tuple[bool, dict[str, Any]]:
    outcome = {}
    for name, check in checks.items():
        try:
            reason = check()
        except Exception as exc:  # a check that fails to run is a failing check, not a crashed endpoint
            reason = f"check failed: {type(exc).__name__}"
        outcome[name] = "ok" if reason is None else reason
    ok = all(value == "ok" for value in outcome.values())
    return ok, {"status": "ok" if ok else "failing", "checks": outcome}


def wsgi_app(registry: CollectorRegistry, health: Health) -> Callable[..., Iterable[bytes]]:
    metrics = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path in ("/healthz", "/readyz"):
            ok, body = health.live() if path == "/healthz" else health.ready()
            status = "200 OK" if ok else "503 Service Unavailable"
            payload = json.dumps(body).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
            start_response(status, headers)
            return [payload]
        return metrics(environ, start_response)  # type: ignore[no-any-return]

    return app


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Scrapes and probes every few seconds: not worth a log line each."""


def server_url(host: str, port: int, path: str = "") -> str:
    """A URL others can open for a server bound to ``host``: a wildcard address (0.0.0.0, ::) is no address
    to open, so the machine's host name is used (in a container, its name on the network)."""
    if host in ("", "0.0.0.0", "::"):
        host = socket.gethostname()
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{path}"


def serve(registry: CollectorRegistry, health: Health, host: str, port: int) -> _Server:
    """Serve ``/metrics``, ``/healthz`` and ``/readyz`` on ``host:port``, as :func:`serve_app` does."""
    return serve_app(wsgi_app(registry, health), host, port)


def serve_app(app: Callable[..., Iterable[bytes]], host: str, port: int) -> _Server:
    """Serve the WSGI ``app`` on ``host:port`` (0: a free port; an IPv4 or IPv6 address or a host name) from
    a daemon thread; ``server.server_port`` is the port, ``server.shutdown()`` stops it. Raises
    :class:`ConfigError` when the address cannot be bound (a port in use: two workers on one host need
    different ports; a host that does not resolve or is not this machine's)."""
    try:
        addresses = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        server_class = _Server6 if addresses[0][0] == socket.AF_INET6 else _Server
        server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    except (OSError, OverflowError) as exc:  # OverflowError: a port past 65535
        raise ConfigError(
            f"cannot serve metrics on {host}:{port} (CONVOWATCH_METRICS_HOST, CONVOWATCH_METRICS_PORT or "
            f"--metrics-port): {getattr(exc, 'strerror', None) or exc}"
        ) from None
    threading.Thread(target=server.serve_forever, name="convowatch-http", daemon=True).start()
    return server
