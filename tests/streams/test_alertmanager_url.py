"""The Alertmanager URL may carry basic-auth credentials: they reach the Authorization header, never a
message, the URL convowatch logs, or a host a redirect names; and which answers are worth a retry."""

from __future__ import annotations

import base64
import html
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from streams.alertmanager_http import PAGE_KEPT, AlertmanagerUnavailable, AlertsEndpoint
from tests.support.webhook import WebhookServer


@pytest.mark.parametrize(
    "url",
    [
        "admin:s3cr3t@alertmanager:9093",  # no scheme
        "htp://admin:s3cr3t@alertmanager:9093",  # wrong scheme
        "http://admin:pa/s3cr3t@alertmanager:9093",  # '/' in the password, not encoded
        "http://admin:s3cr3t#x@alertmanager:9093",  # '#' in the password, not encoded
        "http://admin:12/34@alertmanager:9093",  # reads as host "admin", port 12, the rest a path
        "http://admin:s3cr3t[pa]@alertmanager:9093",  # brackets: urlsplit quotes what it took for an IPv6
        "http://admin:s3cr3t\u2100@alertmanager:9093",  # NFKC makes it a/c: urlsplit quotes the netloc
        # http.client refuses a space or a control character in each post, quoting the path and query
        "http://alertmanager:9093/?token=admin s3cr3t",
        "http://alertmanager:9093/?token=admin\ts3cr3t",
    ],
)
def test_a_malformed_url_is_refused_without_quoting_any_of_it(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        AlertsEndpoint(url)
    message = str(refused.value)
    for secret in ("s3cr3t", "admin", "alertmanager", "12/34", "pa"):
        assert secret not in message.replace("password", "").replace("percent", ""), message


def test_a_query_string_is_sent_and_not_shown() -> None:
    """A proxy's token may be in it: the logged URL (and every message) goes without it."""
    with WebhookServer() as hook:
        endpoint = AlertsEndpoint(f"{hook.url}/prefix?token=s3cr3t")
        assert endpoint.url == f"{hook.url}/prefix/api/v2/alerts"
        endpoint.post([{"labels": {"alertname": "x"}}], timeout=5)
        (received,) = hook.received
        assert received.path == "/prefix/api/v2/alerts?token=s3cr3t"
        hook.fail_next(400)
        with pytest.raises(RuntimeError) as rejected:
            endpoint.post([{"labels": {"alertname": "x"}}], timeout=5)
        assert "s3cr3t" not in str(rejected.value)


def test_an_unreachable_alertmanager_is_reported_without_the_query_string() -> None:
    # the standard library's errors may quote the path with its query, where a proxy's token may be
    class Refusing(AlertsEndpoint):
        def __init__(self, url: str) -> None:
            super().__init__(url)
            target = self._target

            class Opener:
                def open(self, request: Any, timeout: float) -> None:
                    raise OSError(f"cannot reach {target}")

            self._opener = Opener()  # type: ignore[assignment]

    endpoint = Refusing("http://alertmanager:9093/?token=s3cr3t")
    with pytest.raises(AlertmanagerUnavailable) as unavailable:
        endpoint.post([{"labels": {"alertname": "x"}}], timeout=1)
    assert "s3cr3t" not in str(unavailable.value) and "<query>" in str(unavailable.value)
    assert unavailable.value.__cause__ is None and unavailable.value.__suppress_context__


def test_credentials_go_to_the_authorization_header_and_not_into_the_logged_url() -> None:
    endpoint = AlertsEndpoint("http://admin:p%2Fss%40w0rd@alertmanager:9093/prefix/")
    assert endpoint.url == "http://alertmanager:9093/prefix/api/v2/alerts"
    token = endpoint._headers["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(token).decode() == "admin:p/ss@w0rd"


@contextmanager
def echoing(status: int) -> Iterator[str]:
    """A gateway answering every request ``status`` with an error page quoting the request line, percent-
    decoded too, and the Authorization header (as some proxies' and WAFs' error pages do)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            decoded = urllib.parse.unquote(self.path)
            page = f"{self.command} {self.path} ({decoded}) refused, {self.headers.get('Authorization')}"
            query = urllib.parse.urlsplit(self.path).query
            values = [v for _, v in urllib.parse.parse_qsl(query, keep_blank_values=True)]
            # a parameter's value alone, the query HTML-escaped, and the query again where the page is cut
            page += f"; invalid key: {values[0] if values else ''}; <p>{html.escape(decoded)}</p>; "
            shown = len(self.path) - len(query) + len(query) // 2  # the page is cut inside the query
            page += "." * (PAGE_KEPT - len(page.encode()) - shown) + self.path
            body = page.encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(("status", "error"), [(403, RuntimeError), (502, AlertmanagerUnavailable)])
def test_an_error_page_quoting_the_request_shows_neither_query_nor_credentials(
    status: int, error: type[Exception]
) -> None:
    """The sink logs the message at ERROR, and keeps it as its last error."""
    with echoing(status) as gateway:
        endpoint = AlertsEndpoint(f"http://admin:Pw%2Fs3cret@{gateway}/am?token=Tok%2Bs3cret&x=1")
        with pytest.raises(error) as failed:
            endpoint.post([{"labels": {"alertname": "x"}}], timeout=5)
    message = str(failed.value)
    assert f"answered HTTP {status}: POST /am/api/v2/alerts?<query> (/am/api/v2/alerts?<query>)" in message
    token = endpoint._headers["Authorization"].removeprefix("Basic ")
    # gone too: the token alone, in the HTML-escaped query, and its first half where the page was cut
    for secret in ("s3cret", token, "Tok+", "Tok%2B", "Tok", "Pw/", "token=T"):
        assert secret not in message, message
    assert "refused, Basic <credentials>; invalid key: <query>; <p>/am/api/v2/alerts?<query></p>" in message


@contextmanager
def redirecting(to: str) -> Iterator[str]:
    """A server answering every request 301 to ``to`` (an http->https ingress, an SSO proxy's login)."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.send_response(301)
            self.send_header("Location", to + self.path)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_redirect_is_refused_so_no_alert_counts_as_sent_and_the_credentials_stay() -> None:
    """urllib would follow it as a GET without the alerts, which Alertmanager answers 200 (its alert list),
    and would send the Authorization header to the host the redirect names."""
    with WebhookServer() as elsewhere, redirecting(elsewhere.url) as front:
        endpoint = AlertsEndpoint(f"http://admin:s3cr3t@{front}")
        with pytest.raises(RuntimeError, match="HTTP 301, a redirect, which is not followed") as refused:
            endpoint.post([{"labels": {"alertname": "x"}}], timeout=5)
        assert "s3cr3t" not in str(refused.value)
        assert elsewhere.received == []


def test_a_response_cut_short_may_succeed_when_retried() -> None:
    """A proxy dropping the connection mid-answer: not a rejection (whose alerts are not sent again)."""
    listener = socket.create_server(("127.0.0.1", 0))

    def answer_half() -> None:
        conn, _ = listener.accept()
        with conn:
            # the whole request first: answered and closed while the client still sent its body, the post
            # failed on a reset connection instead (under load, when the request came in two segments)
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            head, body = request.split(b"\r\n\r\n", 1)
            length = int(
                next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:"))[15:]
            )
            while len(body) < length:
                body += conn.recv(65536)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}")

    thread = threading.Thread(target=answer_half, daemon=True)
    thread.start()
    try:
        endpoint = AlertsEndpoint(f"http://127.0.0.1:{listener.getsockname()[1]}")
        with pytest.raises(AlertmanagerUnavailable, match="IncompleteRead"):
            endpoint.post([{"labels": {"alertname": "x"}}], timeout=5)
    finally:
        thread.join(5)
        listener.close()
