"""What the worker sets up before Faust starts: its event loop, its data directory, its clients' SASL
settings; and what it checks before it creates any topic."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvloop
from confluent_kafka.admin import AdminClient
from pydantic import ValidationError

from streams.app import data_dir
from streams.cli import main
from streams.config import Settings
from streams.exceptions import ConfigError
from streams.kafka_client import confluent_config, faust_credentials
from streams.worker import use_event_loop
from tests.support.broker import KafkaBroker


@pytest.fixture
def restore_policy() -> Iterator[None]:
    policy = asyncio.get_event_loop_policy()
    yield
    asyncio.set_event_loop_policy(policy)


@pytest.mark.parametrize(("name", "loop_type"), [("uvloop", uvloop.Loop), ("asyncio", asyncio.BaseEventLoop)])
def test_the_worker_creates_the_configured_event_loop(
    name: str, loop_type: type, restore_policy: None
) -> None:
    use_event_loop(name)
    loop = asyncio.new_event_loop()
    try:
        assert isinstance(loop, loop_type)
        assert isinstance(loop, uvloop.Loop) == (name == "uvloop")
    finally:
        loop.close()


def test_uvloop_is_the_default() -> None:
    assert Settings().event_loop == "uvloop"


def test_the_data_dir_defaults_to_a_temp_dir_per_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    path = data_dir(Settings(app_id="shop-assistant"))
    assert path == tmp_path / "convowatch" / "shop-assistant"
    assert path.parent.is_dir()  # Faust creates only the last component


def test_a_configured_data_dir_is_used_as_is(tmp_path: Path) -> None:
    wanted = tmp_path / "deep" / "faust"
    assert data_dir(Settings(data_dir=wanted)) == wanted
    assert wanted.parent.is_dir()


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("{file}/faust", "Not a directory"),  # a file in the path: a FileExistsError traceback before
        ("{file}", "File exists"),
        ("/proc/1/convowatch", "No such file or directory"),  # Faust's own mkdir failed, with a traceback
    ],
)
def test_a_data_dir_that_cannot_be_used_is_a_one_line_error_naming_the_variable(
    where: str, reason: str, tmp_path: Path
) -> None:
    file = tmp_path / "afile"
    file.write_text("not a directory\n")
    path = Path(where.format(file=file))
    with pytest.raises(ConfigError) as refused:
        data_dir(Settings(data_dir=path))
    assert str(refused.value) == f"cannot use {path} as the data directory (CONVOWATCH_DATA_DIR): {reason}"


@pytest.mark.kafka
@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("CONVOWATCH_DATA_DIR", "/proc/1/convowatch", "(CONVOWATCH_DATA_DIR): No such file or directory"),
        ("CONVOWATCH_DATA_DIR", "{file}/faust", "(CONVOWATCH_DATA_DIR): Not a directory"),
        ("CONVOWATCH_GOLDEN", "{tmp}/missing.jsonl", "cannot read golden set file {tmp}/missing.jsonl: "),
        ("CONVOWATCH_VENDOR_SLA", "{file}", "{file}: key 'the document': Input should be a valid dictionary"),
    ],
)
def test_a_file_the_worker_cannot_use_stops_it_before_it_creates_any_topic(
    variable: str,
    value: str,
    expected: str,
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    restore_policy: None,
) -> None:
    # the worker created every topic first, then stopped (with a traceback for the data directory)
    file = tmp_path / "afile"
    file.write_text("not a directory\n")
    prefix, app_id = unique_name("pre") + ".", unique_name("app")
    monkeypatch.setenv("CONVOWATCH_TOPIC_PREFIX", prefix)
    monkeypatch.setenv("CONVOWATCH_APP_ID", app_id)
    monkeypatch.setenv("CONVOWATCH_METRICS_PORT", "0")
    monkeypatch.setenv(variable, value.format(file=file, tmp=tmp_path))
    assert main(["worker", "--broker", kafka_broker.bootstrap]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("convowatch: error: "), lines
    assert expected.format(file=file, tmp=tmp_path) in lines[0]
    assert _topics_of(kafka_broker, prefix, app_id) == []


@pytest.mark.kafka
def test_topics_create_with_a_prefix_kafka_refuses_creates_nothing(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # it created the three changelogs, then failed on the first prefixed topic; the changelogs (4
    # partitions) then refused the corrected command with another CONVOWATCH_PARTITIONS
    app_id = unique_name("app")
    monkeypatch.setenv("CONVOWATCH_TOPIC_PREFIX", "shop bot.")
    monkeypatch.setenv("CONVOWATCH_APP_ID", app_id)
    assert main(["topics", "create", "--broker", kafka_broker.bootstrap]) == 1
    assert "(CONVOWATCH_TOPIC_PREFIX): 'shop bot.': a topic name takes " in capsys.readouterr().err
    assert _topics_of(kafka_broker, "shop bot.", app_id) == []


def _topics_of(broker: KafkaBroker, prefix: str, app_id: str) -> list[str]:
    topics = AdminClient({"bootstrap.servers": broker.bootstrap}).list_topics(timeout=30).topics
    return sorted(name for name in topics if name.startswith((prefix, app_id)))


def test_the_review_floor_cannot_ask_for_labels_the_schema_would_refuse() -> None:
    from pydantic import ValidationError

    from schemas.common import MIN_INCLUSION_PROBABILITY

    assert Settings(review_min_probability=MIN_INCLUSION_PROBABILITY).review_min_probability == 1e-6
    with pytest.raises(ValidationError, match="review_min_probability"):
        Settings(review_min_probability=1e-7)


def test_sasl_without_a_mechanism_is_plain_for_every_client() -> None:
    # librdkafka's own default is GSSAPI: admin, producer and probe failed while Faust's clients used PLAIN
    settings = Settings(security_protocol="SASL_SSL", sasl_username="u", sasl_password="p")  # type: ignore[arg-type]
    assert confluent_config(settings)["sasl.mechanism"] == "PLAIN"
    assert faust_credentials(settings).mechanism.value == "PLAIN"


def test_sasl_without_credentials_is_refused() -> None:
    with pytest.raises(ValidationError, match="CONVOWATCH_SASL_USERNAME"):
        Settings(security_protocol="SASL_PLAINTEXT", sasl_username="u")


def test_bootstrap_servers_are_trimmed_and_never_empty() -> None:
    assert Settings(broker=" a:9092, b:9093 ").broker == "a:9092,b:9093"
    for broker in ("", "a:9092,,b:9092", " "):
        with pytest.raises(ValidationError, match="host:port"):
            Settings(broker=broker)


def test_a_broker_address_with_a_listener_scheme_is_refused() -> None:
    # PLAINTEXT://host:9092 passed the broker check and topic creation (librdkafka strips a scheme), then the
    # Faust worker crashed with a traceback: aiokafka took "plaintext" for the host
    for broker in ("PLAINTEXT://kafka:9092", "a:9092,SASL_SSL://b:9093"):
        with pytest.raises(
            ValidationError, match="give host:port; the protocol is CONVOWATCH_SECURITY_PROTOCOL"
        ):
            Settings(broker=broker)


def test_aiokafka_debug_lines_of_sasl_authenticate_requests_never_reach_the_log(caplog) -> None:
    # at --loglevel debug aiokafka prints every request whole; a PLAIN authenticate request carries the
    # password in clear, and the repeat filter let one such line through every 30 s
    import logging

    from aiokafka.protocol.admin import SaslAuthenticateRequest_v1

    from streams.kafka_client import quiet_client_logs

    conn = logging.getLogger("aiokafka.conn")
    saved = (conn.level, list(conn.filters))
    try:
        quiet_client_logs()
        conn.setLevel(logging.DEBUG)
        request = SaslAuthenticateRequest_v1(b"\x00convowatch\x00convowatch\x00Pw-secret-42")
        with caplog.at_level(logging.DEBUG, logger="aiokafka.conn"):
            conn.debug("Request to %s:%d %d: %s", "broker", 9092, 7, request)
            conn.debug("Response %d (%s ms): %s", 7, 1.0, "ApiVersionResponse_v0()")
        assert "Pw-secret-42" not in caplog.text
        assert "ApiVersionResponse_v0" in caplog.text  # other debug lines still pass
    finally:
        conn.setLevel(saved[0])
        conn.filters[:] = saved[1]
