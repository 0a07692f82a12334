"""One frozen settings object; every field is read from a ``CONVOWATCH_*`` environment variable."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from schemas.common import MIN_INCLUSION_PROBABILITY
from streams import config_validation as check
from streams.config_validation import MIN_TEXT_HASH_KEY as MIN_TEXT_HASH_KEY  # re-exported
from streams.config_validation import (
    spike_events_per_day as spike_events_per_day,  # re-exported: streams/views/spikes.py imports it from here
)


class Settings(BaseSettings):
    """convowatch's configuration. Each field names its environment variable."""

    model_config = SettingsConfigDict(
        env_prefix="CONVOWATCH_",
        frozen=True,
        extra="ignore",
        hide_input_in_errors=True,  # an error must not echo a secret
        allow_inf_nan=False,  # inf passes gt=0 and breaks expiry buckets and timers later
    )

    broker: str = Field(
        "localhost:9092", description="CONVOWATCH_BROKER: Kafka bootstrap servers, host:port[,...]."
    )
    topic_prefix: str = Field(
        "convowatch.",
        description="CONVOWATCH_TOPIC_PREFIX: prefix of every topic convowatch reads or writes.",
    )
    app_id: str = Field("convowatch", description="CONVOWATCH_APP_ID: Faust app id, also the consumer group.")
    role: Literal["all", "join", "aggregate"] = Field(
        "all",
        description="CONVOWATCH_ROLE: what a worker runs: all (join and aggregation in one process), join "
        "(parse, join, defects, escalations: the latency-critical path) or aggregate (the detector views, "
        "reading the join's observations). Split roles run as separate processes that scale apart; the "
        "aggregate role's consumer group is <app id>-aggregate.",
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description="CONVOWATCH_EVENT_LOOP: the worker's event loop: uvloop (libuv; cheaper scheduling and "
        "socket I/O per event) or asyncio (the standard library's).",
    )
    data_dir: Path | None = Field(
        None,
        description="CONVOWATCH_DATA_DIR: the Faust app's data directory. Tables live in memory and in "
        "their changelogs, so nothing durable is written there; unset: <temp dir>/convowatch/<app id>.",
    )
    partitions: int = Field(
        4, ge=1, description="CONVOWATCH_PARTITIONS: partitions of topics convowatch creates."
    )
    replication_factor: int = Field(
        -1,
        ge=-1,
        description="CONVOWATCH_REPLICATION_FACTOR: replicas of the topics convowatch creates; -1: the "
        "broker's default.replication.factor.",
    )
    batch_max: int = Field(
        1_000, ge=1, description="CONVOWATCH_BATCH_MAX: most records an agent processes as one batch."
    )
    batch_within_seconds: float = Field(
        0.02,
        gt=0,
        description="CONVOWATCH_BATCH_WITHIN_SECONDS: longest wait to fill a batch. Under a backlog batches "
        "fill to CONVOWATCH_BATCH_MAX anyway; below it this wait is part of every record's latency.",
    )
    fetch_max_wait_seconds: float = Field(
        0.1,
        gt=0,
        le=30,
        description="CONVOWATCH_FETCH_MAX_WAIT_SECONDS: longest the broker holds a fetch it cannot fill. "
        "Faust's own is 1.5 s; records on busy partitions waited behind a held fetch for quiet ones.",
    )
    commit_interval_seconds: float = Field(
        1.0, gt=0, description="CONVOWATCH_COMMIT_INTERVAL_SECONDS: how often consumed offsets are committed."
    )
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="CONVOWATCH_SECURITY_PROTOCOL: Kafka security protocol."
    )
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        None,
        description="CONVOWATCH_SASL_MECHANISM: SASL mechanism when the protocol is SASL_* (PLAIN if unset).",
    )
    sasl_username: str | None = Field(None, description="CONVOWATCH_SASL_USERNAME: SASL user.")
    sasl_password: SecretStr | None = Field(
        None,
        validate_default=True,
        description="CONVOWATCH_SASL_PASSWORD: SASL password (secret); required, with the user, when the "
        "protocol is SASL_*.",
    )
    ssl_cafile: Path | None = Field(
        None, description="CONVOWATCH_SSL_CAFILE: CA bundle to verify the broker."
    )
    join_ttl_seconds: float = Field(
        7 * 24 * 3600, ge=1, description="CONVOWATCH_JOIN_TTL_SECONDS: event-time life of an unjoined turn."
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
    max_future_seconds: float = Field(
        86_400.0,
        ge=0,
        description="CONVOWATCH_MAX_FUTURE_SECONDS: records whose event time is further ahead of the clock "
        "than this are dead-lettered (reason future_timestamp): one record from a producer with a wrong "
        "clock would move event-time windows, expiry and watermarks into the future. 0 turns this check and "
        "CONVOWATCH_CLOCK_SKEW_SECONDS's off.",
    )
    clock_skew_seconds: float = Field(
        60.0,
        ge=0,
        description="CONVOWATCH_CLOCK_SKEW_SECONDS: how far ahead of this worker's clock an event time is "
        "taken as it is (producers' clocks differ a little). A record further ahead, up to "
        "CONVOWATCH_MAX_FUTURE_SECONDS, is processed at the worker's clock plus this, and counted in "
        "convowatch_records_clock_ahead_total: its own time would close traffic minutes and expire windows "
        "early. Keep it under 120 s, the lateness a traffic minute waits for.",
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
    spike_judges: int = Field(
        1,
        ge=1,
        le=1000,
        description="CONVOWATCH_SPIKE_JUDGES: judges scoring each judged turn. Each judge is a source with "
        "detectors of its own, so each adds its turns to the traffic the budget is shared over.",
    )
    spike_labelled_turns_per_day: float = Field(
        100_000.0,
        ge=0,
        description="CONVOWATCH_SPIKE_LABELLED_TURNS_PER_DAY: human-labelled turns a day the human source's "
        "detectors take, its traffic (default: 10% of the judged turns): labels without an inclusion "
        "probability, and a uniform CONVOWATCH_REVIEW_MIN_PROBABILITY of the judged turns of those with one "
        "(streams/views/uniform_labels.py).",
    )
    spike_turns_per_day: float = Field(
        1_000_000.0,
        gt=0,
        description="CONVOWATCH_SPIKE_TURNS_PER_DAY: judged turns a day the budget is stated for.",
    )
    drift_false_alarms_per_day: float = Field(
        1.0,
        gt=0,
        description="CONVOWATCH_DRIFT_FALSE_ALARMS_PER_DAY: false judge_drift alarms tolerated per day, all "
        "judges, dimensions and journeys together, at the pairs below.",
    )
    drift_pairs_per_day: float = Field(
        700_000.0,
        gt=0,
        description="CONVOWATCH_DRIFT_PAIRS_PER_DAY: judge/human label pairs a day (one per judge and "
        "dimension of a human-labelled turn the detectors take, as CONVOWATCH_SPIKE_LABELLED_TURNS_PER_DAY "
        "counts them) the budget is stated for: 1,000,000 judged turns a day, 10% labelled, 7 dimensions.",
    )
    alertmanager_url: SecretStr | None = Field(
        None,
        description="CONVOWATCH_ALERTMANAGER_URL: Alertmanager base URL; escalations become alerts when set "
        "(a secret: it may carry basic-auth credentials).",
    )
    alert_resend_seconds: float = Field(
        60.0, ge=1, description="CONVOWATCH_ALERT_RESEND_SECONDS: how often active alerts are re-sent."
    )
    alert_expire_seconds: float = Field(
        21_600.0,
        ge=1,
        description="CONVOWATCH_ALERT_EXPIRE_SECONDS: an alert with no update resolves after this long.",
    )
    text_redaction: Literal["keep", "hash", "drop"] = Field(
        "drop", description="CONVOWATCH_TEXT_REDACTION: chat text in published records: keep, hash or drop."
    )
    text_hash_key: SecretStr | None = Field(
        None,
        validate_default=True,
        description="CONVOWATCH_TEXT_HASH_KEY: secret key of the HMAC-SHA256 that replaces chat text when "
        "CONVOWATCH_TEXT_REDACTION is hash (required then; at least 16 characters). Equal texts get equal "
        "hashes under one key; without the key, guessing short texts is no use.",
    )
    session_timeout_seconds: float = Field(
        60.0,
        ge=6,
        le=90,
        description="CONVOWATCH_SESSION_TIMEOUT_SECONDS: a worker silent this long (crashed) leaves the "
        "consumer group and its partitions move to the others; 6 to 90 (the broker's default lower bound, "
        "and Faust's request timeout, which it must not exceed).",
    )
    heartbeat_interval_seconds: float = Field(
        3.0,
        gt=0,
        description="CONVOWATCH_HEARTBEAT_INTERVAL_SECONDS: consumer group heartbeats; at most a third "
        "of the session timeout.",
    )
    producer_timeout_seconds: float = Field(
        1200.0,
        gt=0,
        description="CONVOWATCH_PRODUCER_TIMEOUT_SECONDS: how long a batch's outputs and state may wait for "
        "the broker before the batch fails (Faust's producer request timeout). A worker whose batch fails "
        "during an outage waits for the broker's return, then exits 70 and replays the batch at restart.",
    )
    shutdown_timeout_seconds: float = Field(
        20.0,
        gt=0,
        description="CONVOWATCH_SHUTDOWN_TIMEOUT_SECONDS: a stopping worker (SIGTERM or SIGINT) that has not "
        "finished its batch, flushed and committed within this long exits 75 anyway (the broker down, say); "
        "what it had not committed is read again at the next start. Keep it under the orchestrator's grace "
        "period (Kubernetes: 30 s).",
    )
    broker_probe_interval_seconds: float = Field(
        2.0,
        gt=0,
        description="CONVOWATCH_BROKER_PROBE_INTERVAL_SECONDS: how often the worker checks that the broker "
        "answers (convowatch_broker_connected, convowatch_broker_outages_total).",
    )
    broker_wait_seconds: float = Field(
        900.0,
        gt=0,
        description="CONVOWATCH_BROKER_WAIT_SECONDS: how long a worker started while the broker does not "
        "answer waits for it (alive, not ready) before it exits 1. Keep it above 10 minutes on Kubernetes, "
        "which resets a container's restart back-off once it has run that long: shorter waits that end in "
        "exits grow the back-off to 5 minutes. A broker that refuses the worker (authentication, TLS) is not "
        "waited for.",
    )
    lag_interval_seconds: float = Field(
        15.0,
        gt=0,
        description="CONVOWATCH_LAG_INTERVAL_SECONDS: how often the worker measures its consumer group's lag "
        "(convowatch_consumer_lag).",
    )
    health_stall_seconds: float = Field(
        60.0,
        gt=0,
        description="CONVOWATCH_HEALTH_STALL_SECONDS: /healthz fails once the worker's event loop has not "
        "beaten for this long (an orchestrator then restarts it).",
    )
    golden: Path | None = Field(
        None,
        description="CONVOWATCH_GOLDEN: golden set, JSONL of {turn_id, labels: {dimension: label}}; vendors, "
        "annotators and judges are scored on these turns (validated at start).",
    )
    vendor_sla: Path | None = Field(
        None,
        description="CONVOWATCH_VENDOR_SLA: labelling SLAs YAML (window, default targets, per-vendor "
        "overrides; vendor_sla escalations); the built-in streams/vendor_sla.yaml when unset (validated at "
        "start).",
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
        ge=1,
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
    version_min_labels: int = Field(
        30,
        ge=2,
        description="CONVOWATCH_VERSION_MIN_LABELS: human-labelled turns per version (per judge, journey and "
        "dimension) before the human-calibrated version comparison tests.",
    )
    conversation_idle_seconds: float = Field(
        1800.0,
        ge=1,
        description="CONVOWATCH_CONVERSATION_IDLE_SECONDS: a conversation without turns or signals for this "
        "much event time is closed (containment decided).",
    )
    recontact_window_seconds: float = Field(
        259_200.0,
        ge=1,
        description="CONVOWATCH_RECONTACT_WINDOW_SECONDS: a closed conversation with no recontact within "
        "this much event time is resolved at first contact; its state is then dropped.",
    )
    conversations_max: int = Field(
        1_000_000,
        ge=10,
        description="CONVOWATCH_CONVERSATIONS_MAX: cap on conversations held for business outcomes per "
        "worker; beyond it the oldest are dropped undecided (convowatch_conversation_evictions_total).",
    )
    perceptual_reference_size: int = Field(
        500,
        ge=10,
        description="CONVOWATCH_PERCEPTUAL_REFERENCE_SIZE: first perceptual scores of each judge, modality, "
        "model version and score name kept as the reference distribution (perceptual_drift).",
    )
    perceptual_window_size: int = Field(
        200,
        ge=10,
        description="CONVOWATCH_PERCEPTUAL_WINDOW_SIZE: latest scores compared with the reference "
        "(two-sample Kolmogorov-Smirnov test).",
    )
    perceptual_check_every: int = Field(
        50, ge=1, description="CONVOWATCH_PERCEPTUAL_CHECK_EVERY: scores between two tests (<= the window)."
    )
    perceptual_false_alarms: float = Field(
        0.01,
        gt=0,
        lt=1,
        description="CONVOWATCH_PERCEPTUAL_FALSE_ALARMS: chance of a false perceptual_drift alarm per score "
        "stream within CONVOWATCH_PERCEPTUAL_HORIZON in-control scores (Bonferroni over its tests).",
    )
    perceptual_horizon: int = Field(
        100_000, ge=1, description="CONVOWATCH_PERCEPTUAL_HORIZON: scores the false-alarm budget is for."
    )
    review_budget_per_hour: float = Field(
        60.0,
        gt=0,
        description="CONVOWATCH_REVIEW_BUDGET_PER_HOUR: human review requests per hour of event time "
        "(convowatch.review.requests), high-risk turns included; segment floors come on top.",
    )
    review_segment_floor_per_hour: float = Field(
        0.0,
        ge=0,
        description="CONVOWATCH_REVIEW_SEGMENT_FLOOR_PER_HOUR: review requests per hour each journey gets at "
        "least (while it has that many judged turns).",
    )
    review_min_probability: float = Field(
        0.001,
        ge=MIN_INCLUSION_PROBABILITY,
        le=1,
        description="CONVOWATCH_REVIEW_MIN_PROBABILITY: every judged turn's least chance of review (its "
        "label then weighs at most 1/this in the calibrated defect rate).",
    )
    review_seed: int = Field(
        0, description="CONVOWATCH_REVIEW_SEED: seed of the review draws (a hash of seed and turn_id)."
    )
    review_queues: dict[str, str] = Field(
        default_factory=dict,
        description='CONVOWATCH_REVIEW_QUEUES: labelling queue (or vendor) per journey, JSON {"journey": '
        '"queue"}; other journeys go to the default queue.',
    )
    review_default_queue: str = Field(
        "default", min_length=1, description="CONVOWATCH_REVIEW_DEFAULT_QUEUE: queue of unmapped journeys."
    )

    # checks beyond each field's own bounds (streams/config_validation.py); they run in this order, each after
    # the field's own, and may read the fields declared before theirs (ValidationInfo.data)
    _empty_path_unset = field_validator(*check.OPTIONAL_PATHS, mode="before")(check.empty_path_unset)
    _bootstrap_servers = field_validator("broker")(check.bootstrap_servers)
    _legal_topic_prefix = field_validator("topic_prefix")(check.legal_topic_prefix)
    _legal_app_id = field_validator("app_id")(check.legal_app_id)
    _replicas_or_broker_default = field_validator("replication_factor")(check.replicas_or_broker_default)
    _heartbeat_within_session = field_validator("heartbeat_interval_seconds")(check.heartbeat_within_session)
    _sasl_needs_credentials = field_validator("sasl_password")(check.sasl_needs_credentials)
    _readable_cafile = field_validator("ssl_cafile")(check.readable_cafile)
    _integers_fit_64_bits = field_validator("*")(check.integers_fit_64_bits)
    _spike_budget_in_range = field_validator("spike_turns_per_day")(check.spike_budget_in_range)
    _drift_budget_in_range = field_validator("drift_pairs_per_day")(check.drift_budget_in_range)
    _perceptual_consistent = field_validator("perceptual_horizon")(check.perceptual_consistent)
    _hash_needs_key = field_validator("text_hash_key")(check.hash_needs_key)
    _alertmanager_url = field_validator("alertmanager_url")(check.alertmanager_url)
    _agreement_windows = field_validator("agreement_windows")(check.agreement_windows)
    _duration_in_range = field_validator("*")(check.duration_in_range)  # of the fields named *_seconds

    def text_hash_bytes(self) -> bytes | None:
        """The text hash key as bytes (None when unset)."""
        return None if self.text_hash_key is None else self.text_hash_key.get_secret_value().encode()

    def topic(self, name: str) -> str:
        """The full name of a logical topic, e.g. ``topic("defects") == "convowatch.defects"``."""
        return f"{self.topic_prefix}{name}"
