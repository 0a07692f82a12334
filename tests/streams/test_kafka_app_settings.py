"""The Faust app of the Kafka transport: configured by convowatch's settings alone, and creating no topic."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from streams.app import KafkaTransport
from streams.config import Settings
from streams.metrics import Metrics
from streams.topics import all_topics

#: Faust's own, unprefixed variables, as another application in the same image or pod may set them
FAUST_VARIABLES = {
    "BROKER_URL": "kafka://other-cluster:9092",
    "PRODUCER_ACKS": "1",
    "CONSUMER_AUTO_OFFSET_RESET": "latest",
    "TOPIC_PARTITIONS": "1",
    "TABLE_STANDBY_REPLICAS": "1",
    "PROCESSING_GUARANTEE": "exactly_once",
    "TOPIC_ALLOW_DECLARE": "true",
    "TOPIC_DISABLE_LEADER": "false",
    "BROKER_COMMIT_INTERVAL": "600",
}


def test_faust_environment_variables_do_not_override_convowatch_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Faust 0.15.3 let these override the app's explicit arguments: BROKER_URL sent the worker to another
    # cluster than CONVOWATCH_BROKER, PRODUCER_ACKS=1 broke the delivery guarantee
    for variable, value in FAUST_VARIABLES.items():
        monkeypatch.setenv(variable, value)
    settings = Settings(broker="kafka-a:9092,kafka-b:9092", partitions=6)
    conf = KafkaTransport(settings, Metrics(CollectorRegistry())).app.conf
    assert [str(url) for url in conf.broker] == ["kafka://kafka-a:9092", "kafka://kafka-b:9092"]
    assert conf.producer_acks == -1
    assert conf.consumer_auto_offset_reset == "earliest"
    assert conf.topic_partitions == 6
    assert conf.table_standby_replicas == 0
    assert conf.processing_guarantee.value == "at_least_once"
    assert conf.broker_commit_interval == settings.commit_interval_seconds
    assert (conf.topic_allow_declare, conf.topic_disable_leader) == (False, True)


@pytest.mark.parametrize("role", ["all", "join", "aggregate"])
def test_every_topic_faust_would_declare_is_one_convowatch_creates(role: str) -> None:
    # Faust declares its tables' changelogs, its internal channels and its leader topic; with declaring off
    # (a principal without CREATE can run the worker) streams.admin must create each of them beforehand
    settings = Settings(broker="127.0.0.1:1", role=role)
    app = KafkaTransport(settings, Metrics(CollectorRegistry())).app
    assert app.conf.topic_allow_declare is False
    assert app.conf.topic_disable_leader is True  # no leader topic
    declared = {table.changelog_topic.get_topic_name() for table in app.tables.values()}
    declared |= {name for channel in app.topics if channel.internal for name in channel.topics}
    assert declared and declared <= set(all_topics(settings))
