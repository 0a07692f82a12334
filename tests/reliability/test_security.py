"""SASL/SCRAM-SHA-512 end to end through configuration only, secrets kept out of logs, reprs and metrics,
and chat text kept out of every topic convowatch writes (dead letters carry a rejected record as it came:
the generated traffic here has none)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import orjson
import pytest
from confluent_kafka.admin import AdminClient

from schemas import Stream
from streams.config import Settings
from streams.generator import TrafficGenerator, to_records
from streams.topics import input_topics
from tests.reliability.harness import STREAMS, Worker, report, worker_env
from tests.reliability.sasl_broker import MECHANISM, ScramBroker
from tests.support.broker import BrokerError
from tests.support.verify import (
    TopicCheck,
    check_outputs,
    consumer_lag,
    embedded_oracle,
    read_raw,
    summarise,
)
from tests.support.wait import wait_until
from tests.support.worker import REPO

pytestmark = pytest.mark.reliability

USER = "convowatch"
PASSWORD = f"Pw-{uuid.uuid4().hex}"  # unique: any occurrence in a log can only be a leak
WRONG = f"Wrong-{uuid.uuid4().hex}"
SEED, RATE, DURATION, START = 5, 40.0, 30.0, "2026-11-02T08:00:00+00:00"
GENERATE = {"seed": SEED, "rate": RATE, "duration": DURATION, "start": START}


@pytest.fixture(scope="module")
def scram_broker() -> Iterator[ScramBroker]:
    broker = ScramBroker({USER: PASSWORD})
    try:
        broker.start()
    except BrokerError as exc:
        broker.close()
        pytest.fail(f"SCRAM broker could not start: {exc}", pytrace=False)
    yield broker
    broker.close()


def sasl_env(password: str) -> dict[str, str]:
    return {
        "CONVOWATCH_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "CONVOWATCH_SASL_MECHANISM": MECHANISM,
        "CONVOWATCH_SASL_USERNAME": USER,
        "CONVOWATCH_SASL_PASSWORD": password,
        "CONVOWATCH_TEXT_REDACTION": "drop",
    }


def cli(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "streams.cli", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_scram_end_to_end_without_leaking_secrets_or_chat_text(
    scram_broker: ScramBroker, unique_name: Callable[[str], str], tmp_path: Path
) -> None:
    bootstrap = scram_broker.bootstrap
    prefix, app_id = unique_name("sec") + ".", unique_name("sec-app")
    env = {**worker_env(prefix, app_id), **sasl_env(PASSWORD)}
    client = scram_broker.client_config(USER, PASSWORD)

    generate = [f"--{k}={v}" for k, v in GENERATE.items()]
    produced = cli("produce", "--broker", bootstrap, "--generate", *generate, env=env)
    assert produced.returncode == 0, produced.stderr
    sent = orjson.loads(produced.stdout)["sent"]
    generator = TrafficGenerator(seed=SEED, rate=RATE, start=datetime.fromisoformat(START))
    records = [(r[2], r[3]) for r in to_records(generator.records(DURATION))]
    assert sum(sent.values()) == len(records)

    worker = Worker(bootstrap, env, tmp_path / "worker.log", loglevel="debug")
    settings = Settings(broker=bootstrap, topic_prefix=prefix, app_id=app_id)
    oracle = embedded_oracle(records, settings)
    inputs = list(input_topics(settings).values())
    try:
        worker.start()
        wait_until(
            lambda: (
                all(worker.value("convowatch_records_in_total", stream=s) == sent[s] for s in STREAMS)
                and not consumer_lag(bootstrap, app_id, inputs, client)
            ),
            timeout=90,
            interval=0.5,
            message=worker.log_tail,
        )

        def complete() -> dict[str, TopicCheck]:
            checks = check_outputs(bootstrap, prefix, oracle, client)
            return checks if all(c.ok for c in checks.values()) else {}

        checks = wait_until(
            complete,
            timeout=60,
            interval=1.0,
            message=lambda: summarise(check_outputs(bootstrap, prefix, oracle, client)),
        )
        url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=5) as response:
            metrics_text = response.read().decode()
    finally:
        worker.stop()
    assert checks["defects"].unique > 0

    # the password: in no log, repr or metric
    log = worker.log_path.read_text(errors="replace")
    assert f"Authenticated as {USER} via {MECHANISM}" in log  # the log covers the authentication
    for where, text in {
        "worker log (debug)": log,
        "metrics": metrics_text,
        "produce output": produced.stdout + produced.stderr,
        "repr(Settings)": repr(Settings(sasl_password=PASSWORD)),  # type: ignore[arg-type]
        "str(Settings)": str(Settings(sasl_password=PASSWORD)),  # type: ignore[arg-type]
        "Settings JSON": Settings(sasl_password=PASSWORD).model_dump_json(),  # type: ignore[arg-type]
    }.items():
        assert PASSWORD not in text, f"the SASL password appears in the {where}"

    # chat text: in no topic convowatch writes (outputs, internal topics, changelogs)
    texts = {
        orjson.loads(raw)[field].encode()
        for stream, raw in records
        if stream is Stream.CHAT_TURNS
        for field in ("user_text", "response_text")
    }
    admin = AdminClient(client)
    written = sorted(
        t
        for t in admin.list_topics(timeout=10).topics
        if (t.startswith(prefix) or t.startswith(app_id)) and t not in inputs
    )
    assert any(t.endswith("-pending-changelog") for t in written) and prefix + "defects" in written
    scanned = 0
    for topic in written:
        for _, value in read_raw(bootstrap, topic, config=client):
            scanned += 1
            leaked = [t for t in texts if value and t in value]
            assert not leaked, f"chat text {leaked[0]!r} published on {topic}"

    report(
        "security",
        {
            "records": len(records),
            "defects": checks["defects"].unique,
            "topics_scanned_for_chat_text": len(written),
            "records_scanned": scanned,
            "distinct_chat_texts": len(texts),
            "worker_log_bytes": len(log),
        },
    )


@pytest.mark.parametrize("command", ["worker", "produce"])
def test_wrong_password_fails_fast_with_a_clear_error(
    scram_broker: ScramBroker, unique_name: Callable[[str], str], command: str
) -> None:
    # metrics on a free port: the default 9108 may be taken on a shared machine (a demo running beside)
    env = {
        "CONVOWATCH_TOPIC_PREFIX": unique_name("bad") + ".",
        "CONVOWATCH_METRICS_PORT": "0",
        **sasl_env(WRONG),
    }
    extra = ["--generate", "--duration=1"] if command == "produce" else []
    started = time.monotonic()
    result = cli(command, "--broker", scram_broker.bootstrap, *extra, env=env, timeout=60)
    elapsed = time.monotonic() - started
    assert result.returncode == 1, result.stderr
    assert f"rejected the credentials of SASL user '{USER}' ({MECHANISM})" in result.stderr, result.stderr
    assert "Authentication failed" in result.stderr and "Traceback" not in result.stderr
    assert WRONG not in result.stderr + result.stdout
    assert elapsed < 30
