"""Labels and verdicts on golden-set turns (``CONVOWATCH_GOLDEN``), scored as the join reads them.

A ``gold_label`` observation (shard ``humans``) carries an annotator's labels of a golden turn's truth
dimensions, a ``gold_verdict`` (shard: the judge) a judge's; :mod:`streams.views.gold` and the vendor
scorecards (:mod:`streams.views.vendors`) score them. Neither needs the chat turn, so a label is scored
whether the join holds its turn or not: one that came before the turn, one after the TTL or the size cap
evicted it, one on a curated honeypot whose turn was never in the stream. (Scored from ``labelled`` and
``judged``, as until 2026-11-26, only labels that met their turn were, while golden items are reused long
after their turns.)

Each rater record of a golden turn's entry counts, under ``g``, the labels scored (a rater's labels only
grow, in the order they came), so each dimension is scored once, at the record that brought it, whatever
the arrival order; a record read again adds nothing, and a replay publishes the outputs kept of the first
reading, with their source positions (:mod:`streams.kept_outputs`). A record of the turn delivered again
after its entry was evicted makes an entry anew, and its labels are scored again there, as its defects are
published again.

A record the join's caps refuse (:mod:`streams.join_caps`: a honeypot served to more annotators than a turn
keeps) is dead-lettered, and its labels of the golden turn's truth that its rater's record does not hold are
scored all the same, from the record itself (:func:`refused_gold_observations`), at its source position: a
replay, refused again, is skipped by the aggregates. The entry is left as it is, so nothing remembers them
scored: the same record sent again (a duplicate at another position) is scored again.
"""

from __future__ import annotations

import itertools
from typing import Any

from schemas import HumanLabel, JudgeVerdict
from streams.emit import SEP, Emit, Entry


def gold_observations(turn_id: str, entry: Entry, truth: dict[str, str] | None) -> list[Emit]:
    """The ``gold_verdict`` and ``gold_label`` observations of the labels ``entry`` holds unscored on
    ``truth``'s dimensions (None: not a golden turn). Each carries ``ts``: the turn's event time, or
    without the turn, the rater's (as a defect's); a ``gold_label`` also ``label_ts``, when the label was
    made (as ``labelled``'s), where the vendor scorecard counts it. Called before
    :func:`~streams.join_observations.observations` marks the raters observed."""
    if not truth:
        return []
    turn = entry["turn"]
    observed = entry.get("observed") or ()
    emits = []
    for judge_id, record in entry["judge"].items():
        labels = _unscored(record, f"j{SEP}{judge_id}" in observed, truth)[1]
        if labels:
            value = {
                "kind": "gold_verdict",
                "turn_id": turn_id,
                "judge_id": judge_id,
                "labels": labels,
                "ts": turn["ts"] if turn else record["ts"],
            }
            emits.append(Emit("observations", judge_id, value))
    for annotator, record in entry["human"].items():
        scored, labels = _unscored(record, f"h{SEP}{annotator}" in observed, truth)
        if labels:
            value = {
                "kind": "gold_label",
                "turn_id": turn_id,
                "annotator_id": annotator,
                "vendor_id": record["vendor"],
                "labels": labels,
                "ts": turn["ts"] if turn else record["ts"],
                # a later record of the annotator, with new dimensions: its time (``lts``)
                "label_ts": record.get("lts", record["ts"]) if scored else record["ts"],
            }
            emits.append(Emit("observations", "humans", value))
    return emits


def refused_gold_observations(
    turn_id: str, entry: Entry, event: JudgeVerdict | HumanLabel, truth: dict[str, str] | None
) -> list[Emit]:
    """The gold observation of ``event``, a record the caps refuse on ``entry`` (``truth``: None, not a
    golden turn): of its labels on ``truth``'s dimensions that its rater's record in ``entry`` does not
    hold, as :func:`gold_observations` would make it had the join kept the record. ``entry`` is unchanged."""
    if not truth:
        return []
    ts = event.ts.timestamp()
    record: dict[str, Any]
    if isinstance(event, JudgeVerdict):
        side, rater, record = "judge", event.judge_id, {"ts": ts, "labels": {}}
    else:
        side, rater = "human", event.annotator_id
        record = {"ts": ts, "vendor": event.vendor_id, "labels": {}}
    held = entry[side].get(rater)
    if held is not None:  # its labels were scored (or were before ``g``): only the record's new ones are now
        record = {**held, "labels": dict(held["labels"]), "g": len(held["labels"]), "lts": ts}
    for v in event.verdicts:  # as the join keeps them: the first label of a dimension stands
        record["labels"].setdefault(v.dimension, v.label)
    alone: Entry = {"turn": entry["turn"], "judge": {}, "human": {}}
    alone[side][rater] = record
    return gold_observations(turn_id, alone, truth)


def _unscored(record: dict[str, Any], observed: bool, truth: dict[str, str]) -> tuple[int, dict[str, str]]:
    """How many of a rater's labels were scored before, and those scored now on ``truth``'s dimensions
    (marking them all scored). A record of code before ``g`` had the labels it was ``observed`` with
    (``n``: all, before the counts) scored from ``labelled`` or ``judged``, the others not."""
    labels = record["labels"]
    scored = record.get("g")
    if scored is None:
        scored = record.get("n", len(labels)) if observed else 0
    record["g"] = len(labels)
    return scored, {d: label for d, label in itertools.islice(labels.items(), scored, None) if d in truth}
