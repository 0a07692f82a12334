"""Kafka client settings from :class:`Settings`, for confluent-kafka (librdkafka) and Faust (aiokafka)."""

from __future__ import annotations

import ssl
from typing import Any

import faust
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams.config import Settings
from streams.exceptions import BrokerUnreachable


def confluent_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    """librdkafka settings; the password is revealed only here, inside the client config."""
    config: dict[str, Any] = {
        "bootstrap.servers": settings.broker,
        "security.protocol": settings.security_protocol,
        # Java's and aiokafka's partitioner: the same turn_id lands in the same partition on every topic.
        "partitioner": "murmur2_random",
    }
    if settings.sasl_mechanism:
        config["sasl.mechanism"] = settings.sasl_mechanism
        config["sasl.username"] = settings.sasl_username or ""
        config["sasl.password"] = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
    if settings.ssl_cafile:
        config["ssl.ca.location"] = str(settings.ssl_cafile)
    config.update(extra)
    return config


def admin_config(settings: Settings) -> dict[str, Any]:
    config = confluent_config(settings)
    config.pop("partitioner")
    return config


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for the configured protocol, or ``None`` for PLAINTEXT."""
    context = None
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    if settings.security_protocol.startswith("SASL"):
        password = settings.sasl_password.get_secret_value() if settings.sasl_password else ""
        return faust.SASLCredentials(
            username=settings.sasl_username or "",
            password=password,
            mechanism=settings.sasl_mechanism or "PLAIN",
            ssl_context=context,
        )
    if context is not None:
        return faust.SSLCredentials(context)
    return None


def check_broker(settings: Settings, timeout: float = 10.0) -> None:
    """Raise :class:`BrokerUnreachable` naming the address unless the broker answers within ``timeout``."""
    # librdkafka would print one line per failed connect; the error below says it once, with the address
    admin = AdminClient({**admin_config(settings), "log_level": 0})
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as exc:
        raise BrokerUnreachable(
            f"cannot reach the Kafka broker at {settings.broker} within {timeout:.0f}s "
            f"({exc.args[0].str() if exc.args else exc}); check --broker / CONVOWATCH_BROKER"
        ) from None
