"""A turn's join entry: what it holds, and how a chat turn, a judge's verdict or a human label adds to it.

:class:`~streams.join.TurnJoiner` keeps one entry per ``turn_id`` (JSON-native, stored as JSON bytes on
Kafka), makes it with :func:`new_entry` and adds each record with :func:`add_turn`, :func:`add_judge` or
:func:`add_human`, which say whether the record changed it (something new to publish). A verdict or label
seen twice for the same turn, rater and dimension counts once: the first label stands, outputs were
published on it. Within one record a dimension comes once (the parser keeps a fail over a pass:
:func:`schemas.common.one_per_dimension`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from schemas import ChatTurn, HumanLabel, JudgeVerdict
from schemas.judge_verdict import MAX_SCORES
from streams.emit import Entry
from streams.join_outputs import first_sampled
from streams.metrics import Metrics


def new_entry(partition: int | None, ts: float) -> Entry:
    """A turn's entry, made by its first record (event time ``ts``). ``p`` and ``last`` come first: the
    start of its JSON is read without decoding the rest (:func:`~streams.emit.entry_head`)."""
    return {
        "p": partition,
        "last": ts,
        "turn": None,
        "judge": {},
        "human": {},
        "paired": [],
        "observed": [],
        "defects": [],
        "esc": None,
    }


def add_turn(
    entry: Entry,
    turn: ChatTurn,
    metrics: Metrics,
    high_risk_topics: frozenset[str],
    context: Callable[[ChatTurn], dict[str, Any]],
) -> bool:
    """The chat turn: its segment, its high-risk topics and what ``context`` keeps of it."""
    if entry["turn"] is not None:
        metrics.duplicates.labels("chat_turns").inc()
        return False
    entry["turn"] = {
        "ts": turn.ts.timestamp(),
        "segment": {
            "journey": turn.journey,
            "intent": turn.intent,
            "model_version": turn.model_version,
            "channel": turn.channel,
            "modality": turn.modality,
        },
        "risk": sorted({t.casefold() for t in turn.risk_topics} & high_risk_topics),
        "ctx": context(turn),
    }
    return True


def add_judge(entry: Entry, verdict: JudgeVerdict, metrics: Metrics) -> bool:
    """A judge's verdict: its labels, confidences and perceptual scores, under its ``judge_id``, with the
    ``judge_version`` (``v``) of its first verdict on the turn (the version its pairs are counted under; an
    entry written before the join kept it has none: version unknown)."""
    record = entry["judge"].get(verdict.judge_id)
    if record is None:
        record = {"ts": verdict.ts.timestamp(), "v": verdict.judge_version, "labels": {}}
        entry["judge"][verdict.judge_id] = record
    changed = _merge(record["labels"], verdict.verdicts, "judge_verdicts", metrics)
    for v in verdict.verdicts:  # the judge's confidence, for calibration against humans
        if v.confidence is not None and v.dimension not in record.get("conf", {}):
            record.setdefault("conf", {})[v.dimension] = v.confidence
    for name, score in verdict.scores.items():  # perceptual scores: the first value per name counts
        scores = record.setdefault("scores", {})
        if name not in scores and len(scores) < MAX_SCORES:
            scores[name] = score
            changed = True
    return changed


def add_human(entry: Entry, label: HumanLabel, metrics: Metrics) -> bool:
    """A human label: its labels under its ``annotator_id``, with its vendor, whether it is on a gold item,
    its inclusion probability and when each dimension was labelled."""
    ts = label.ts.timestamp()
    # each dimension's first sampled label, as labels come (the pairs' human label)
    first = entry.get("first")
    if first is None:
        first = entry["first"] = first_sampled(entry)
    record = entry["human"].get(label.annotator_id)
    if record is None:
        record = {"ts": ts, "vendor": label.vendor_id, "gold": label.is_gold, "labels": {}}
        entry["human"][label.annotator_id] = record
    elif any(v.dimension not in record["labels"] for v in label.verdicts):
        record["lts"] = ts  # a later label of this annotator, with new dimensions: when it was made
        # and when each new dimension was labelled (the others: at ``ts``): a ``raters`` item it
        # completes is timed then, not at the annotator's first label
        times = record.setdefault("dts", {})
        for v in label.verdicts:
            if v.dimension not in record["labels"]:
                times.setdefault(v.dimension, ts)
    if label.inclusion_probability is not None:  # from the review request: weights the label by 1/p
        record.setdefault("pi", label.inclusion_probability)
    if not record["gold"]:
        for v in label.verdicts:
            first.setdefault(v.dimension, label.annotator_id)
    return _merge(record["labels"], label.verdicts, "human_labels", metrics)


def _merge(labels: dict[str, str], verdicts: list[Any], stream: str, metrics: Metrics) -> bool:
    changed = False
    for v in verdicts:
        if v.dimension in labels:  # the first label stands: outputs were published on it
            same = labels[v.dimension] == v.label
            (metrics.duplicates if same else metrics.label_conflicts).labels(stream).inc()
        else:
            labels[v.dimension] = v.label
            changed = True
    return changed
