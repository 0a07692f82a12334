"""Alertmanager's ``/api/v2/alerts`` endpoint over HTTP: where alerts are POSTed, with which credentials,
and which failures are worth retrying.

Only the standard library is used (:mod:`urllib.request`, which honours ``*_proxy`` variables).
"""

from __future__ import annotations

import base64
import html
import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

ALERTS_PATH = "/api/v2/alerts"
#: of an error page, what a message keeps (characters), and what is read to find the secrets in it first
PAGE_KEPT = 1024
PAGE_READ = 64 * 1024
#: a query parameter's value this long or longer is replaced where a page quotes it alone
MIN_SECRET_VALUE = 4


class AlertmanagerUnavailable(Exception):
    """Alertmanager unreachable, timed out or answered 5xx/408/429: try again later."""


class _RefuseRedirects(urllib.request.HTTPRedirectHandler):
    """No redirect is followed: urllib turns a redirected POST into a GET without its body (which an
    Alertmanager, or a login page, answers 200: alerts counted as sent that nobody received), and sends the
    credentials on to whatever host the redirect names. The 3xx is raised as an :class:`HTTPError`."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def split_url(url: str) -> urllib.parse.SplitResult:
    """``url``'s parts, checked to be an Alertmanager URL :class:`AlertsEndpoint` can post to; else a
    ``ValueError`` that quotes no part of it (it may carry a password, or a proxy's token)."""
    invalid = ValueError(
        "Alertmanager URL must be http(s)://[user:password@]host[:port][/prefix], with '/', '?', '#' and "
        "'@' in the user or password percent-encoded (the value is not shown: it may hold credentials)"
    )
    try:  # urlsplit's and port's messages quote what they read: part of a password, perhaps
        parsed = urllib.parse.urlsplit(url)
        parsed.port  # noqa: B018 (a port that is not a number in 0-65535 raises)
    except ValueError:
        raise invalid from None
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise invalid
    if any(c <= " " or c == "\x7f" for c in url):  # http.client refuses each post, quoting the query
        raise invalid
    if "@" in parsed.path or "@" in parsed.query or "@" in parsed.fragment:
        raise invalid  # a password with an unencoded '/', '?' or '#' ends the host part early
    return parsed


class AlertsEndpoint:
    """POSTs alerts to one Alertmanager.

    ``url`` is Alertmanager's base URL (``http://alertmanager:9093``, with any ``--web.route-prefix``) or
    the full ``.../api/v2/alerts`` endpoint; ``http://user:password@host:9093`` sends HTTP basic auth.
    Raises ``ValueError`` on a URL that is not ``http(s)://host...``.
    """

    def __init__(self, url: str) -> None:
        parsed = split_url(url)
        port = parsed.port
        path = parsed.path.rstrip("/")
        if not path.endswith(ALERTS_PATH):
            path += ALERTS_PATH
        host = parsed.hostname or ""
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{port}" if port else ""
        #: where alerts are POSTed, as logs and error messages show it: without credentials, and without a
        #: query string (a proxy's token may be there)
        self.url = urllib.parse.urlunsplit((parsed.scheme, netloc, path, "", ""))
        self._target = urllib.parse.urlunsplit((parsed.scheme, netloc, path, parsed.query, ""))
        self._headers = {"Content-Type": "application/json", "User-Agent": "convowatch"}
        #: (secret, what replaces it in a message): the query string and the credentials, as sent and decoded
        self._secrets: list[tuple[str, str]] = []
        if parsed.query:
            self._secrets += [(q, "<query>") for q in _spellings(parsed.query)]
            # a page may quote one parameter's value alone ("invalid key: ..."); values this short are no
            # secret, and replacing them would garble the message (a port, a status)
            for _, value in urllib.parse.parse_qsl(parsed.query, keep_blank_values=True):
                if len(value) >= MIN_SECRET_VALUE:
                    self._secrets += [(v, "<query>") for v in _spellings(urllib.parse.quote_plus(value))]
        if parsed.username is not None:  # Alertmanager's --web.config.file basic_auth_users
            user = urllib.parse.unquote(parsed.username)
            password = urllib.parse.unquote(parsed.password or "")
            token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
            userinfo = parsed.netloc.rpartition("@")[0]
            self._secrets += [(token, "<credentials>"), (userinfo, "<credentials>")]
            self._secrets += [(p, "<password>") for p in _spellings(parsed.password or "")]
        # and as an HTML page quotes them (& as &amp;)
        self._secrets += [
            (html.escape(secret), r) for secret, r in self._secrets if html.escape(secret) != secret
        ]
        # longest first: a secret containing another is replaced whole
        self._secrets.sort(key=lambda pair: len(pair[0]), reverse=True)
        self._opener = urllib.request.build_opener(_RefuseRedirects)

    def post(self, alerts: list[dict[str, Any]], timeout: float) -> None:
        """Send ``alerts`` in one request. Raises :class:`AlertmanagerUnavailable` when a retry may succeed,
        ``RuntimeError`` when Alertmanager rejected them (4xx)."""
        body = json.dumps(alerts, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        request = urllib.request.Request(
            self._target,
            data=body,
            method="POST",
            headers=self._headers,
        )
        try:
            with self._opener.open(request, timeout=timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            # a proxy's error page may quote the request line (with the query) or its headers: read well
            # past what is kept, so that no secret is cut in two before it is replaced, then cut
            page = exc.read(PAGE_READ).decode("utf-8", "replace")
            detail = self._without_secrets(page)[:PAGE_KEPT].strip()
            message = f"Alertmanager {self.url} answered HTTP {exc.code}: {detail or exc.reason}"
            if 300 <= exc.code < 400:  # not followed (see _RefuseRedirects); where to is not shown either
                message = (
                    f"Alertmanager {self.url} answered HTTP {exc.code}, a redirect, which is not followed: "
                    "set CONVOWATCH_ALERTMANAGER_URL to where alerts are accepted"
                )
            if exc.code >= 500 or exc.code in (408, 429):
                raise AlertmanagerUnavailable(message) from exc
            raise RuntimeError(message) from exc
        # URLError, refused, reset, timeout; a garbled status line or a response cut short (HTTPException)
        except (OSError, ValueError, http.client.HTTPException) as exc:
            reason = self._without_secrets(str(exc))  # http.client's may quote the path with its query
            raise AlertmanagerUnavailable(f"Alertmanager {self.url} unreachable: {reason}") from None

    def _without_secrets(self, text: str) -> str:
        """``text`` with the URL's query string and credentials (as sent, or percent-decoded) replaced."""
        for secret, replacement in self._secrets:
            text = text.replace(secret, replacement)
        return text


def _spellings(part: str) -> set[str]:
    """``part`` of a URL as sent and as a server may quote it, percent-decoded (``+`` as a space, or not);
    none empty."""
    return {s for s in (part, urllib.parse.unquote(part), urllib.parse.unquote_plus(part)) if s}
