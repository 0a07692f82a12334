"""Topic administration with confluent-kafka (``convowatch topics create``)."""

from __future__ import annotations

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from streams.config import Settings
from streams.exceptions import ConfigError, ConvowatchError
from streams.kafka_client import admin_config, check_broker
from streams.topics import all_topics, copartitioned_topics


def create_topics(
    settings: Settings,
    names: list[str] | None = None,
    timeout: float = 30.0,
    expect_partitions: bool = True,
) -> dict[str, str]:
    """Create the topics (all of convowatch's by default) that do not exist yet; return name -> outcome.

    Raises :class:`ConfigError` when existing topics that must be co-partitioned (inputs, the internal
    topics, the tables' changelogs) differ in partition count, or, with ``expect_partitions``, differ from
    ``CONVOWATCH_PARTITIONS``: a turn's events would meet on different workers, and a changelog record
    sent to its input's partition number would fail its batch at every restart.
    """
    check_broker(settings)
    admin = AdminClient(admin_config(settings))
    wanted = names if names is not None else all_topics(settings)
    metadata = admin.list_topics(timeout=timeout).topics
    counts = {name: len(topic.partitions) for name, topic in metadata.items()}
    _check_partitions(settings, counts, expect_partitions)
    outcome = {name: "exists" for name in wanted if name in metadata}
    new = [
        NewTopic(name, num_partitions=settings.partitions, replication_factor=settings.replication_factor)
        for name in wanted
        if name not in metadata
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


def _check_partitions(settings: Settings, partitions: dict[str, int], expect_partitions: bool) -> None:
    counts = {name: partitions[name] for name in copartitioned_topics(settings) if name in partitions}
    if expect_partitions:
        wrong = {name: n for name, n in counts.items() if n != settings.partitions}
    elif len(set(counts.values())) > 1:
        wrong = counts
    else:
        return
    if wrong:
        found = ", ".join(f"{name} has {n}" for name, n in sorted(wrong.items()))
        raise ConfigError(
            f"partition counts disagree: {found}, CONVOWATCH_PARTITIONS is {settings.partitions}. The input "
            "topics, the internal topics (observations, review keeps) and the tables' changelogs must all "
            "have the same number: set "
            "CONVOWATCH_PARTITIONS to it, or recreate the topics that differ"
        )
