"""One frozen settings object; every field is read from a ``CONVOWATCH_*`` environment variable."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """convowatch's configuration. Each field names its environment variable."""

    model_config = SettingsConfigDict(env_prefix="CONVOWATCH_", frozen=True, extra="ignore")

    broker: str = Field(
        "localhost:9092", description="CONVOWATCH_BROKER: Kafka bootstrap servers, host:port[,...]."
    )
    topic_prefix: str = Field(
        "convowatch.",
        description="CONVOWATCH_TOPIC_PREFIX: prefix of every topic convowatch reads or writes.",
    )
    app_id: str = Field("convowatch", description="CONVOWATCH_APP_ID: Faust app id, also the consumer group.")
    partitions: int = Field(
        4, ge=1, description="CONVOWATCH_PARTITIONS: partitions of topics convowatch creates."
    )
    replication_factor: int = Field(1, ge=1, description="CONVOWATCH_REPLICATION_FACTOR: for created topics.")
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once", description="CONVOWATCH_PROCESSING_GUARANTEE: Faust's delivery guarantee."
    )
    batch_max: int = Field(
        1_000, ge=1, description="CONVOWATCH_BATCH_MAX: most records an agent processes as one batch."
    )
    batch_within_seconds: float = Field(
        0.05, gt=0, description="CONVOWATCH_BATCH_WITHIN_SECONDS: longest wait to fill a batch."
    )
    commit_interval_seconds: float = Field(
        1.0, gt=0, description="CONVOWATCH_COMMIT_INTERVAL_SECONDS: how often consumed offsets are committed."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="CONVOWATCH_SECURITY_PROTOCOL: Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None, description="CONVOWATCH_SASL_MECHANISM: SASL mechanism when the protocol is SASL_*."
    )
    sasl_username: str | None = Field(None, description="CONVOWATCH_SASL_USERNAME: SASL user.")
    sasl_password: SecretStr | None = Field(
        None, description="CONVOWATCH_SASL_PASSWORD: SASL password (secret)."
    )
    ssl_cafile: Path | None = Field(
        None, description="CONVOWATCH_SSL_CAFILE: CA bundle to verify the broker."
    )
    join_ttl_seconds: float = Field(
        7 * 24 * 3600, gt=0, description="CONVOWATCH_JOIN_TTL_SECONDS: event-time life of an unjoined turn."
    )
    join_max_entries: int = Field(
        1_000_000,
        ge=10,
        description="CONVOWATCH_JOIN_MAX_ENTRIES: cap on pending turns; the oldest go first.",
    )
    evict_every: int = Field(
        5_000, ge=1, description="CONVOWATCH_EVICT_EVERY: look for expired pending turns every N events."
    )
    max_record_bytes: int = Field(
        1_048_576, ge=1024, description="CONVOWATCH_MAX_RECORD_BYTES: larger records are dead-lettered."
    )
    metrics_host: str = Field(
        "127.0.0.1", description="CONVOWATCH_METRICS_HOST: address of the /metrics server."
    )
    metrics_port: int = Field(
        9108, ge=0, le=65535, description="CONVOWATCH_METRICS_PORT: 0 picks a free port."
    )
    label_max_values: int = Field(
        20, ge=1, description="CONVOWATCH_LABEL_MAX_VALUES: distinct values per metric label before 'other'."
    )
    taxonomy: Path | None = Field(
        None, description="CONVOWATCH_TAXONOMY: defect taxonomy YAML; the built-in default when unset."
    )
    defect_category_topics: bool = Field(
        True, description="CONVOWATCH_DEFECT_CATEGORY_TOPICS: also publish each defect to defects.<category>."
    )
    spike_false_alarms_per_day: float = Field(
        1.0,
        gt=0,
        description="CONVOWATCH_SPIKE_FALSE_ALARMS_PER_DAY: false defect_spike alarms tolerated per day, all "
        "segments together, at the traffic below.",
    )
    spike_turns_per_day: float = Field(
        1_000_000.0,
        gt=0,
        description="CONVOWATCH_SPIKE_TURNS_PER_DAY: judged turns a day the budget is stated for.",
    )
    alertmanager_url: SecretStr | None = Field(
        None,
        description="CONVOWATCH_ALERTMANAGER_URL: Alertmanager base URL; escalations become alerts when set "
        "(a secret: it may carry basic-auth credentials).",
    )
    alert_resend_seconds: float = Field(
        60.0, gt=0, description="CONVOWATCH_ALERT_RESEND_SECONDS: how often active alerts are re-sent."
    )
    alert_expire_seconds: float = Field(
        21_600.0,
        gt=0,
        description="CONVOWATCH_ALERT_EXPIRE_SECONDS: an alert with no update resolves after this long.",
    )
    text_redaction: Literal["keep", "hash", "drop"] = Field(
        "drop", description="CONVOWATCH_TEXT_REDACTION: chat text in published records: keep, hash or drop."
    )
    session_timeout_seconds: float = Field(
        60.0,
        ge=1,
        description="CONVOWATCH_SESSION_TIMEOUT_SECONDS: a worker silent this long (crashed) leaves the "
        "consumer group and its partitions move to the others; the broker allows 6 to 1800 by default.",
    )
    heartbeat_interval_seconds: float = Field(
        3.0,
        gt=0,
        description="CONVOWATCH_HEARTBEAT_INTERVAL_SECONDS: consumer group heartbeats; well below the "
        "session timeout.",
    )
    broker_probe_interval_seconds: float = Field(
        2.0,
        gt=0,
        description="CONVOWATCH_BROKER_PROBE_INTERVAL_SECONDS: how often the worker checks that the broker "
        "answers (convowatch_broker_connected, convowatch_broker_outages_total).",
    )
    golden: Path | None = Field(
        None,
        description="CONVOWATCH_GOLDEN: golden set, JSONL of {turn_id, labels: {dimension: label}}; vendors, "
        "annotators and judges are scored on these turns (validated at start).",
    )
    agreement_windows: dict[str, tuple[int, int]] = Field(
        default_factory=lambda: {"1h": (3600, 300), "24h": (86400, 3600)},
        description="CONVOWATCH_AGREEMENT_WINDOWS: sliding event-time windows of judge/human agreement, JSON "
        "{name: [window_seconds, bucket_seconds]}; the name is the metrics' window label.",
    )
    divergence_refresh_every: int = Field(
        200,
        ge=1,
        description="CONVOWATCH_DIVERGENCE_REFRESH_EVERY: agreement, calibration and defect-rate gauges are "
        "recomputed after this many observations of their aggregate (1 = on every one) ...",
    )
    divergence_refresh_seconds: float = Field(
        60.0,
        gt=0,
        description="CONVOWATCH_DIVERGENCE_REFRESH_SECONDS: ... or once this much event time has passed.",
    )

    version_horizon_seconds: float = Field(
        3600.0,
        gt=0,
        description="CONVOWATCH_VERSION_HORIZON_SECONDS: two model versions seen on a journey within this "
        "much event time of each other are compared (version_regression).",
    )
    version_alpha: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="CONVOWATCH_VERSION_ALPHA: false-positive rate of each version comparison, valid under "
        "continuous monitoring (always-valid mSPRT).",
    )
    version_tau2: float = Field(
        1e-4,
        gt=0,
        description="CONVOWATCH_VERSION_TAU2: prior variance of the defect-rate lift; the test is most "
        "sensitive to lifts near its square root (1e-4: one percentage point).",
    )
    version_min_samples: int = Field(
        100, ge=1, description="CONVOWATCH_VERSION_MIN_SAMPLES: judged turns per version before testing."
    )

    def topic(self, name: str) -> str:
        """The full name of a logical topic, e.g. ``topic("defects") == "convowatch.defects"``."""
        return f"{self.topic_prefix}{name}"
