"""The checks of :class:`~streams.config.Settings` beyond each field's own bounds: values that only make
sense together (SASL credentials, heartbeat and session timeout, the detectors' false-alarm budgets, the
perceptual-drift settings), a broker list, topic names, an Alertmanager URL and a CA bundle a worker can use,
durations and agreement windows the datetimes take, and integers the changelog's JSON takes. Each is a
pydantic field validator, attached to its field in ``Settings``; each runs before any topic is created.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pydantic import SecretStr, ValidationInfo

from detectors.defect_rate_spike import DefectRateSpike, arl0_for_budget
from detectors.score_drift import ScoreDrift
from schemas.common import QUALITY_DIMENSIONS
from streams.alertmanager_http import split_url

#: Shortest CONVOWATCH_TEXT_HASH_KEY accepted.
MIN_TEXT_HASH_KEY = 16
#: Longest duration a setting (or a flag) takes, ten years: a larger one overflows the datetimes it is added
#: to or taken from (an alert's endsAt, a window's start), and the timers waiting on it.
MAX_SECONDS = 10 * 365 * 86400
#: Kafka's limit on a topic name's length, and the characters it takes.
MAX_TOPIC_NAME = 249
TOPIC_CHARACTERS = re.compile(r"[A-Za-z0-9._-]*")


def bootstrap_servers(broker: str) -> str:
    hosts = [host.strip() for host in broker.split(",")]
    if not all(hosts):
        raise ValueError("must be host:port[,host:port...], with no empty entry")
    if schemes := [host for host in hosts if "://" in host]:  # as advertised.listeners prints them
        raise ValueError(
            f"{schemes[0][:200]!r}: give host:port; the protocol is CONVOWATCH_SECURITY_PROTOCOL"
        )
    for host in hosts:  # the clients tried "kafka:notaport" until their 10 s timeout
        port = _port(host)
        if port is not None and not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
            raise ValueError(f"{host[:200]!r}: the port must be a number from 1 to 65535")
    return ",".join(hosts)  # "a:9092, b:9092" gave Faust a host " b"


def _port(host: str) -> str | None:
    """The port of a bootstrap server ``host:port`` or ``[IPv6]:port`` (None: none given)."""
    _, bracket, tail = host.rpartition("]")
    if bracket:
        return tail.removeprefix(":") if tail else None
    return host.rpartition(":")[2] if host.count(":") == 1 else None


def legal_topic_prefix(prefix: str) -> str:
    from streams.topics import INPUTS, INTERNAL, OUTPUTS  # streams.topics imports Settings

    _check_topic_characters(prefix)
    longest = max([*INPUTS.values(), *OUTPUTS.values(), *INTERNAL.values()], key=len)
    _check_topic_length(prefix + longest)  # defects.<category> topics: streams.admin checks them
    return prefix


def legal_app_id(app_id: str) -> str:
    from streams.topics import TABLES

    if not app_id:
        raise ValueError("must not be empty")
    _check_topic_characters(app_id)
    _check_topic_length(max((f"{app_id}-{table}-changelog" for table in TABLES), key=len))
    return app_id


def replicas_or_broker_default(replication_factor: int) -> int:
    if replication_factor == 0:
        raise ValueError("must be -1 (the broker's default.replication.factor) or at least 1")
    return replication_factor


def _check_topic_characters(part: str) -> None:
    if not TOPIC_CHARACTERS.fullmatch(part):
        raise ValueError(
            f"{part[:100]!r}: a topic name takes ASCII letters, digits, '.', '_' and '-' only (Kafka's rule)"
        )


def _check_topic_length(name: str) -> None:
    if len(name) > MAX_TOPIC_NAME:
        raise ValueError(
            f"makes topic names {len(name)} characters long (...{name[-40:]}): Kafka takes {MAX_TOPIC_NAME}"
        )


def alertmanager_url(url: SecretStr | None) -> SecretStr | None:
    if url is not None:
        split_url(url.get_secret_value())  # its ValueError quotes no part of the URL
    return url


def duration_in_range(value: object, info: ValidationInfo) -> object:
    if (info.field_name or "").endswith("_seconds") and isinstance(value, float) and value > MAX_SECONDS:
        raise ValueError(f"must be at most ten years ({MAX_SECONDS} seconds)")
    return value


def agreement_windows(windows: dict[str, tuple[int, int]]) -> dict[str, tuple[int, int]]:
    for name, (window, bucket) in windows.items():
        if problem := agreement_window_problem(name, window, bucket):
            raise ValueError(problem)
    return windows


def agreement_window_problem(name: str, window: int, bucket: int) -> str | None:
    """What is wrong with agreement window ``name`` of ``window`` seconds in ``bucket``-second buckets.

    >>> agreement_window_problem("1h", 3600, 300) is None
    True
    >>> agreement_window_problem("", 3600, 300)
    "a window needs a name (the metrics' window label), got '' for [3600, 300]"
    """
    if not name:
        return f"a window needs a name (the metrics' window label), got '' for [{window}, {bucket}]"
    if window <= 0 or bucket <= 0 or window % bucket:
        return (
            f"window {name!r} needs positive sizes with window_seconds a multiple of bucket_seconds, got "
            f"[{window}, {bucket}]"
        )
    if window > MAX_SECONDS:
        return f"window {name!r} is longer than ten years ({MAX_SECONDS} seconds), got [{window}, {bucket}]"
    return None


def heartbeat_within_session(interval: float, info: ValidationInfo) -> float:
    session = info.data.get("session_timeout_seconds")
    if session is not None and interval > session / 3:
        raise ValueError(
            f"must be at most a third of CONVOWATCH_SESSION_TIMEOUT_SECONDS ({session:g}): with fewer "
            "heartbeats per session, one late heartbeat drops a live worker from the group"
        )
    return interval


def sasl_needs_credentials(password: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
    sasl = str(info.data.get("security_protocol", "")).startswith("SASL")
    if sasl and (not info.data.get("sasl_username") or not password or not password.get_secret_value()):
        raise ValueError(
            "CONVOWATCH_SECURITY_PROTOCOL=SASL_* needs CONVOWATCH_SASL_USERNAME and this password"
        )
    return password


#: the optional file and directory settings: empty (a template's ``${VAR:-}``) means unset, where it was
#: ``Path(".")``, the working directory. Only these: an empty prefix is no prefix, an empty metrics host every
#: interface, and an empty Alertmanager URL or role is refused (a secret that rendered empty must not
#: silently turn alerting off)
OPTIONAL_PATHS = ("data_dir", "ssl_cafile", "taxonomy", "golden", "vendor_sla")


def empty_path_unset(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def readable_cafile(path: Path | None, info: ValidationInfo) -> Path | None:
    if path is None:
        return None
    ssl = str(info.data.get("security_protocol", "")).endswith("SSL")
    if ssl and not (path.is_file() and os.access(path, os.R_OK)):  # only SSL reads it
        # librdkafka says only "ssl.ca.location failed ... BIO lib", naming neither file nor variable
        raise ValueError(f"cannot read the CA bundle {str(path)[:200]!r}")
    return path


def integers_fit_64_bits(value: object) -> object:
    # settings become detector parameters, whose state the changelog gets as JSON (orjson), which refuses
    # an integer beyond 64 bits: the aggregate stage failed on its first batch, at every restart again
    if _wider_than_64_bits(value):
        raise ValueError(f"integers must be within [-2**63, 2**63 - 1], got {str(value)[:100]}")
    return value


def spike_budget_in_range(turns: float, info: ValidationInfo) -> float:
    # the run length SpikeView gives its detectors: a turn is an event of each of its 3 slices' streams
    # per category (at most one category per quality dimension), once per judge and once for the humans
    judges, labelled = info.data.get("spike_judges"), info.data.get("spike_labelled_turns_per_day")
    if judges is not None and labelled is not None:  # else that field failed already
        _check_run_length(
            info.data.get("spike_false_alarms_per_day"),
            spike_events_per_day(turns, judges, labelled),
            3 * len(QUALITY_DIMENSIONS),
            "SPIKE",
        )
    return turns


def drift_budget_in_range(pairs: float, info: ValidationInfo) -> float:
    # the run length JudgeDriftView gives its detectors (a pair is an event of 2 streams)
    _check_run_length(info.data.get("drift_false_alarms_per_day"), pairs, 2, "DRIFT")
    return pairs


def perceptual_consistent(horizon: int, info: ValidationInfo) -> int:
    data = info.data
    names = ("reference_size", "window_size", "check_every", "false_alarms")
    if all(f"perceptual_{name}" in data for name in names):  # else another field failed already
        try:  # each is valid alone, not every combination (a CHECK_EVERY larger than the WINDOW_SIZE)
            ScoreDrift(
                reference_size=data["perceptual_reference_size"],
                window_size=data["perceptual_window_size"],
                check_every=data["perceptual_check_every"],
                alpha=data["perceptual_false_alarms"],
                horizon=horizon,
            )
        except ValueError as exc:
            raise ValueError(f"the CONVOWATCH_PERCEPTUAL_* settings do not fit together: {exc}") from None
    return horizon


def hash_needs_key(key: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
    secret = key.get_secret_value() if key is not None else ""
    if info.data.get("text_redaction") == "hash" and len(secret) < MIN_TEXT_HASH_KEY:
        raise ValueError(
            f"CONVOWATCH_TEXT_REDACTION=hash needs a secret key of at least {MIN_TEXT_HASH_KEY} "
            "characters: an unkeyed hash of a short text is found by hashing guesses"
        )
    return key


def spike_events_per_day(turns_per_day: float, judges: int, labelled_turns_per_day: float) -> float:
    """Events a day of one (slice, category) stream summed over its sources, the traffic the spike budget is
    shared over: each judge's turns, and the human-labelled turns (the human source's).

    >>> spike_events_per_day(1_000_000, judges=2, labelled_turns_per_day=100_000)
    2100000
    """
    return judges * turns_per_day + labelled_turns_per_day


def _check_run_length(alarms: float | None, events: float, streams: int, budget: str) -> None:
    """That a false-alarm budget of ``alarms`` a day at ``events`` a day over ``streams`` streams gives a run
    length :class:`DefectRateSpike` takes (every update of its detectors failed in the view otherwise)."""
    if alarms is None:  # that field failed already
        return
    try:
        DefectRateSpike(arl0=arl0_for_budget(alarms, events, streams))
    except ValueError as exc:
        raise ValueError(f"with CONVOWATCH_{budget}_FALSE_ALARMS_PER_DAY: {exc}") from None


def _wider_than_64_bits(value: object) -> bool:
    """Whether ``value`` is, or holds (in a dict's values, a list or a tuple), an integer orjson refuses."""
    if isinstance(value, int) and not isinstance(value, bool):
        return not -(2**63) <= value < 2**63
    if isinstance(value, dict):
        return any(_wider_than_64_bits(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_wider_than_64_bits(v) for v in value)
    return False
