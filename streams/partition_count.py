"""A deployment's partition count is fixed: refuse topics grown under its state.

convowatch keeps its state partitioned as its topics: a pending turn in the join's changelog partition its
``turn_id`` hashed to, each aggregate in the partition of ``internal.observations`` its shard key hashed to.
Kafka can grow a topic but moves no record, so after a growth new records of a turn or shard key hash to
another partition than its state, often another worker's: a review (2026-11-26) grew every topic 4 -> 8
and saw up to 139 of 142 turns split, defects missing, escalations never updated, and aggregates duplicated
under a fresh owner (spikes left firing). convowatch cannot move its state to another count, so it refuses:

- at start (:func:`startup_refusal`, from :mod:`streams.admin`), naming the topics that differ and saying
  whether they look misconfigured or grown;
- while running (:func:`exit_if_grown`, after every rebalance): the consumer learns of a growth at its next
  metadata refresh (aiokafka's ``metadata_max_age_ms``, 300 s), and the rebalance that follows would hand the
  new partitions to the agents without a word, or, when only the inputs were grown, fail every batch of one
  with ``AssertionError: Unrecognized partition`` (a changelog record for a partition its changelog lacks).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from streams.config import Settings
from streams.topics import copartitioned_topics

if TYPE_CHECKING:  # not imported at run time: streams.admin, which the producer uses, needs no Faust
    from streams.faust_consumer import PromptConsumer

log = logging.getLogger("convowatch.partition_count")

EX_CONFIG = 78  # sysexits.h: configuration error

#: Where the README gives the procedure to change a deployment's partition count
PROCEDURE = 'README, Sizing, "The partition count is fixed"'

#: What a recreated changelog loses
STATE = "pending turns, published marks, every aggregate and open alert"

CANNOT_MOVE = (
    f"convowatch cannot move its state (the tables' changelogs: {STATE}) to a new partition count, and "
    "records of a turn or shard key would hash to other partitions than their state"
)


def _listed(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} has {n}" for name, n in sorted(counts.items()))


def known_counts(consumer: PromptConsumer, topics: Collection[str], partitions: int) -> dict[str, int]:
    """The partition count of each topic of ``topics`` that ``consumer`` knows of in its metadata, or more
    where it is assigned a partition numbered ``partitions`` or above (a group leader with fresher metadata
    may assign partitions this consumer's metadata lacks). Its assignment says nothing more: a worker of
    several is assigned some partitions of each topic."""
    counts: dict[str, int] = {}
    for topic in topics:
        if (known := consumer.partition_count(topic)) is not None:
            counts[topic] = known
    for tp in consumer.assignment():
        if tp.topic in topics and tp.partition >= partitions:
            counts[tp.topic] = max(counts.get(tp.topic, 0), tp.partition + 1)
    return counts


def grown_while_running(counts: Mapping[str, int], partitions: int) -> str | None:
    """The line to exit with when a topic of ``counts`` (name -> partitions) no longer has ``partitions``."""
    changed = {name: n for name, n in counts.items() if n != partitions}
    if not changed:
        return None
    return (
        f"partition counts changed: {_listed(changed)}, CONVOWATCH_PARTITIONS is {partitions}: the topics "
        f"were grown while this worker ran. {CANNOT_MOVE}. Exiting; a restart is refused too: see {PROCEDURE}"
    )


def recorded_count_refusal(topic: str, recorded: int, partitions: int) -> str:
    """Why a worker must not start a state made with ``recorded`` partitions (as ``topic`` says) on topics
    that all have ``CONVOWATCH_PARTITIONS`` ``partitions``."""
    return (
        f"this deployment's state was made with {recorded} partitions ({topic} says so), and its topics now "
        f"have {partitions}, as CONVOWATCH_PARTITIONS says: they were grown. {CANNOT_MOVE}; see {PROCEDURE}"
    )


def exit_if_grown(settings: Settings, consumer: Any) -> None:
    """Log one CRITICAL line and exit with status 78 (EX_CONFIG) if a topic that must have
    ``CONVOWATCH_PARTITIONS`` partitions (:func:`~streams.topics.copartitioned_topics`) has another count as
    ``consumer`` (the app's, a :class:`~streams.faust_consumer.PromptConsumer`) knows it now (the start-up
    check made them equal)."""
    counts = known_counts(consumer, copartitioned_topics(settings), settings.partitions)
    message = grown_while_running(counts, settings.partitions)
    if message is not None:
        log.critical("%s", message)
        logging.shutdown()
        os._exit(EX_CONFIG)


def startup_refusal(
    counts: Mapping[str, int], changelogs: Collection[str], partitions: int, expect_partitions: bool = True
) -> str | None:
    """Why a worker must not start on topics of ``counts`` (name -> partitions, the existing ones that must
    be co-partitioned), of which ``changelogs`` are the tables' changelogs, with ``CONVOWATCH_PARTITIONS``
    ``partitions``; None if they agree (and, with ``expect_partitions``, equal ``partitions``)."""
    values = set(counts.values())
    if len(values) < 2 and (not expect_partitions or values <= {partitions}):
        return None
    state = {counts[name] for name in changelogs if name in counts}
    head = f"partition counts disagree: {{}}, CONVOWATCH_PARTITIONS is {partitions}. "
    rule = (
        "The input topics, the internal topics (observations, review keeps) and the tables' changelogs must "
        "all have the same number"
    )
    if len(values) == 1:  # every topic agrees, on another count than CONVOWATCH_PARTITIONS
        (n,) = values
        found = _listed(counts)
        if not state:
            return head.format(found) + f"{rule}, and no changelog exists yet: set CONVOWATCH_PARTITIONS={n}"
        if n < partitions:
            return head.format(found) + f"{rule}: set CONVOWATCH_PARTITIONS={n}, the count of this state"
        return head.format(found) + (
            f"{rule}. Set CONVOWATCH_PARTITIONS={n} only if this deployment was created with {n} "
            f"partitions. If its topics were grown from {partitions}, do not: {CANNOT_MOVE}; see {PROCEDURE}"
        )
    if not state:
        return (
            head.format(_listed(counts))
            + f"{rule}: make them agree before a worker runs (no changelog exists yet)"
        )
    if len(state) == 1:  # the changelogs agree: the count the state was made with
        (made,) = state
        differ = {name: c for name, c in counts.items() if c != made}
        found = head.format(f"{_listed(differ)} (the tables' changelogs have {made})")
        if grown := sorted(name for name, c in differ.items() if c > made):
            return found + (
                f"{', '.join(grown)} were grown after this deployment's state was made (or created with "
                f"another count): {CANNOT_MOVE}. Recreating the changelogs to match loses their state. "
                f"See {PROCEDURE}"
            )
        return found + f"{rule}. {CANNOT_MOVE}; recreating a changelog loses its state. See {PROCEDURE}"
    return head.format(_listed(counts)) + (
        f"{rule}. {CANNOT_MOVE}; recreating a changelog loses its state. See {PROCEDURE}"
    )
