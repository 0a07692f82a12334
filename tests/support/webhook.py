"""A tiny threaded HTTP server that records the JSON bodies POSTed to it (Alertmanager webhook payloads).

It answers 200 unless told otherwise: ``statuses`` queues the status codes of the next requests (e.g.
``[500, 500]`` to fail twice, then succeed), which lets tests check a client's retry behaviour.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar

from tests.support.wait import wait_until

T = TypeVar("T")


@dataclass(frozen=True)
class Received:
    """One request: path, parsed JSON body (``None`` if not JSON), the status answered, arrival time."""

    path: str
    body: Any
    status: int
    at: float  # time.monotonic()
    headers: dict[str, str]


class WebhookServer:
    """``with WebhookServer() as hook:`` serves on ``hook.url`` (127.0.0.1, a free port)."""

    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self._lock = threading.Lock()
        self._statuses: deque[int] = deque(statuses)
        self._received: list[Received] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                with server._lock:
                    status = server._statuses.popleft() if server._statuses else 200
                    server._received.append(
                        Received(self.path, body, status, time.monotonic(), dict(self.headers.items()))
                    )
                reply = b"{}" if status < 400 else b'{"error":"injected failure"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> WebhookServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="webhook", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(10)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> WebhookServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fail_next(self, *statuses: int) -> None:
        """Answer the next requests with these status codes (then 200 again)."""
        with self._lock:
            self._statuses.extend(statuses)

    @property
    def received(self) -> list[Received]:
        """Every request so far, oldest first (a copy)."""
        with self._lock:
            return list(self._received)

    def bodies(self, path: str | None = None) -> list[Any]:
        """The JSON bodies received (on ``path`` only, if given), oldest first."""
        return [r.body for r in self.received if path is None or r.path == path]

    def wait_for(self, predicate: Callable[[list[Received]], T], timeout: float = 10.0) -> T:
        """Wait until ``predicate(received)`` is truthy and return it; ``AssertionError`` on timeout."""
        return wait_until(
            lambda: predicate(self.received),
            timeout=timeout,
            interval=0.02,
            message=lambda: f"webhook received {len(self.received)} requests: {self._describe()}",
        )

    def _describe(self, limit: int = 4000) -> str:
        text = json.dumps([{"path": r.path, "status": r.status, "body": r.body} for r in self.received])
        return text if len(text) <= limit else text[:limit] + "..."
