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
"""

from __future__ import annotations

import itertools
from typing import Any

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
