"""A worker on a broker that enforces ACLs (SASL/SCRAM, StandardAuthorizer, deny by default), on topics an
administrator created: it runs with only the ACLs the README documents (Permissions (ACLs)), and refuses to
start, in one line, when one it needs is missing."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from itertools import compress
from pathlib import Path

import pytest
from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
)

from streams.admin import create_topics
from streams.config import Settings
from streams.exceptions import ConfigError
from streams.topics import all_topics
from tests.reliability.sasl_broker import ADMIN_PASSWORD, ADMIN_USER, MECHANISM, ScramBroker
from tests.support.broker import BrokerError
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, run_cli

pytestmark = pytest.mark.kafka

USER, PASSWORD = "convowatch", "app-Secret-5a1c"
ALLOW, DENY = AclPermissionType.ALLOW, AclPermissionType.DENY
TOPIC, GROUP, PREFIXED, LITERAL = (
    ResourceType.TOPIC,
    ResourceType.GROUP,
    ResourcePatternType.PREFIXED,
    ResourcePatternType.LITERAL,
)
READ, WRITE, DESCRIBE = AclOperation.READ, AclOperation.WRITE, AclOperation.DESCRIBE


@pytest.fixture(scope="module")
def acl_broker() -> Iterator[ScramBroker]:
    broker = ScramBroker({USER: PASSWORD})
    broker.extra_config.update(
        {
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            # the controller listener is PLAINTEXT (ANONYMOUS); clients log in on the SASL one
            "super.users": f"User:{ADMIN_USER};User:ANONYMOUS",
            "allow.everyone.if.no.acl.found": "false",
        }
    )
    try:
        broker.start()
    except BrokerError as exc:
        broker.close()
        pytest.fail(f"ACL broker could not start: {exc}", pytrace=False)
    yield broker
    broker.close()


def set_up(
    broker: ScramBroker, prefix: str, app_id: str, acls: list[AclBinding], but: frozenset[str] = frozenset()
) -> dict[str, str]:
    """Create every topic (``but`` those) as the administrator, grant ``acls`` and wait until the broker
    enforces them; the app user's environment."""
    admin_settings = Settings.model_validate(
        {
            "broker": broker.bootstrap,
            "topic_prefix": prefix,
            "app_id": app_id,
            "security_protocol": "SASL_PLAINTEXT",
            "sasl_mechanism": MECHANISM,
            "sasl_username": ADMIN_USER,
            "sasl_password": ADMIN_PASSWORD,
        }
    )
    wanted = set(all_topics(admin_settings)) - but
    create_topics(admin_settings, sorted(wanted))
    admin = AdminClient({**broker.client_config(ADMIN_USER, ADMIN_PASSWORD), "log_level": 0})
    # the topics' ALLOWs last: once the app user sees the topics, the broker enforces the ACLs before them
    topics = [acl.restype == TOPIC and acl.permission_type == ALLOW for acl in acls]
    for batch in (list(compress(acls, (not t for t in topics))), list(compress(acls, topics))):
        if batch:
            for future in admin.create_acls(batch).values():
                future.result(30)
    app = AdminClient({**broker.client_config(USER, PASSWORD), "log_level": 0})
    wait_until(lambda: wanted <= set(app.list_topics(timeout=5).topics), timeout=30, interval=0.1)
    return {
        "CONVOWATCH_TOPIC_PREFIX": prefix,
        "CONVOWATCH_APP_ID": app_id,
        "CONVOWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CONVOWATCH_SASL_MECHANISM": MECHANISM,
        "CONVOWATCH_SASL_USERNAME": USER,
        "CONVOWATCH_SASL_PASSWORD": PASSWORD,
    }


def documented(
    prefix: str, app_id: str, topic_operations: tuple[AclOperation, ...] = (READ, WRITE, DESCRIBE)
) -> list[AclBinding]:
    """README, Permissions (ACLs): the topic prefix and ``<app id>-``, and groups prefixed ``<app id>``."""
    topics = [
        AclBinding(TOPIC, name, PREFIXED, f"User:{USER}", "*", operation, ALLOW)
        for name in (prefix, f"{app_id}-")
        for operation in topic_operations
    ]
    return [*topics, AclBinding(GROUP, app_id, PREFIXED, f"User:{USER}", "*", READ, ALLOW)]


@pytest.mark.parametrize("created_before_the_count_was_recorded", [False, True])
def test_a_worker_runs_with_the_documented_acls_alone_on_topics_an_administrator_created(
    acl_broker: ScramBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
    created_before_the_count_was_recorded: bool,
) -> None:
    # no CREATE: before 2026-11-26 Faust created its leader topic at every start, and the worker exited 1.
    # Topics created before <app id>-partition-count existed: the worker may not create it, and starts with
    # the check off (the day's review of 2026-11-26: it was refused at every start, after the upgrade)
    prefix, app_id = unique_name("acl") + ".", unique_name("acl-app")
    marker = f"{app_id}-partition-count"
    but = frozenset({marker} if created_before_the_count_was_recorded else ())
    env = set_up(acl_broker, prefix, app_id, documented(prefix, app_id), but)
    produced = run_cli(
        "produce",
        "--broker",
        acl_broker.bootstrap,
        "--generate",
        "--duration=20",
        "--rate=5",
        "--seed=3",
        env=env,
    )
    assert produced.returncode == 0, produced.stderr
    sent = json.loads(produced.stdout)["sent"]
    worker = make_worker(acl_broker.bootstrap, env)

    def processed() -> bool:
        return all(
            worker.value("convowatch_records_in_total", stream=s) == n for s, n in sent.items()
        ) and bool(worker.value("convowatch_outputs_total", topic="defects"))

    wait_until(processed, timeout=90, interval=0.2, message=worker.log_tail)
    assert worker.proc is not None and worker.proc.poll() is None
    log = worker.log_path.read_text(errors="replace")
    off = "check of this state's partition count is off"
    assert (off in log) == created_before_the_count_was_recorded, worker.log_tail()
    if not created_before_the_count_was_recorded:
        assert "Authorization" not in log and "CreateTopics" not in log, worker.log_tail()


def test_a_worker_missing_an_acl_refuses_to_start_naming_each_missing_one(
    acl_broker: ScramBroker, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    # before 2026-11-26: without the group's READ the worker waited for partitions for ever, reporting itself
    # healthy; without WRITE on escalations it failed at its first high-risk failure, then at every restart
    prefix, app_id = unique_name("acl") + ".", unique_name("acl-app")
    acls = [acl for acl in documented(prefix, app_id) if acl.restype == TOPIC]  # no group ACL
    acls.append(AclBinding(TOPIC, f"{prefix}escalations", LITERAL, f"User:{USER}", "*", WRITE, DENY))
    env = set_up(acl_broker, prefix, app_id, acls) | {"CONVOWATCH_METRICS_PORT": "0"}
    started = time.monotonic()
    result = run_cli("worker", "--broker", acl_broker.bootstrap, env=env, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    missing = f"READ on group {app_id}; WRITE on topic {prefix}escalations"
    assert [line for line in result.stderr.splitlines() if "error" in line] == [
        f"convowatch: error: the Kafka ACLs do not let SASL user '{USER}' run role all: it lacks {missing}. "
        "Grant them (README, Permissions (ACLs)); READ and WRITE imply DESCRIBE"
    ], result.stderr
    assert time.monotonic() - started < 30

    # topics it may neither see nor create (no DESCRIBE, no CREATE), named all at once, not as "missing"
    app_settings = Settings.model_validate(
        {key.removeprefix("CONVOWATCH_").lower(): value for key, value in env.items()}
        | {"broker": acl_broker.bootstrap}
    )
    unseen = [f"{unique_name('other')}.a", f"{unique_name('other')}.b"]
    with pytest.raises(ConfigError) as refused:
        create_topics(app_settings, unseen, expect_partitions=False)
    names = ", ".join(sorted(unseen))
    assert str(refused.value).startswith(
        f"the Kafka ACLs let this principal neither see nor create {names}: "
    )
