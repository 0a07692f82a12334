"""A worker started while the broker does not answer waits for it (streams/broker_wait.py, streams/worker.py):
against an address nobody listens on (real librdkafka, a refused connection), it logs a warning naming the
address at most once a period, stays live and not ready, ends the wait on SIGTERM or SIGINT with status 0,
and gives up after ``CONVOWATCH_BROKER_WAIT_SECONDS`` naming the address. Until 2026-11-26 it exited 1 after
10 s. The broker's return is tests/reliability/test_startup_outage.py's."""

from __future__ import annotations

import itertools
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.broker_wait import WAIT_PROBE_SECONDS, BrokerWait
from streams.config import Settings
from streams.exceptions import BrokerUnreachable
from tests.support.broker import free_ports
from tests.support.wait import wait_until
from tests.support.worker import health_response

REPO = Path(__file__).resolve().parents[2]
SLACK = 3.0  # for a probe in flight and a busy machine


def closed_address() -> str:
    return f"127.0.0.1:{free_ports(1)[0]}"


def test_the_wait_logs_once_a_period_beats_and_gives_up_naming_the_address(
    caplog: pytest.LogCaptureFixture,
) -> None:
    address = closed_address()
    beats: list[float] = []
    settings = Settings(broker=address, broker_wait_seconds=6.5)
    wait = BrokerWait(settings, beat=lambda: beats.append(time.monotonic()), log_every=3.0)
    started = time.monotonic()
    with (
        caplog.at_level(logging.WARNING, logger="convowatch.broker_wait"),
        pytest.raises(BrokerUnreachable) as gave_up,
    ):
        wait.wait()
    elapsed = time.monotonic() - started
    assert 6.5 <= elapsed < 6.5 + SLACK
    message = str(gave_up.value)
    assert message.startswith(f"the Kafka broker at {address} did not answer within 6.5s")
    assert "(CONVOWATCH_BROKER_WAIT_SECONDS)" in message and "Connection refused" in message
    # a probe every 2 s, each beating (and a last one at the deadline if the one before failed early: a
    # refused connection may fail at once or at the probe's timeout); a warning after the first and the next
    # 3 s or more after it
    spaced = beats[:4]
    assert len(spaced) == 4 and all(b - a >= WAIT_PROBE_SECONDS * 0.9 for a, b in itertools.pairwise(spaced))
    assert len(beats) <= 5 and beats[-1] - started <= 6.5 + 0.1, beats
    warnings = [r.getMessage() for r in caplog.records if r.name == "convowatch.broker_wait"]
    assert len(warnings) == 2, warnings
    assert all(w.startswith(f"Kafka broker at {address} does not answer (") for w in warnings)
    waited = [float(re.findall(r"waiting for it, (\d+)s so far, at most 6.5s", w)[0]) for w in warnings]
    assert waited[0] >= 2 and waited[1] - waited[0] >= 3, warnings


def test_a_stop_ends_the_wait_promptly_and_readiness_says_what_it_waits_for() -> None:
    address = closed_address()
    wait = BrokerWait(Settings(broker=address, broker_wait_seconds=600))
    assert wait.readiness() is None
    outcome: list[bool] = []
    thread = threading.Thread(target=lambda: outcome.append(wait.wait()), daemon=True)
    thread.start()
    assert wait_until(wait.readiness, timeout=10).endswith(f"s for the Kafka broker at {address} to answer")
    reason = wait_until(lambda: ": " in (wait.readiness() or "") and wait.readiness(), timeout=10)
    assert reason.startswith("waiting ") and f"s for the Kafka broker at {address} to answer: " in reason
    assert "Connection refused" in reason
    stopped = time.monotonic()
    wait.stop()
    thread.join(WAIT_PROBE_SECONDS + SLACK)
    assert not thread.is_alive() and outcome == [False]
    assert time.monotonic() - stopped < WAIT_PROBE_SECONDS + SLACK


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_waiting_worker_is_live_not_ready_and_a_signal_stops_it_with_0(
    stop: signal.Signals, tmp_path: Path
) -> None:
    address, port = closed_address(), free_ports(1)[0]
    env = {
        **os.environ,
        "CONVOWATCH_METRICS_PORT": str(port),
        "CONVOWATCH_APP_ID": f"wait-{port}",
        "CONVOWATCH_DATA_DIR": str(tmp_path / "data"),
        "CONVOWATCH_HEALTH_STALL_SECONDS": "3",  # the heartbeat's limit: the wait must beat
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "worker", "--broker", address],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:

        def waited() -> float:
            assert worker.poll() is None, log.read_text()
            status, body = health_response(port, "/readyz")
            assert status == 503, body
            reason = body["checks"].get("broker", "")
            return float(reason.split("s for the Kafka broker")[0].removeprefix("waiting ") or 0)

        wait_until(lambda: waited() >= 4, timeout=30, interval=0.2, ignore=(OSError, ValueError))  # > 3 s
        status, body = health_response(port, "/healthz")
        assert status == 200, body
        assert f"Kafka broker at {address}" in health_response(port, "/readyz")[1]["checks"]["broker"]
        stopped = time.monotonic()
        worker.send_signal(stop)
        code = worker.wait(WAIT_PROBE_SECONDS + SLACK)
        assert time.monotonic() - stopped < WAIT_PROBE_SECONDS + SLACK
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    output = log.read_text()
    assert code == 0, output
    assert f"Kafka broker at {address} does not answer (" in output
    assert output.count("does not answer") == 1  # once a minute
    assert f"stopped while waiting for the Kafka broker at {address}" in output
    assert "Traceback" not in output


def listener(answer: Callable[[socket.socket], None]) -> str:
    """The address of a TCP listener that is not Kafka's, ``answer`` handling each connection."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            connection, _ = server.accept()
            answer(connection)

    threading.Thread(target=serve, daemon=True).start()
    return f"127.0.0.1:{server.getsockname()[1]}"


def http(connection: socket.socket) -> None:
    connection.recv(4096)
    connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
    connection.close()


def test_a_listener_of_another_protocol_ends_the_wait_naming_the_protocol_setting() -> None:
    """An HTTP server where the broker should be (a wrong port): librdkafka reads its answer as a Kafka
    message of 1.2 GB. Found by review (2026-11-26): that, and a TLS client on a PLAINTEXT listener, waited
    the whole bound (900 s) as a broker that "does not answer", the message naming only the address."""
    address = listener(http)
    wait = BrokerWait(Settings(broker=address, broker_wait_seconds=60), mismatch_patience=3)
    started = time.monotonic()
    with pytest.raises(BrokerUnreachable) as refused:
        wait.wait()
    assert 3 <= time.monotonic() - started < 3 + WAIT_PROBE_SECONDS + SLACK
    message = str(refused.value)
    assert message.startswith(f"the listener at {address} does not speak Kafka over PLAINTEXT ("), message
    assert "check CONVOWATCH_SECURITY_PROTOCOL" in message


def test_an_address_that_accepts_connections_without_answering_is_waited_for_and_said_so() -> None:
    """A broker starting up or hung (connections accepted, never answered): waited for, as librdkafka cannot
    tell it from a TLS listener to a PLAINTEXT client; the reason says both."""
    held: list[socket.socket] = []
    address = listener(held.append)
    wait = BrokerWait(Settings(broker=address, broker_wait_seconds=600), mismatch_patience=1)
    reason = still_waiting(wait, "accepts connections")
    assert "does not answer as Kafka over PLAINTEXT: starting up, hung, or not" in reason
    assert "(CONVOWATCH_SECURITY_PROTOCOL)" in reason


def test_a_tls_client_at_an_address_that_closes_its_connections_waits() -> None:
    """A broker at its connection quota, or a proxy with no broker behind it, closes a TLS client's
    handshake as a PLAINTEXT listener does ("connecting to a PLAINTEXT broker listener?"): waited for, as a
    broker that does not answer. Found by review (2026-11-26): the first version of the protocol check
    took it for a wrong protocol and exited 1 after 12 s, a crash loop."""
    address = listener(lambda connection: connection.close())
    settings = Settings(broker=address, security_protocol="SSL", broker_wait_seconds=600)
    wait = BrokerWait(settings, mismatch_patience=1)
    reason = still_waiting(wait, "connection quota")
    assert "PLAINTEXT broker listener?" in reason and "(CONVOWATCH_SECURITY_PROTOCOL)" in reason


def still_waiting(wait: BrokerWait, says: str) -> str:
    """Run ``wait`` until its readiness reason ``says`` something, check it still waits 2 probes past its
    patience for another protocol (1 s), stop it; the reason."""
    thread = threading.Thread(target=wait.wait, daemon=True)
    thread.start()
    try:
        reason: str = wait_until(lambda: says in (wait.readiness() or "") and wait.readiness(), 15)
        thread.join(wait.mismatch_patience + 2 * WAIT_PROBE_SECONDS)
        assert thread.is_alive()
    finally:
        wait.stop()
        thread.join(WAIT_PROBE_SECONDS + SLACK)
    assert not thread.is_alive()
    return reason
