"""What one turn's join entry may hold: caps on its raters, dimensions and labels, which keep the entry, and
the defects and observations that carry its labels, within a changelog record."""

from __future__ import annotations

import orjson

from schemas import HumanLabel, JudgeVerdict
from schemas.exceptions import InvalidRecord
from streams.emit import Emit, Entry
from streams.state import MAX_WRITE_BYTES

#: Most judges, and most annotators, whose labels one turn keeps (each adds ~180 bytes to its entry, a judge
#: its version too, and an annotator's dimension sent in a later record ~25 more: when it was labelled).
MAX_RATERS_PER_TURN = 100
#: Most dimensions one judge or annotator labels on one turn (one record carries at most this many too).
MAX_DIMENSIONS_PER_RATER = 64
#: Most labels one turn keeps, all its judges' and annotators' dimensions together: within the two caps
#: above a turn could keep 12,800 (a 2.4 MB entry, over a changelog record, which the Kafka table then kept
#: in memory only, losing the turn's later records on a restart). Normal traffic stays within it: 100
#: annotators on the 7 quality dimensions with a judge on 64, or 10 judges on 64 dimensions each. A record
#: past it is refused whole, a judge's safety fail too (its defect and escalation with it): the quality
#: dimensions counted apart would let a turn at every cap outgrow a record. The largest entry measured at
#: the caps is in tests/streams/test_join_caps.py (one record a batch; several records of one turn in one
#: batch keep all their outputs in it until they are published, and can outgrow a record).
MAX_LABELS_PER_TURN = 800
#: Most bytes of labels one turn keeps, the JSON of all its raters' ``labels`` together: room for 800 labels
#: of 64 characters on dimensions of 64 (at most 107,400 bytes), the cap above. A label is at most 64
#: characters, but its JSON up to 386 bytes (escaped control characters): 800 of those made a 1.09 MB write.
#: Normal labels take a few dozen bytes.
MAX_LABEL_BYTES_PER_TURN = 110_000
#: Labels that always fit :data:`MAX_LABEL_BYTES_PER_TURN`: one takes at most 454 bytes of JSON (a dimension
#: of 64 plain characters, a label of 64 escaped ones, quotes, colon and comma), and 2 more if it is its
#: rater's only one (the braces).
_ALWAYS_FIT = MAX_LABEL_BYTES_PER_TURN // 456


class RefusedRecord(InvalidRecord):
    """A record :func:`check_caps` refused, dead-lettered with its ``reason`` and ``detail``, and what it
    publishes all the same: the gold observations of its labels on a golden turn
    (:func:`~streams.join_gold.refused_gold_observations`), numbered from its source position."""

    def __init__(self, refused: InvalidRecord, emits: list[Emit]) -> None:
        super().__init__(refused.reason, refused.detail)
        self.emits = emits


def check_caps(entry: Entry, event: JudgeVerdict | HumanLabel) -> None:
    """Refuse a new judge or annotator on a turn that has :data:`MAX_RATERS_PER_TURN` of them already, new
    dimensions past :data:`MAX_DIMENSIONS_PER_RATER` from one of them, and new labels past
    :data:`MAX_LABELS_PER_TURN` (or :data:`MAX_LABEL_BYTES_PER_TURN`) on the turn: a labelling tool sending
    one turn id for every turn (``"undefined"``), or a judge sending new dimensions for one turn again and
    again, would grow the entry, and the defects and observations that carry its labels, past what a record
    holds."""
    if isinstance(event, JudgeVerdict):
        raters, rater, kind = entry["judge"], event.judge_id, "judges"
    else:
        raters, rater, kind = entry["human"], event.annotator_id, "annotators"
    record = raters.get(rater)
    if record is None:
        if len(raters) >= MAX_RATERS_PER_TURN:
            raise InvalidRecord(
                "too_many_raters",
                f"turn {event.turn_id!r} already has {len(raters)} {kind}' labels, the most kept",
            )
        held: dict[str, str] = {}
    else:
        held = record["labels"]
    new = {v.dimension for v in event.verdicts if v.dimension not in held}
    if len(held) + len(new) > MAX_DIMENSIONS_PER_RATER:
        raise InvalidRecord(
            "too_many_dimensions",
            f"{rater!r} already labelled {len(held)} dimensions of turn {event.turn_id!r}; {len(new)} more "
            f"would pass the {MAX_DIMENSIONS_PER_RATER} kept",
        )
    if new:
        held_by_all = [r["labels"] for side in ("judge", "human") for r in entry[side].values()]
        kept = sum(map(len, held_by_all))
        if kept + len(new) > MAX_LABELS_PER_TURN:
            raise InvalidRecord(
                "too_many_labels",
                f"turn {event.turn_id!r} already keeps {kept} labels; {len(new)} more from {rater!r} would "
                f"pass the {MAX_LABELS_PER_TURN} kept",
            )
        if kept + len(new) <= _ALWAYS_FIT:  # cannot pass the bytes below: no need to count them
            return
        size = sum(len(orjson.dumps(labels)) for labels in held_by_all)
        labels: dict[str, str] = {}
        for v in event.verdicts:  # as the join keeps them: the first label of a dimension stands
            if v.dimension in new:
                labels.setdefault(v.dimension, v.label)
        more = len(orjson.dumps(labels))
        if size + more > MAX_LABEL_BYTES_PER_TURN:
            raise InvalidRecord(
                "too_many_labels",
                f"turn {event.turn_id!r} already keeps {size} bytes of labels; {len(new)} more from "
                f"{rater!r} ({more} bytes) would pass the {MAX_LABEL_BYTES_PER_TURN} kept",
            )


def fits_a_record(entry: Entry) -> bool:
    """Whether ``entry`` fits a changelog record. An orphan evicted with hundreds of defects may not (100
    annotators failing every dimension): deleted without its final state, as before 2026-11-26, rather than
    refused by the table as an oversized state and alerted on."""
    return len(orjson.dumps(entry)) <= MAX_WRITE_BYTES
