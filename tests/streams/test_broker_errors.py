"""How a failed broker probe is explained: librdkafka reports the cause (a rejected authentication, a failed
TLS handshake) only to ``error_cb``; the metadata request itself fails with "Broker transport failure"."""

from __future__ import annotations

from confluent_kafka import KafkaError

from streams.config import Settings
from streams.kafka_client import probe_failure, sasl_mechanism

TRANSPORT = "Failed to get metadata: Local: Broker transport failure"
HANDSHAKE = (
    "sasl_ssl://127.0.0.1:40713/bootstrap: SSL handshake failed: error:0A000086:SSL routines::"
    "certificate verify failed: broker certificate could not be verified (after 5ms in state SSL_HANDSHAKE)"
)
REFUSED = "127.0.0.1:40713/bootstrap: Connect to ipv4#127.0.0.1:40713 failed: Connection refused"


def test_a_failed_tls_handshake_is_named_with_the_settings_to_check() -> None:
    errors = [KafkaError(KafkaError._TRANSPORT, REFUSED), KafkaError(KafkaError._SSL, HANDSHAKE)]
    assert probe_failure(errors, TRANSPORT) == (
        f"TLS handshake with the broker failed: {HANDSHAKE}; "
        "check CONVOWATCH_SSL_CAFILE / CONVOWATCH_SECURITY_PROTOCOL"
    )


def test_the_latest_tls_error_is_the_one_given() -> None:
    errors = [KafkaError(KafkaError._SSL, "first"), KafkaError(KafkaError._SSL, HANDSHAKE)]
    assert HANDSHAKE in probe_failure(errors, TRANSPORT) and "first" not in probe_failure(errors, TRANSPORT)


def test_a_rejected_authentication_is_named() -> None:
    rejected = "SASL authentication error: Authentication failed: Invalid username or password"
    errors = [KafkaError(KafkaError._AUTHENTICATION, rejected)]
    assert probe_failure(errors, TRANSPORT) == f"authentication failed: {rejected}"


def test_other_failures_keep_the_request_s_own_reason() -> None:
    assert probe_failure([KafkaError(KafkaError._TRANSPORT, REFUSED)], TRANSPORT) == TRANSPORT
    assert probe_failure([], "metadata lists no brokers") == "metadata lists no brokers"


def test_an_unset_sasl_mechanism_is_plain_the_one_every_client_uses() -> None:
    settings = Settings(security_protocol="SASL_SSL", sasl_username="u", sasl_password="p")  # type: ignore[arg-type]
    assert sasl_mechanism(settings) == "PLAIN"
    scram = settings.model_copy(update={"sasl_mechanism": "SCRAM-SHA-512"})
    assert sasl_mechanism(scram) == "SCRAM-SHA-512"
