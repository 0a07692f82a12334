"""What a worker says when its topics' partition counts differ from ``CONVOWATCH_PARTITIONS`` or from each
other: at start (:func:`startup_refusal`, raised by ``streams.admin``), and when they changed while it ran
(:func:`grown_while_running`). The real-broker paths: tests/integration/test_partition_growth_kafka.py and
tests/integration/test_worker_health.py."""

from __future__ import annotations

import pytest
from faust.types import TP

from streams.config import Settings
from streams.partition_count import PROCEDURE, STATE, grown_while_running, known_counts, startup_refusal
from streams.topics import changelog_topics, copartitioned_topics, input_topics

SETTINGS = Settings(topic_prefix="cw.", app_id="app", partitions=4)
TOPICS = copartitioned_topics(SETTINGS)
CHANGELOGS = changelog_topics(SETTINGS)
INPUTS = list(input_topics(SETTINGS).values())


def refusal(counts: dict[str, int], expect_partitions: bool = True) -> str | None:
    return startup_refusal(counts, CHANGELOGS, SETTINGS.partitions, expect_partitions)


def test_topics_that_all_have_convowatch_partitions_start() -> None:
    assert refusal(dict.fromkeys(TOPICS, 4)) is None
    assert refusal({}) is None
    # the producer checks only that they agree
    assert refusal(dict.fromkeys(INPUTS, 8), expect_partitions=False) is None


def test_topics_that_agree_on_another_count_without_any_state_are_a_misconfiguration() -> None:
    message = refusal(dict.fromkeys(INPUTS, 2))
    assert message is not None
    assert "cw.chat.turns has 2" in message and "CONVOWATCH_PARTITIONS is 4" in message
    assert message.endswith("no changelog exists yet: set CONVOWATCH_PARTITIONS=2")
    assert "grown" not in message


def test_every_topic_grown_is_never_told_just_to_set_the_new_count() -> None:
    # the review's case: every topic grown from 4 to 8 as the old message suggested, then "set it to 8"
    message = refusal(dict.fromkeys(TOPICS, 8))
    assert message is not None
    assert "app-pending-changelog has 8" in message
    assert "Set CONVOWATCH_PARTITIONS=8 only if this deployment was created with 8 partitions" in message
    assert "If its topics were grown from 4, do not" in message
    assert "cannot move its state" in message and message.endswith(PROCEDURE)
    # fewer partitions than configured: Kafka cannot shrink a topic, so no growth to warn of
    fewer = refusal(dict.fromkeys(TOPICS, 2))
    assert fewer is not None and fewer.endswith("set CONVOWATCH_PARTITIONS=2, the count of this state")


def test_inputs_grown_past_the_changelogs_are_named_as_grown_and_recreating_says_it_loses_the_state() -> None:
    counts = {**dict.fromkeys(TOPICS, 4), **dict.fromkeys(INPUTS, 8)}
    for configured in (4, 8):
        message = startup_refusal(counts, CHANGELOGS, configured)
        assert message is not None
        assert "cw.chat.turns has 8" in message and "(the tables' changelogs have 4)" in message
        assert "app-pending-changelog has" not in message  # only the topics that differ from the state
        assert f"{', '.join(sorted(INPUTS))} were grown after this deployment's state was made" in message
        assert "Recreating the changelogs to match loses their state" in message and STATE in message
        assert message.endswith(PROCEDURE)
        assert "set CONVOWATCH_PARTITIONS" not in message.lower()


def test_disagreeing_changelogs_or_inputs_without_state_get_no_count_to_set() -> None:
    split = refusal({**dict.fromkeys(TOPICS, 4), CHANGELOGS[0]: 8})
    assert split is not None and "recreating a changelog loses its state" in split
    assert "set CONVOWATCH_PARTITIONS" not in split.lower()
    fresh = refusal({INPUTS[0]: 2, INPUTS[1]: 3}, expect_partitions=False)
    assert fresh is not None and "cw.judge.verdicts has 3" in fresh
    assert fresh.endswith("make them agree before a worker runs (no changelog exists yet)")


def test_topics_changed_under_a_running_worker_are_named_with_their_counts() -> None:
    assert grown_while_running(dict.fromkeys(TOPICS, 4), 4) is None
    message = grown_while_running({**dict.fromkeys(TOPICS, 4), INPUTS[0]: 8, INPUTS[2]: 8}, 4)
    assert message is not None
    assert message.startswith("partition counts changed: cw.chat.turns has 8, cw.human.labels has 8, ")
    assert "cw.judge.verdicts" not in message
    assert "were grown while this worker ran" in message and message.endswith(PROCEDURE)


class Assigned:
    """What :func:`known_counts` reads of Faust's consumer: its assignment, and its metadata's counts."""

    def __init__(self, assigned: set[TP], metadata: dict[str, int]) -> None:
        self.assigned, self.metadata = assigned, metadata

    def assignment(self) -> set[TP]:
        return self.assigned

    def partition_count(self, topic: str) -> int | None:
        return self.metadata.get(topic)


def test_a_worker_assigned_some_partitions_of_each_topic_is_no_growth() -> None:
    # one worker of two holds partitions 0 and 1 of 4: the first version took 2 for the count and exited
    turns = INPUTS[0]
    some = Assigned({TP(turns, 0), TP(turns, 1)}, {})
    assert known_counts(some, TOPICS, 4) == {}  # type: ignore[arg-type]
    assert known_counts(Assigned(some.assigned, {turns: 4}), TOPICS, 4) == {turns: 4}  # type: ignore[arg-type]
    # a partition past the count, assigned by a leader with fresher metadata than this worker's
    past = Assigned({TP(turns, 6)}, {turns: 4})
    assert known_counts(past, TOPICS, 4) == {turns: 7}  # type: ignore[arg-type]


def test_a_producer_after_the_documented_change_of_count_is_not_refused_by_the_old_changelogs() -> None:
    """README's procedure: inputs grown to 8, internal topics recreated with 8, a new app id for the workers;
    `convowatch produce` started with the old (default) app id finds its changelogs at 4 (the day's review:
    it was refused, told the inputs were grown after the state was made)."""
    from streams.admin import _check_partitions
    from streams.exceptions import ConfigError

    counts = {**dict.fromkeys(TOPICS, 8), **dict.fromkeys(CHANGELOGS, 4)}
    _check_partitions(SETTINGS, counts, expect_partitions=False)  # the producer's check
    try:
        _check_partitions(SETTINGS, counts, expect_partitions=True)  # a worker of the old app id's
    except ConfigError as refused:
        assert "were grown after this deployment's state was made" in str(refused)
    else:
        raise AssertionError("a worker on the old state was not refused")


def test_without_the_partition_count_topic_the_check_is_off_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Topics a platform team created before 2026-11-26, and a principal without CREATE: the worker
    starts, and says how to turn the check on (the day's review: it was refused at every start)."""
    from streams.partition_marker import check_partition_count

    with caplog.at_level("WARNING", logger="convowatch.partition_marker"):
        check_partition_count(SETTINGS, exists=False)  # no broker is asked
    (record,) = caplog.records
    assert "check of this state's partition count is off" in record.getMessage()
    assert "app-partition-count" in record.getMessage() and "READ and WRITE" in record.getMessage()
