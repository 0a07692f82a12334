"""/healthz and /readyz: liveness from the event loop's heartbeat and progress, readiness from checks."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter

from streams.exceptions import ConfigError
from streams.health import Health, serve, server_url
from streams.worker import loop_heartbeat, partitions_check, progress_check
from tests.support.wait import wait_until


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(url: str) -> tuple[int, dict[str, Any] | str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as exc:
        body, status = exc.read().decode(), exc.code
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


def test_liveness_has_a_startup_grace_then_needs_heartbeats() -> None:
    clock = FakeClock()
    health = Health(stall_seconds=30, clock=clock)
    clock.now += 30
    assert health.live() == (True, {"status": "ok", "checks": {"heartbeat": "ok"}})
    clock.now += 1
    ok, body = health.live()
    assert not ok and body["checks"]["heartbeat"].startswith("event loop stalled: 31s since start")
    health.beat()
    clock.now += 30
    assert health.live()[0]
    clock.now += 5
    ok, body = health.live()
    assert not ok and "35s since last heartbeat" in body["checks"]["heartbeat"]


def test_readiness_includes_liveness_and_a_broken_check_fails_without_raising() -> None:
    health = Health(stall_seconds=30, clock=FakeClock())
    health.add_readiness("broker", lambda: None)
    assert health.ready() == (
        False,
        {"status": "failing", "checks": {"heartbeat": "ok", "broker": "ok", "startup": "starting"}},
    )
    health.started()
    assert health.ready()[0]
    health.add_readiness("partitions", lambda: "rebalancing")
    health.add_readiness("broken", lambda: 1 / 0)  # type: ignore[arg-type,return-value]
    ok, body = health.ready()
    assert not ok
    assert body == {
        "status": "failing",
        "checks": {
            "heartbeat": "ok",
            "broker": "ok",
            "partitions": "rebalancing",
            "broken": "check failed: ZeroDivisionError",
        },
    }
    assert health.live()[0]  # readiness checks never fail liveness


def test_stall_seconds_must_be_positive() -> None:
    with pytest.raises(ValueError, match="stall_seconds"):
        Health(stall_seconds=0)


def test_http_endpoints_serve_health_and_metrics() -> None:
    registry = CollectorRegistry()
    Counter("convowatch_probe_total", "A probe counter.", registry=registry).inc(3)
    clock = FakeClock()
    health = Health(stall_seconds=10, clock=clock)
    ready = {"value": "waiting for the first partition assignment and table recovery"}
    health.add_readiness("partitions", lambda: ready["value"])
    health.started()
    server = serve(registry, health, "127.0.0.1", 0)
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        assert get(f"{base}/healthz") == (200, {"status": "ok", "checks": {"heartbeat": "ok"}})
        status, body = get(f"{base}/readyz")
        assert status == 503 and isinstance(body, dict)
        assert body["checks"]["partitions"] == ready["value"]
        ready["value"] = None  # type: ignore[assignment]
        assert get(f"{base}/readyz")[0] == 200
        status, text = get(f"{base}/metrics")
        assert status == 200 and "convowatch_probe_total 3.0" in str(text)
        clock.now += 11
        status, body = get(f"{base}/healthz")
        assert status == 503 and isinstance(body, dict) and body["status"] == "failing"
        assert get(f"{base}/readyz")[0] == 503
    finally:
        server.shutdown()


def test_loop_heartbeat_goes_stale_while_the_loop_is_blocked() -> None:
    loop = asyncio.new_event_loop()
    runner = threading.Thread(target=loop.run_forever, daemon=True)
    runner.start()
    health = Health(stall_seconds=0.5)
    beats = loop_heartbeat(loop, health.beat)
    beats.interval = 0.05
    beats.start()
    try:
        wait_until(lambda: health.live()[0], timeout=5)
        release = threading.Event()
        loop.call_soon_threadsafe(release.wait, 10)  # a callback that blocks the loop, as a stall does
        wait_until(lambda: not health.live()[0], timeout=5, message="heartbeat stayed fresh while blocked")
        release.set()
        wait_until(lambda: health.live()[0], timeout=5, message="heartbeat did not come back")
    finally:
        beats.stop()
        loop.call_soon_threadsafe(loop.stop)
        runner.join(5)
        loop.close()


def transport(recovered: bool = True, rebalancing: bool = False, idle: float = 0.0) -> Any:
    return SimpleNamespace(
        recovered=recovered,
        app=SimpleNamespace(rebalancing=rebalancing),
        owned=frozenset({("in", 0), ("in", 1)}),
        last_progress=time.monotonic() - idle,
    )


@pytest.mark.parametrize(
    ("kwargs", "lag", "failing"),
    [
        ({"idle": 100}, {("in", 0): 5, ("in", 2): 0}, True),  # owned partition behind, no batch for 100 s
        ({"idle": 100}, {("in", 0): 0, ("in", 2): 9}, False),  # only another worker's partition is behind
        ({"idle": 10}, {("in", 0): 5}, False),  # progress within the limit
        ({"idle": 100, "rebalancing": True}, {("in", 0): 5}, False),  # recovery may take longer
        ({"idle": 100, "recovered": False}, {("in", 0): 5}, False),
        ({"idle": 100, "broker_down": True}, {("in", 0): 5}, False),  # a restart would not help
        ({"idle": 100, "broker_back": 10}, {("in", 0): 5}, False),  # back 10 s ago: time to resume
        ({"idle": 100, "broker_back": 70}, {("in", 0): 5}, True),
        ({"idle": 100, "refused": 10}, {("in", 0): 5}, False),  # refused 10 s: maybe a broker starting up
        ({"idle": 100, "refused": 70}, {("in", 0): 5}, True),  # refused for longer: a restart mends that
        ({"idle": 100, "refused": 70}, {("in", 0): 0}, True),  # lag or not: the lag monitor is refused too
    ],
)
def test_progress_check_fails_only_for_owned_lag_without_progress(
    kwargs: dict[str, Any], lag: dict[tuple[str, int], int], failing: bool
) -> None:
    now = time.monotonic()
    refused = kwargs.pop("refused", None)
    down = kwargs.pop("broker_down", False) or refused is not None
    monitor = SimpleNamespace(
        down_since=now - max(5, refused or 0) if down else None,
        up_since=now - kwargs.pop("broker_back", 1000),
        refused_since=now - refused if refused is not None else None,
    )
    monitor.unreachable = down and refused is None
    check = progress_check(transport(**kwargs), SimpleNamespace(latest=lag), monitor, stall_seconds=60)  # type: ignore[arg-type]
    reason = check()
    assert (reason is not None) is failing
    if failing:
        expected = "has refused this worker for 70s" if refused is not None else "5 messages wait"
        assert reason is not None and expected in reason


def test_partitions_check() -> None:
    assert partitions_check(transport(recovered=False)) is not None  # type: ignore[arg-type]
    assert partitions_check(transport(rebalancing=True)) == "rebalancing"  # type: ignore[arg-type]
    assert partitions_check(transport()) is None  # type: ignore[arg-type]


def test_a_port_in_use_is_a_config_error_naming_the_setting() -> None:
    first = serve(CollectorRegistry(), Health(60), "127.0.0.1", 0)
    try:
        with pytest.raises(ConfigError, match="CONVOWATCH_METRICS_PORT"):
            serve(CollectorRegistry(), Health(60), "127.0.0.1", first.server_port)
    finally:
        first.shutdown()


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_an_ipv6_host_is_served() -> None:
    # the server was IPv4 only: CONVOWATCH_METRICS_HOST=::1 (or ::) failed with "Address family for
    # hostname not supported". Fails, never skips, without an IPv6 loopback (as the servers' tests do)
    if not _ipv6_loopback():
        pytest.fail("this machine has no IPv6 loopback (::1): the IPv6 metrics server cannot be tested")
    server = serve(CollectorRegistry(), Health(60), "::1", 0)
    try:
        assert get(f"http://[::1]:{server.server_port}/healthz")[0] == 200
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("host", ["256.1.1.1", "no-such-host.invalid"])
def test_a_host_that_does_not_resolve_is_a_config_error_naming_it(host: str) -> None:
    with pytest.raises(ConfigError, match=f"cannot serve metrics on {host}:0 .*CONVOWATCH_METRICS_HOST"):
        serve(CollectorRegistry(), Health(60), host, 0)


def test_a_port_out_of_range_is_a_config_error() -> None:
    # Settings refuses it; a caller passing it on (the demo's run_demo) got an OverflowError from bind()
    with pytest.raises(
        ConfigError, match=r"cannot serve metrics on 127\.0\.0\.1:99999 .*port must be 0-65535"
    ):
        serve(CollectorRegistry(), Health(60), "127.0.0.1", 99999)


def test_alerts_link_to_an_address_others_can_open() -> None:
    # bound to every interface (as in the compose file), the generator URL read http://0.0.0.0:9108
    assert server_url("0.0.0.0", 9108, "/metrics") == f"http://{socket.gethostname()}:9108/metrics"
    assert server_url("127.0.0.1", 9108) == "http://127.0.0.1:9108"
    assert server_url("::1", 9108) == "http://[::1]:9108"
