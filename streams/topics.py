"""Topic names: every logical topic under the configured prefix; and the consumer groups."""

from __future__ import annotations

from schemas import Stream
from streams.config import Settings
from streams.taxonomy import load_taxonomy

INPUTS = {
    Stream.CHAT_TURNS: "chat.turns",
    Stream.JUDGE_VERDICTS: "judge.verdicts",
    Stream.HUMAN_LABELS: "human.labels",
    Stream.SIGNALS: "signals",  # optional business events, keyed by conversation_id (an empty topic is free)
}
OUTPUTS = {
    "defects": "defects",
    "escalations": "escalations",
    "deadletter": "deadletter",
    "divergences": "divergences",
    "review_requests": "review.requests",
}
INTERNAL = {
    "observations": "internal.observations",
    # turns sent for human review, keyed by turn_id like the inputs: the join keeps them past its size cap
    "review_keep": "internal.review.keep",
}

#: The Faust tables, each with a changelog topic ``<app id>-<table>-changelog``
TABLES = ("pending", "published", "aggregates")


def input_topics(settings: Settings) -> dict[Stream, str]:
    return {stream: settings.topic(name) for stream, name in INPUTS.items()}


def output_topics(settings: Settings) -> dict[str, str]:
    """Logical name -> topic, including one ``defects.<category>`` topic per taxonomy category."""
    names = dict(OUTPUTS | INTERNAL)
    if settings.defect_category_topics:
        for category in load_taxonomy(settings.taxonomy).categories:
            names[f"defects.{category}"] = f"defects.{category}"
    return {logical: settings.topic(name) for logical, name in names.items()}


def consumer_group(settings: Settings) -> str:
    """The consumer group (Faust's app id) of a worker of ``settings.role``: one per role, so that the join
    and the aggregation stage scale and fail independently; the combined role's is the join's."""
    return settings.app_id if settings.role != "aggregate" else f"{settings.app_id}-aggregate"


def changelog_topics(settings: Settings) -> list[str]:
    """The tables' changelogs (Faust's names; the aggregation role keeps the combined role's)."""
    return [f"{settings.app_id}-{table}-changelog" for table in TABLES]


def partition_count_topic(settings: Settings) -> str:
    """The compacted topic of one partition recording the partition count the tables' state was made with
    (:mod:`streams.partition_marker`); named after the app id, as the changelogs are."""
    return f"{settings.app_id}-partition-count"


def copartitioned_topics(settings: Settings) -> list[str]:
    """Topics whose partition counts must equal ``CONVOWATCH_PARTITIONS``: the inputs (a turn's events meet
    by partition) and the review keeps the join reads with them, the observations and the tables' changelogs
    (state goes to its input's partition)."""
    internal = [settings.topic(name) for name in INTERNAL.values()]
    return [*input_topics(settings).values(), *internal, *changelog_topics(settings)]


def all_topics(settings: Settings) -> list[str]:
    """Every topic convowatch creates: inputs, outputs, internal topics, the tables' changelogs and the
    state's partition count."""
    topics = [
        *input_topics(settings).values(),
        *output_topics(settings).values(),
        *changelog_topics(settings),
    ]
    return [*topics, partition_count_topic(settings)]
