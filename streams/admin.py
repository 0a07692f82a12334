"""Topic administration with confluent-kafka (``convowatch topics create``)."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.config import Settings
from streams.exceptions import ConvowatchError
from streams.kafka_client import admin_config, check_broker
from streams.topics import all_topics


def create_topics(
    settings: Settings, names: list[str] | None = None, timeout: float = 30.0
) -> dict[str, str]:
    """Create the topics (all of convowatch's by default) that do not exist yet; return name -> outcome."""
    check_broker(settings)
    admin = AdminClient(admin_config(settings))
    wanted = names if names is not None else all_topics(settings)
    existing = set(admin.list_topics(timeout=timeout).topics)
    outcome = {name: "exists" for name in wanted if name in existing}
    new = [
        NewTopic(name, num_partitions=settings.partitions, replication_factor=settings.replication_factor)
        for name in wanted
        if name not in existing
    ]
    if new:
        for name, future in admin.create_topics(new, operation_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                outcome[name] = "created"
            except KafkaException as exc:
                error = exc.args[0]
                if error.name() == "TOPIC_ALREADY_EXISTS":
                    outcome[name] = "exists"
                else:
                    raise ConvowatchError(f"cannot create topic {name}: {error.str()}") from None
    return outcome
