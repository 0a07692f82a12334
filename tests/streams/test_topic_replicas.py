"""The warning for topics replicated fewer times than they should be (`topics create`, the workers)."""

from __future__ import annotations

import logging

import pytest

from streams.admin import warn_under_replicated

REPLICAS = {"cw.defects": 1, "cw.escalations": 2, "cw-pending-changelog": 3}


def warned(caplog: pytest.LogCaptureFixture, replication_factor: int, brokers: int) -> dict[str, str]:
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="convowatch.admin"):
        warn_under_replicated(REPLICAS, replication_factor, brokers)
    return {record.getMessage().split()[0]: record.getMessage() for record in caplog.records}


def test_with_the_brokers_default_a_topic_with_fewer_replicas_than_brokers_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # -1 takes the broker's default.replication.factor, 1 on a cluster that never set it: on 3 brokers a
    # broker's loss could lose a topic's records, the changelogs' state with them
    lines = warned(caplog, -1, brokers=3)
    assert sorted(lines) == ["cw.defects", "cw.escalations"]
    assert "has replication factor 1 on a cluster of 3 brokers" in lines["cw.defects"]
    assert "default.replication.factor" in lines["cw.defects"]
    assert sorted(warned(caplog, -1, brokers=5)) == ["cw.defects", "cw.escalations"]  # 3 are enough
    assert sorted(warned(caplog, -1, brokers=2)) == ["cw.defects"]
    assert warned(caplog, -1, brokers=1) == {}  # a single broker (the tests'): nothing to add


def test_with_a_replication_factor_set_a_topic_with_fewer_replicas_is_named(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lines = warned(caplog, 2, brokers=1)
    assert sorted(lines) == ["cw.defects"]
    assert "below CONVOWATCH_REPLICATION_FACTOR=2" in lines["cw.defects"]
