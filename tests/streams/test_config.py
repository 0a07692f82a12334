"""Settings refused as they are read, before any topic is created: what Kafka, the datetimes or the
Alertmanager client would refuse later; and an empty variable, which means unset for the optional paths."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from streams.config import Settings
from streams.config_validation import MAX_SECONDS, MAX_TOPIC_NAME, OPTIONAL_PATHS
from streams.topics import all_topics


def _refusal(**values: object) -> tuple[str, str]:
    """(field, message) of the first error of ``Settings(**values)``."""
    with pytest.raises(ValidationError) as refused:
        Settings(**values)  # type: ignore[arg-type]
    first = refused.value.errors(include_url=False)[0]
    return str(first["loc"][0]), first["msg"]


@pytest.mark.parametrize("name", OPTIONAL_PATHS)
def test_an_empty_path_variable_is_the_setting_unset(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # a template's ${VAR:-}: the taxonomy, golden set and vendor SLA file became Path("."), the data
    # directory the working directory
    monkeypatch.setenv("CONVOWATCH_SECURITY_PROTOCOL", "SSL")  # the CA file is checked only with SSL
    monkeypatch.setenv(f"CONVOWATCH_{name.upper()}", "")
    assert getattr(Settings(), name) is None


def test_empty_prefix_and_metrics_host_keep_their_meaning(monkeypatch: pytest.MonkeyPatch) -> None:
    # no prefix, and every interface: an empty value meant these, and taken as unset it moved a deployment
    # to 22 new, empty topics and made its metrics unreachable from outside its container
    monkeypatch.setenv("CONVOWATCH_TOPIC_PREFIX", "")
    monkeypatch.setenv("CONVOWATCH_METRICS_HOST", "")
    settings = Settings()
    assert (settings.topic_prefix, settings.metrics_host, settings.topic("defects")) == ("", "", "defects")


@pytest.mark.parametrize(("name", "field"), [("ALERTMANAGER_URL", "alertmanager_url"), ("ROLE", "role")])
def test_an_empty_alertmanager_url_or_role_is_refused(
    name: str, field: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a secret that rendered empty must not turn alerting off without a word
    monkeypatch.setenv(f"CONVOWATCH_{name}", "")
    assert _refusal()[0] == field


@pytest.mark.parametrize(
    ("empty", "needed"),
    [
        ({"CONVOWATCH_SASL_USERNAME": "", "CONVOWATCH_SASL_PASSWORD": ""}, "CONVOWATCH_SASL_USERNAME"),
        ({"CONVOWATCH_SASL_PASSWORD": ""}, "this password"),
    ],
)
def test_an_empty_credential_is_still_missing(
    empty: dict[str, str], needed: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CONVOWATCH_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("CONVOWATCH_SASL_USERNAME", "convowatch")
    for variable, value in empty.items():
        monkeypatch.setenv(variable, value)
    field, message = _refusal()
    assert field == "sasl_password" and needed in message


def test_an_empty_hash_key_is_still_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVOWATCH_TEXT_REDACTION", "hash")
    monkeypatch.setenv("CONVOWATCH_TEXT_HASH_KEY", "")
    field, message = _refusal()
    assert field == "text_hash_key" and "needs a secret key of at least 16 characters" in message


@pytest.mark.parametrize("url", ["", "alertmanager:9093", "http://admin:s3cret@am:notaport", "http://"])
def test_an_alertmanager_url_the_client_cannot_use_is_refused_without_quoting_it(url: str) -> None:
    # the worker refused it only after creating its topics, the replay and the report never
    field, message = _refusal(alertmanager_url=url)
    assert field == "alertmanager_url" and "Alertmanager URL must be http(s)://" in message
    for part in ("s3cret", "admin", "notaport", "alertmanager:"):
        assert part not in message


def test_a_usable_alertmanager_url_is_taken() -> None:
    url = "https://admin:p%2Fss@alertmanager.example.com:9093/am?token=t"
    secret = Settings(alertmanager_url=url).alertmanager_url
    assert secret is not None and secret.get_secret_value() == url


@pytest.mark.parametrize(
    ("values", "field", "expected"),
    [
        ({"topic_prefix": "shop bot."}, "topic_prefix", "'shop bot.': a topic name takes ASCII letters, "),
        ({"topic_prefix": "shop/"}, "topic_prefix", "a topic name takes ASCII letters"),
        ({"topic_prefix": "x" * 230}, "topic_prefix", f"Kafka takes {MAX_TOPIC_NAME}"),
        ({"app_id": "shop bot"}, "app_id", "a topic name takes ASCII letters"),
        ({"app_id": "caf\u00e9"}, "app_id", "a topic name takes ASCII letters"),
        ({"app_id": ""}, "app_id", "must not be empty"),
        # the aggregates' changelog, <app id>-aggregates-changelog, is the longest (Faust's leader topic,
        # <app id>-aggregate-__assignor-__leader, is no more: the app declares no topic)
        ({"app_id": "a" * (MAX_TOPIC_NAME - 20)}, "app_id", "names 250 characters long"),
    ],
)
def test_a_topic_prefix_or_app_id_kafka_would_refuse_is_refused(
    values: dict[str, str], field: str, expected: str
) -> None:
    # "shop bot." made topics create fail after creating the three changelogs, which then blocked the
    # corrected start (their partition counts)
    field_, message = _refusal(**values)
    assert field_ == field and expected in message, message


def test_the_longest_prefix_and_app_id_taken_make_topic_names_kafka_takes() -> None:
    unprefixed = Settings(topic_prefix="", defect_category_topics=False)
    longest = max(len(name) for name in all_topics(unprefixed) if not name.startswith(unprefixed.app_id))
    settings = Settings(
        topic_prefix="p" * (MAX_TOPIC_NAME - longest),
        app_id="a" * (MAX_TOPIC_NAME - len("-aggregates-changelog")),
        defect_category_topics=False,
    )
    assert max(len(name) for name in all_topics(settings)) == MAX_TOPIC_NAME
    assert len(f"{settings.app_id}-aggregates-changelog") == MAX_TOPIC_NAME


def test_the_replication_factor_is_the_brokers_default_unless_set() -> None:
    # the default was 1: on a 3-broker cluster every topic convowatch created had one replica, silently
    assert Settings().replication_factor == -1
    assert Settings(replication_factor=3).replication_factor == 3
    for wrong in (0, -2):
        field, message = _refusal(replication_factor=wrong)
        assert field == "replication_factor", message


@pytest.mark.parametrize(
    "broker",
    ["kafka:notaport", "kafka:0", "kafka:65536", "kafka:", "a:9092,kafka:9o92", "[::1]:x", "k:\u00b2"],
)
def test_a_broker_port_that_is_no_port_is_refused(broker: str) -> None:
    # the clients tried "kafka:notaport" until their 10 s timeout
    field, message = _refusal(broker=broker)
    assert field == "broker" and "the port must be a number from 1 to 65535" in message


@pytest.mark.parametrize("broker", ["kafka:9092", "a:1,b:65535", "[::1]:9092", "[::1]", "kafka"])
def test_broker_addresses_with_a_port_or_without(broker: str) -> None:
    assert Settings(broker=broker).broker == broker


@pytest.mark.parametrize(
    "field",
    [
        "join_ttl_seconds",  # 1e-300: every record an internal_error dead letter (an OverflowError)
        "conversation_idle_seconds",  # the same
        "recontact_window_seconds",
        "version_horizon_seconds",
        "alert_resend_seconds",
        "alert_expire_seconds",
    ],
)
def test_an_event_time_duration_under_a_second_is_refused(field: str) -> None:
    assert _refusal(**{field: 1e-300}) == (field, "Input should be greater than or equal to 1")
    assert getattr(Settings(**{field: 1}), field) == 1


@pytest.mark.parametrize("field", sorted(f for f in Settings.model_fields if f.endswith("_seconds")))
def test_no_duration_is_longer_than_ten_years(field: str) -> None:
    # an alert re-sent every 1e300 s: its endsAt overflowed the datetime
    field_, message = _refusal(**{field: 1e300})
    assert field_ == field and ("at most" in message or "less than or equal to" in message), message


def test_ten_years_is_taken() -> None:
    assert Settings(join_ttl_seconds=MAX_SECONDS).join_ttl_seconds == MAX_SECONDS


@pytest.mark.parametrize(
    ("windows", "expected"),
    [
        ({"": [3600, 300]}, "a window needs a name (the metrics' window label), got '' for [3600, 300]"),
        (
            {"x": [10**15, 1]},
            "window 'x' is longer than ten years (315360000 seconds), got [1000000000000000, 1]",
        ),
        (
            {"x": [3600, 7]},
            "window 'x' needs positive sizes with window_seconds a multiple of bucket_seconds",
        ),
    ],
)
def test_an_agreement_window_the_views_cannot_keep_is_refused(windows: dict, expected: str) -> None:
    # [1e15, 1] ended the replay in a traceback (a year out of range), "" in a message about its sizes
    field, message = _refusal(agreement_windows=windows)
    assert field == "agreement_windows" and expected in message
