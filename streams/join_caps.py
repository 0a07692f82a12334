"""What one turn's join entry may hold: caps on its raters, dimensions and labels, which keep the entry, and
the defects and observations that carry its labels, within a changelog record."""

from __future__ import annotations

import orjson

from schemas import HumanLabel, JudgeVerdict
from schemas.exceptions import InvalidRecord
from streams.emit import Entry
from streams.state import MAX_WRITE_BYTES

#: Most judges, and most annotators, whose labels one turn keeps (each adds ~180 bytes to its entry, and an
#: annotator's dimension sent in a later record ~25 more: when it was labelled).
MAX_RATERS_PER_TURN = 100
#: Most dimensions one judge or annotator labels on one turn (one record carries at most this many too).
MAX_DIMENSIONS_PER_RATER = 64
#: Most labels one turn keeps, all its judges' and annotators' dimensions together: within the two caps
#: above a turn could keep 12,800 (a 2.4 MB entry, over a changelog record, which the Kafka table then kept
#: in memory only, losing the turn's later records on a restart). Normal traffic stays within it: 100
#: annotators on the 7 quality dimensions with a judge on 64, or 10 judges on 64 dimensions each. At the cap,
#: with 100 judges (16 scores each) and 100 annotators, every name 64 characters, a turn id of 256 control
#: characters (1,536 bytes of JSON), both texts kept, and labels failing quality ones (a defect each) or
#: custom ones of 64 characters, the largest measured: an entry of 508 KB, 709 KB written with the outputs
#: one record made it keep (``out``), no output or observation over 120 KB (tests/streams/test_join_caps.py).
MAX_LABELS_PER_TURN = 800
#: Most bytes of labels one turn keeps, the JSON of all its raters' ``labels`` together: room for 800 labels
#: of 64 characters on dimensions of 64 (at most 107,400 bytes), the cap above. A label is at most 64
#: characters, but its JSON up to 386 bytes (escaped control characters): 800 of those made a 1.09 MB write.
#: Normal labels take a few dozen bytes.
MAX_LABEL_BYTES_PER_TURN = 110_000


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
        size = sum(len(orjson.dumps(labels)) for labels in held_by_all)
        more = len(orjson.dumps({v.dimension: v.label for v in event.verdicts if v.dimension in new}))
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
