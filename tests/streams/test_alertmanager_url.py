"""The Alertmanager URL may carry basic-auth credentials: they reach the Authorization header, never a
message or the URL convowatch logs."""

from __future__ import annotations

import base64

import pytest

from streams.alertmanager_http import AlertsEndpoint


@pytest.mark.parametrize(
    "url",
    [
        "admin:s3cr3t@alertmanager:9093",  # no scheme
        "htp://admin:s3cr3t@alertmanager:9093",  # wrong scheme
        "http://admin:pa/s3cr3t@alertmanager:9093",  # '/' in the password, not encoded
        "http://admin:s3cr3t#x@alertmanager:9093",  # '#' in the password, not encoded
        "http://admin:12/34@alertmanager:9093",  # reads as host "admin", port 12, the rest a path
    ],
)
def test_a_malformed_url_is_refused_without_quoting_any_of_it(url: str) -> None:
    with pytest.raises(ValueError) as refused:
        AlertsEndpoint(url)
    message = str(refused.value)
    for secret in ("s3cr3t", "admin", "alertmanager", "12/34", "pa"):
        assert secret not in message.replace("password", "").replace("percent", ""), message


def test_credentials_go_to_the_authorization_header_and_not_into_the_logged_url() -> None:
    endpoint = AlertsEndpoint("http://admin:p%2Fss%40w0rd@alertmanager:9093/prefix/")
    assert endpoint.url == "http://alertmanager:9093/prefix/api/v2/alerts"
    token = endpoint._headers["Authorization"].removeprefix("Basic ")
    assert base64.b64decode(token).decode() == "admin:p/ss@w0rd"
