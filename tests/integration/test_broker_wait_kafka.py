"""A worker's wait for the broker at its start (streams/broker_wait.py) against a real broker: a TLS client at
a PLAINTEXT listener ends it naming the protocol setting, and a stop that comes while the probe that finds
the broker is in flight is not lost. Both found by review (2026-11-26)."""

from __future__ import annotations

import pytest

from streams.broker_wait import BrokerWait
from streams.config import Settings
from streams.exceptions import BrokerUnreachable
from tests.support.broker import KafkaBroker

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize("protocol", ["SSL", "SASL_SSL"])
def test_a_tls_client_at_a_plaintext_listener_ends_the_wait_naming_the_protocol(
    kafka_broker: KafkaBroker, protocol: str
) -> None:
    """It waited the whole bound (900 s), as for a broker that does not answer, naming only the address."""
    settings = Settings(
        broker=kafka_broker.bootstrap,
        security_protocol=protocol,
        sasl_username="convowatch" if protocol == "SASL_SSL" else None,
        sasl_password="not-used" if protocol == "SASL_SSL" else None,
        broker_wait_seconds=60,
    )
    with pytest.raises(BrokerUnreachable) as refused:
        BrokerWait(settings, mismatch_patience=3).wait()
    message = str(refused.value)
    assert message.startswith(
        f"the listener at {kafka_broker.bootstrap} does not speak Kafka over {protocol}"
    )
    assert "PLAINTEXT broker listener?" in message and "check CONVOWATCH_SECURITY_PROTOCOL" in message


def test_a_stop_while_the_broker_answers_is_not_lost(kafka_broker: KafkaBroker) -> None:
    """A SIGTERM caught while the probe that found the broker was in flight was dropped, and the worker
    started (a pod told to stop, SIGKILLed at the end of its grace period mid-batch)."""
    wait = BrokerWait(Settings(broker=kafka_broker.bootstrap, broker_wait_seconds=60))
    wait.beat = wait.stop  # the stop comes just before the probe, which the broker answers
    assert wait.wait() is False
    assert wait.readiness() is None
