"""Topic administration with confluent-kafka: ``convowatch topics create``, and every worker before it starts.

Every topic convowatch uses is created here, the tables' changelogs included, compacted, before any Kafka
client of the worker names one in a metadata request: on a cluster with ``auto.create.topics.enable=true``
(Apache Kafka's default) such a request had the broker create the changelogs with its own defaults
(``num.partitions``, ``cleanup.policy=delete``, ``default.replication.factor``). The worker then failed its
first batch on a partition the changelog lacked and was refused at every restart; with matching partition
counts it ran on changelogs that lose the state after ``retention.ms``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

from streams.config import Settings
from streams.config_validation import MAX_TOPIC_NAME
from streams.exceptions import ConfigError, ConvowatchError
from streams.kafka_client import admin_config, check_broker
from streams.partition_count import startup_refusal
from streams.topics import all_topics, changelog_topics, copartitioned_topics, partition_count_topic

log = logging.getLogger("convowatch.admin")

#: The configuration of the changelogs convowatch creates (Faust's for a table without a window).
COMPACTED = {"cleanup.policy": "compact"}


def create_topics(
    settings: Settings,
    names: list[str] | None = None,
    timeout: float = 30.0,
    expect_partitions: bool = True,
) -> dict[str, str]:
    """Create the topics (all of convowatch's by default) that do not exist yet; return name -> outcome.

    Raises :class:`ConfigError` when an existing changelog among ``names`` is not compacted, and when
    existing topics that must be co-partitioned (inputs, the internal topics, the tables' changelogs)
    differ in partition count, or, with ``expect_partitions``, differ from ``CONVOWATCH_PARTITIONS``: a
    turn's events would meet on different workers, and a changelog record sent to its input's partition
    number would fail its batch at every restart. Logs a warning for each topic among ``names`` replicated
    fewer times than :func:`expected_replicas`.
    """
    wanted = names if names is not None else all_topics(settings)
    if too_long := [name for name in wanted if len(name) > MAX_TOPIC_NAME]:  # before any is created
        raise ConfigError(
            f"topic name {too_long[0][:60]}... is {len(too_long[0])} characters long, Kafka takes "
            f"{MAX_TOPIC_NAME}: shorten CONVOWATCH_TOPIC_PREFIX or the taxonomy's category names"
        )
    check_broker(settings)
    admin = AdminClient(admin_config(settings))
    cluster = admin.list_topics(timeout=timeout)
    metadata = cluster.topics
    compacted = {
        name for name in [*changelog_topics(settings), partition_count_topic(settings)] if name in wanted
    }
    _check_compacted(settings, cleanup_policies(admin, sorted(compacted & set(metadata)), timeout))
    counts = {name: len(topic.partitions) for name, topic in metadata.items()}
    _check_partitions(settings, counts, expect_partitions)
    outcome = {name: "exists" for name in wanted if name in metadata}
    new = [
        NewTopic(
            name,
            num_partitions=1 if name == partition_count_topic(settings) else settings.partitions,
            replication_factor=settings.replication_factor,
            config=COMPACTED if name in compacted else {},
        )
        for name in wanted
        if name not in metadata
    ]
    refused = []
    if new:
        for name, future in admin.create_topics(new, operation_timeout=timeout).items():
            try:
                future.result(timeout=timeout)
                outcome[name] = "created"
            except KafkaException as exc:
                error = exc.args[0]
                if error.name() == "TOPIC_ALREADY_EXISTS":
                    outcome[name] = "exists"
                elif error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                    refused.append(name)
                else:
                    raise ConvowatchError(f"cannot create topic {name}: {error.str()}") from None
    if settings.replication_factor < 0 and "created" in outcome.values():  # the broker chose their replicas
        metadata = admin.list_topics(timeout=timeout).topics
    replicas = {
        name: min(len(p.replicas) for p in metadata[name].partitions.values())
        for name in wanted
        if name in metadata and metadata[name].partitions
    }
    warn_under_replicated(replicas, settings.replication_factor, len(cluster.brokers))
    # the state's partition count: without it, its check is off (streams.partition_marker)
    marker = partition_count_topic(settings)
    if marker in refused:
        refused.remove(marker)
        outcome[marker] = "refused"
    if refused:  # a topic this principal may not describe is missing to it: pre-created or not
        raise ConfigError(
            f"the Kafka ACLs let this principal neither see nor create {', '.join(sorted(refused))}: grant "
            "it DESCRIBE on every topic convowatch uses (READ or WRITE imply it) where a platform team "
            "creates them, else CREATE (README, Permissions (ACLs))"
        )
    return outcome


def cleanup_policies(admin: AdminClient, names: Iterable[str], timeout: float) -> dict[str, str]:
    """``cleanup.policy`` of each topic in ``names``; a topic whose configuration this principal may not
    read (no DescribeConfigs ACL) is left out, with a warning."""
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in names]
    if not resources:
        return {}
    policies = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        try:
            policies[resource.name] = future.result(timeout=timeout)["cleanup.policy"].value
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() != KafkaError.TOPIC_AUTHORIZATION_FAILED:
                raise ConvowatchError(
                    f"cannot read the configuration of {resource.name}: {error.str()}"
                ) from None
            log.warning("cannot check that %s is compacted: %s", resource.name, error.str())
    return policies


def _check_compacted(settings: Settings, policies: Mapping[str, str]) -> None:
    wrong = {name: policy for name, policy in policies.items() if policy != "compact"}
    if wrong:
        found = ", ".join(f"{name} has cleanup.policy={policy}" for name, policy in sorted(wrong.items()))
        raise ConfigError(
            f"{found}: a table's changelog (and <app id>-partition-count) must be compacted, or the state in "
            "it is lost after retention.ms (a broker with auto.create.topics.enable creates topics with its "
            "defaults). Delete it and restart (convowatch creates it compacted; a changelog's state is "
            f"lost), or keep its state: kafka-configs.sh --bootstrap-server {settings.broker} --alter "
            "--entity-type topics --entity-name <topic> --add-config cleanup.policy=compact"
        )


def expected_replicas(replication_factor: int, brokers: int) -> int:
    """The replication factor below which a topic is named in a warning: ``CONVOWATCH_REPLICATION_FACTOR``;
    with -1 (the broker's ``default.replication.factor``, which the principal may not be allowed to read,
    and which is 1 unless set) the number of ``brokers``, up to 3."""
    return replication_factor if replication_factor > 0 else min(brokers, 3)


def warn_under_replicated(replicas: Mapping[str, int], replication_factor: int, brokers: int) -> None:
    """Log each topic of ``replicas`` (name -> its replication factor) replicated fewer times than
    :func:`expected_replicas` on a cluster of ``brokers``."""
    wanted = expected_replicas(replication_factor, brokers)
    for name, count in sorted(replicas.items()):
        if count >= wanted:
            continue
        if replication_factor > 0:
            log.warning(
                "%s has replication factor %d, below CONVOWATCH_REPLICATION_FACTOR=%d: a broker's loss can "
                "lose it; add replicas with kafka-reassign-partitions.sh",
                name,
                count,
                wanted,
            )
        else:
            log.warning(
                "%s has replication factor %d on a cluster of %d brokers: a broker's loss can lose it; add "
                "replicas with kafka-reassign-partitions.sh. convowatch creates topics with the broker's "
                "default.replication.factor (1 unless set) while CONVOWATCH_REPLICATION_FACTOR is -1",
                name,
                count,
                brokers,
            )


def _check_partitions(settings: Settings, partitions: dict[str, int], expect_partitions: bool) -> None:
    # a producer (``expect_partitions`` False) checks the inputs and internal topics only: the changelogs of
    # whatever app id it was started with may be an old deployment's (README, changing the count)
    changelogs = set(changelog_topics(settings))
    counts = {
        name: partitions[name]
        for name in copartitioned_topics(settings)
        if name in partitions and (expect_partitions or name not in changelogs)
    }
    refusal = startup_refusal(counts, changelog_topics(settings), settings.partitions, expect_partitions)
    if refusal is not None:
        raise ConfigError(refusal)
