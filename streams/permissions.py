"""What a worker's principal must be allowed to do on the cluster, checked when the worker starts.

Kafka refuses an operation its ACLs do not allow only when the worker first tries it: without READ on its
consumer group a worker waited for partitions for ever, reporting itself healthy; without WRITE on
``escalations`` it ran until its first high-risk failure, maybe days later, then failed that batch at every
restart. The worker asks the broker instead which operations the principal may do on each topic and on its
group (KIP-430's authorized operations, one metadata request and one group description), and refuses to
start naming each one missing. A broker without an authorizer answers that every operation is allowed;
what a broker does not answer for (one older than Kafka 2.3) fails when first tried, as before.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AclOperation, AdminClient

from streams.config import Settings
from streams.exceptions import ConfigError, ConvowatchError
from streams.kafka_client import admin_config
from streams.lag import COORDINATOR_MOVING, RETRY_SECONDS
from streams.topics import (
    changelog_topics,
    consumer_group,
    input_topics,
    output_topics,
)

log = logging.getLogger("convowatch.permissions")

READ, WRITE = AclOperation.READ, AclOperation.WRITE
#: The outputs (logical names of :func:`streams.topics.output_topics`) each stage publishes; the join also
#: publishes the ``defects.<category>`` topics. ``tests/streams/test_permissions.py`` runs both stages.
JOIN_WRITES = ("defects", "escalations", "deadletter", "divergences", "observations")
AGGREGATE_WRITES = ("escalations", "review_requests", "review_keep")

#: Longest wait for the first description of the consumer group, doubled at each next one: librdkafka (2.16)
#: reports a coordinator not available yet (a fresh cluster, where the first group lookup creates
#: ``__consumer_offsets``) by retrying its lookup twice and then only as a timeout of the whole request.
FIRST_ATTEMPT_SECONDS = 0.5

#: (resource type, name) -> the operations needed on it
Needs = dict[tuple[str, str], set[AclOperation]]


def role_needs(settings: Settings) -> Needs:
    """The operations a worker of ``settings.role`` needs: READ on what its agents consume, WRITE on what
    they publish, both on its tables' changelogs (written with the state, read to recover it), and READ on
    its consumer group. (READ and WRITE imply DESCRIBE, which metadata, offsets and lag take.)"""
    needs: Needs = defaultdict(set)
    outputs = output_topics(settings)
    pending, published, aggregates = changelog_topics(settings)
    reads: list[str] = []
    writes: list[str] = []
    if settings.role in ("all", "join"):
        reads += [*input_topics(settings).values(), outputs["review_keep"]]
        writes += [
            name
            for logical, name in outputs.items()
            if logical in JOIN_WRITES or logical.startswith("defects.")
        ]
        reads += [pending, published]
        writes += [pending, published]
    if settings.role in ("all", "aggregate"):
        reads += [outputs["observations"], aggregates]
        writes += [*(outputs[logical] for logical in AGGREGATE_WRITES), aggregates]
    for name in reads:
        needs[("topic", name)].add(READ)
    for name in writes:
        needs[("topic", name)].add(WRITE)
    needs[("group", consumer_group(settings))].add(READ)
    return dict(needs)


def check_permissions(settings: Settings, timeout: float = 30.0) -> None:
    """Raise :class:`ConfigError` naming, in one line, every operation of :func:`role_needs` the broker says
    this principal may not do."""
    admin = AdminClient(admin_config(settings, log_level=0))
    needs = role_needs(settings)
    allowed = topic_operations(admin, [name for kind, name in needs if kind == "topic"], timeout)
    group = consumer_group(settings)
    if (operations := group_operations(admin, group, timeout)) is not None:
        allowed[("group", group)] = operations
    if lacks := missing_operations(needs, allowed):
        who = f"SASL user '{settings.sasl_username}'" if settings.sasl_username else "this worker's principal"
        raise ConfigError(
            f"the Kafka ACLs do not let {who} run role {settings.role}: it lacks {lacks}. Grant them "
            "(README, Permissions (ACLs)); READ and WRITE imply DESCRIBE"
        )


def missing_operations(needs: Needs, allowed: Mapping[tuple[str, str], set[AclOperation]]) -> str:
    """What ``allowed`` (the operations the broker says are allowed, by resource) lacks of ``needs``, as
    ``"READ on group g; WRITE on topics a, b"``; empty if nothing. A resource the broker said nothing about
    counts as allowed."""
    missing: dict[tuple[str, str], list[str]] = defaultdict(list)  # (operation, kind) -> names
    for (kind, name), wanted in sorted(needs.items()):
        if (operations := allowed.get((kind, name))) is not None:
            for operation in wanted - operations:
                missing[(operation.name, kind)].append(name)
    return "; ".join(
        f"{operation} on {kind}{'s' if len(names) > 1 else ''} {', '.join(names)}"
        for (operation, kind), names in sorted(missing.items())
    )


def topic_operations(
    admin: AdminClient, names: Iterable[str], timeout: float
) -> dict[tuple[str, str], set[AclOperation]]:
    """("topic", name) -> the operations the principal may do on it; none when it may not even describe it,
    left out when the broker does not say (no such topic yet, a broker older than KIP-430)."""
    found: dict[tuple[str, str], set[AclOperation]] = {}
    futures = admin.describe_topics(
        TopicCollection(sorted(set(names))), request_timeout=timeout, include_authorized_operations=True
    )
    for name, future in futures.items():
        try:
            operations = future.result().authorized_operations  # librdkafka ends it at request_timeout
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED:
                found[("topic", name)] = set()
            elif error.code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # created by a broker still telling others
                raise ConvowatchError(f"cannot read the permissions on topic {name}: {error.str()}") from None
            continue
        if operations is not None:
            found[("topic", name)] = set(operations)
    return found


def group_operations(admin: AdminClient, name: str, timeout: float) -> set[AclOperation] | None:
    """The operations the principal may do on consumer group ``name`` (one that does not exist yet too: the
    broker describes it as dead); none when it may not describe it; ``None`` when the broker does not say.
    Asks again while the group's coordinator moves or loads (a fresh cluster), for up to ``timeout``
    seconds."""
    deadline = time.monotonic() + timeout
    attempt = FIRST_ATTEMPT_SECONDS
    while True:
        futures = admin.describe_consumer_groups(
            [name],
            request_timeout=max(0.1, min(attempt, deadline - time.monotonic())),
            include_authorized_operations=True,
        )
        try:
            operations = futures[name].result().authorized_operations  # ended at request_timeout
            return None if operations is None else set(operations)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() == KafkaError.GROUP_AUTHORIZATION_FAILED:
                return set()
            if error.code() not in COORDINATOR_MOVING and error.code() != KafkaError._TIMED_OUT:
                raise ConvowatchError(f"cannot read the permissions on group {name}: {error.str()}") from None
            if time.monotonic() + RETRY_SECONDS >= deadline:
                log.warning("cannot check the permissions on group %s: %s", name, error.str())
                return None
        time.sleep(RETRY_SECONDS)
        attempt *= 2
