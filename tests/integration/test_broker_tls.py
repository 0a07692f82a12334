"""What an operator is told when convowatch cannot talk to a SASL_SSL broker: a TLS handshake that fails
(a CA that did not sign the broker's certificate, or none) is named as such with the settings to check,
not as an unreachable address; rejected credentials name the mechanism in use."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from prometheus_client import CollectorRegistry

from streams.config import Settings
from streams.kafka_client import BrokerMonitor
from streams.metrics import Metrics
from tests.support.broker import BrokerError
from tests.support.tls_broker import USER, TlsBroker
from tests.support.worker import run_cli

pytestmark = pytest.mark.kafka

PASSWORD = f"Pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def tls_broker() -> Iterator[TlsBroker]:
    broker = TlsBroker(PASSWORD)
    try:
        broker.start()
    except BrokerError as exc:
        broker.close()
        pytest.fail(f"TLS broker could not start: {exc}", pytrace=False)
    yield broker
    broker.close()


@pytest.fixture
def tls_env(tls_broker: TlsBroker, unique_name: Callable[[str], str]) -> dict[str, str]:
    return {
        "CONVOWATCH_BROKER": tls_broker.bootstrap,
        "CONVOWATCH_SECURITY_PROTOCOL": "SASL_SSL",
        "CONVOWATCH_SASL_USERNAME": USER,
        "CONVOWATCH_SASL_PASSWORD": PASSWORD,
        "CONVOWATCH_SSL_CAFILE": str(tls_broker.ca_file),
        "CONVOWATCH_TOPIC_PREFIX": unique_name("tls") + ".",
    }


def test_the_right_settings_reach_the_broker(tls_env: dict[str, str]) -> None:
    created = run_cli("topics", "create", env=tls_env)
    assert created.returncode == 0, created.stderr
    assert "created" in created.stdout


@pytest.mark.parametrize("cafile", ["", "other"], ids=["no CA bundle", "another CA"])
def test_a_failed_tls_handshake_says_so_and_names_the_settings(
    tls_broker: TlsBroker, tls_env: dict[str, str], cafile: str
) -> None:
    env = tls_env | {"CONVOWATCH_SSL_CAFILE": str(tls_broker.other_ca_file) if cafile else ""}
    refused = run_cli("topics", "create", env=env, timeout=60)
    assert refused.returncode == 1
    error = refused.stderr.strip().splitlines()
    assert len(error) == 1, refused.stderr
    assert error[0].startswith(
        f"convowatch: error: Kafka broker at {tls_broker.bootstrap}: TLS handshake with"
    )
    assert "certificate verify failed" in error[0]
    assert error[0].endswith("; check CONVOWATCH_SSL_CAFILE / CONVOWATCH_SECURITY_PROTOCOL"), error[0]
    assert "cannot reach" not in error[0]


def test_a_worker_the_broker_refuses_exits_at_once_instead_of_waiting(
    tls_broker: TlsBroker, tls_env: dict[str, str]
) -> None:
    """A worker waits for a broker that does not answer (streams/broker_wait.py), not for one that refuses
    it: only a restart, which reads the settings anew, mends that."""
    env = tls_env | {"CONVOWATCH_SSL_CAFILE": str(tls_broker.other_ca_file), "CONVOWATCH_METRICS_PORT": "0"}
    started = time.monotonic()
    refused = run_cli("worker", env=env, timeout=60)
    assert refused.returncode == 1, refused.stderr
    assert f"convowatch: error: Kafka broker at {tls_broker.bootstrap}: TLS handshake with" in refused.stderr
    assert "does not answer" not in refused.stderr and "Traceback" not in refused.stderr
    assert time.monotonic() - started < 20


def test_rejected_credentials_name_the_mechanism_in_use(tls_env: dict[str, str]) -> None:
    refused = run_cli("topics", "create", env=tls_env | {"CONVOWATCH_SASL_PASSWORD": "wrong"}, timeout=60)
    assert refused.returncode == 1
    assert f"rejected the credentials of SASL user '{USER}' (PLAIN): " in refused.stderr, refused.stderr
    assert PASSWORD not in refused.stderr


def test_the_broker_monitor_logs_a_failed_tls_handshake(
    tls_broker: TlsBroker, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(
        broker=tls_broker.bootstrap,
        security_protocol="SASL_SSL",
        sasl_username=USER,
        sasl_password=PASSWORD,  # type: ignore[arg-type]
        ssl_cafile=tls_broker.other_ca_file,
    )
    monitor = BrokerMonitor(settings, Metrics(CollectorRegistry()))
    with caplog.at_level(logging.ERROR, logger="convowatch.kafka"):
        assert not monitor.check()
    [record] = [r for r in caplog.records if r.name == "convowatch.kafka"]
    assert "unreachable: TLS handshake with the broker failed: " in record.getMessage()
    assert record.getMessage().endswith("; check CONVOWATCH_SSL_CAFILE / CONVOWATCH_SECURITY_PROTOCOL")
