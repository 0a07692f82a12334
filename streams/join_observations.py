"""What a joined turn tells the aggregation stage: its observations (``streams.views`` consume them).

Once per turn (``turn``, ``contact``), per judge and annotator meeting the turn (``judged``, ``labelled``;
again with a rater's new dimensions when it sends a turn's dimensions in several records), per turn with
its first verdict (``reviewable``; once more, an ``update``, if a later verdict makes the turn a high-risk
failure) and per dimension labelled by several annotators (``raters``; again, replacing it, with each
later annotator's label). The ``observed`` list of a join entry, and each rater record's counts, make each
happen once whatever the arrival order and however often a record is delivered.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

from schemas.common import QUALITY_DIMENSIONS
from streams.emit import SEP, Emit, Entry

#: Human labels on one dimension of one turn that make an inter-annotator item (emitted then, and again
#: with each later annotator's label, up to MAX_ITEM_RATERS).
MIN_RATERS = 2
#: The annotators an inter-annotator item counts: those it was published with, then others in the order they
#: came to the turn (not necessarily the order they labelled its dimension). Consensus labelling takes
#: a few; a honeypot served to every annotator can have a hundred, and each label published again all the
#: item's labels and the version replaced: the item's versions cost the aggregation the cube of its
#: annotators (5 s of CPU for 100 on 8 dimensions), and the join entry the square while a batch keeps them.
MAX_ITEM_RATERS = 10


def observations(turn_id: str, entry: Entry, judged_high_risk_fails: Sequence[str]) -> list[Emit]:
    """Once per turn (``turn``), judge (``judged``) and annotator (``labelled``) meeting the turn, and
    once per turn with its first verdict (``reviewable``, for review sampling), again (an ``update``) when a
    later verdict makes it a high-risk failure: high-risk turns are always requested, and a judge prompted
    per dimension, or a second judge, may fail ``safety`` only then.

    ``judged_high_risk_fails``: the dimensions on which the judges fail the turn as high-risk
    (:func:`streams.policy.judged_high_risk_fails`), as the join decided them with the turn's escalation.
    The observations carry the decision, so that no view decides it again: ``reviewable`` as
    ``high_risk_fails`` (the sampler requests such a turn with probability 1), ``labelled`` as
    ``effective_inclusion_probability`` (1 then, as the turn's pairs weigh, else the ``pi`` its label
    copied, None if it copied none)."""
    judged_high_risk = bool(judged_high_risk_fails)
    turn = entry["turn"]
    ctx = turn["ctx"]
    segment = turn["segment"]
    common = {
        "turn_id": turn_id,
        "ts": turn["ts"],
        "segment": segment,
        "risk": turn["risk"],
        "guardrail_flags": ctx.get("guardrail_flags", []),
        "intent_confidence": ctx.get("intent_confidence"),
    }
    emits = []
    observed = entry.setdefault("observed", [])
    judges = entry["judge"]
    if "t" not in observed:  # the turn itself, for volume and latency per journey
        observed.append("t")
        value = {
            "kind": "turn",
            "latency_ms": ctx.get("latency_ms"),
            "outcome": ctx.get("outcome", {}),  # for outcome rates per model version
            **common,
        }
        emits.append(Emit("observations", segment["journey"], value))
    for judge_id, record in judges.items():
        seen = _unseen(observed, f"j{SEP}{judge_id}", record)
        if seen is None:
            continue
        labels = _after(record["labels"], seen[0])
        value = {
            "kind": "judged",
            "judge_id": judge_id,
            "labels": labels,
            "conf": {d: c for d, c in record.get("conf", {}).items() if d in labels},
            "scores": _after(record.get("scores", {}), seen[1]),
            # a human label came first: this judge's turn is labelled (coverage, counted once)
            "covered": _sampled(entry) and _cover(observed, judge_id),
            **common,
        }
        if seen[0]:
            value["update"] = True  # a later verdict of this judge on the turn: its new dimensions
            # whether the judge's earlier observations had a quality dimension (a turn's unit for the
            # version test is its first verdict that does)
            value["quality_before"] = any(
                d in QUALITY_DIMENSIONS for d in itertools.islice(record["labels"], seen[0])
            )
        emits.append(Emit("observations", judge_id, value))
    counted = _counted(entry, observed) if entry["human"] else set()
    for annotator, record in entry["human"].items():
        seen = _unseen(observed, f"h{SEP}{annotator}", record)
        if seen is None:
            continue
        labels = _after(record["labels"], seen[0])
        # the dimensions this label is the turn's first sampled one on (in the order observed): what a
        # per-turn human figure counts
        first = [] if record["gold"] else [dim for dim in labels if dim not in counted]
        counted.update(first)
        value = {
            "kind": "labelled",
            "annotator_id": annotator,
            "vendor_id": record["vendor"],
            "is_gold": record["gold"],
            "first_dimensions": first,
            "labels": labels,
            # an update: the latest label's time (the first observation: the first label's)
            "label_ts": record.get("lts", record["ts"]) if seen[0] else record["ts"],
            "inclusion_probability": record.get("pi"),  # as the label copied it from its review request
            "effective_inclusion_probability": effective_inclusion_probability(
                record.get("pi"), judged_high_risk
            ),
            "judges": {j: dict(r["labels"]) for j, r in judges.items()},
            # the judges whose turn this first label makes labelled (coverage, once per judge)
            "covered": [] if record["gold"] else [j for j in judges if _cover(observed, j)],
            **common,
        }
        if seen[0]:
            value["update"] = True  # a later label of this annotator on the turn: its new dimensions
        emits.append(Emit("observations", "humans", value))  # human labels are few: one shard
    first_decision = bool(judges) and "v" not in observed
    if first_decision or (judged_high_risk and "vl" in observed and "vh" not in observed):
        # one review-sampling decision per turn, once its first verdict is known ("vh": decided as
        # high-risk, "vl": not), and one more if a later verdict makes it high-risk (not for entries of
        # code before "vl", whose first decision may have been high-risk); one shard, because the budget
        # is global (no hotter than the shard of a single judge's ``judged`` observations)
        if first_decision:
            observed.append("v")
        observed.append("vh" if judged_high_risk else "vl")
        value = {
            "kind": "reviewable",
            "judges": {
                j: {"labels": dict(r["labels"]), "conf": dict(r.get("conf", {}))} for j, r in judges.items()
            },
            "user_feedback": ctx.get("outcome", {}).get("user_feedback"),
            "high_risk_fails": list(judged_high_risk_fails),
            **common,
        }
        if not first_decision:
            value["update"] = True
        emits.append(Emit("observations", "review", value))
    if len(entry["human"]) >= MIN_RATERS:
        emits.extend(raters(entry, common))
    if "c" not in observed:  # the turn as a contact of its conversation, for business outcomes
        observed.append("c")
        conversation = ctx["conversation_id"]
        value = {
            "kind": "contact",
            "conversation_id": conversation,
            "turn_id": turn_id,
            "ts": turn["ts"],
            "segment": segment,
            "outcome": ctx.get("outcome", {}),
        }
        emits.append(Emit("observations", conversation, value))
    return emits


def effective_inclusion_probability(pi: float | None, judged_high_risk: bool) -> float | None:
    """A label's inclusion probability given whether the judges fail its turn as high-risk: 1 then (review
    sampling always requests such a turn, again with ``pi`` 1 if a later verdict made it one), else the
    ``pi`` it copied; None (a label not sampled by convowatch, taken as uniform) stays None.

    >>> effective_inclusion_probability(0.05, True), effective_inclusion_probability(0.05, False)
    (1.0, 0.05)
    >>> print(effective_inclusion_probability(None, True))
    None
    """
    return 1.0 if judged_high_risk and pi is not None else pi


def raters(entry: Entry, common: dict[str, Any]) -> list[Emit]:
    """Once a dimension of the turn has labels from ``MIN_RATERS`` annotators: one ``raters`` item; again
    each time a later annotator labels it (up to ``MAX_ITEM_RATERS``) or a later judge judges it (never
    compared with the consensus otherwise), with all its labels and the item it
    ``replaces`` (its last version, rebuilt from the annotators and judges the entry's ``rt`` says it had:
    labels only grow), so the aggregation counts each item once, with all its labels, without keeping
    items."""
    # an item keeps the annotators it was published with; the others fill its free places in the order they
    # came to the turn (one that came first may label the dimension after the item is full)
    held = {dim: set(item[0]) for dim, item in entry.get("rt", {}).items()}
    by_dimension: dict[str, dict[str, str]] = {}
    added: dict[str, int] = {}
    for annotator, record in entry["human"].items():  # in the order they came
        for dim, label in record["labels"].items():
            labels = by_dimension.setdefault(dim, {})
            kept = held.get(dim, ())
            if annotator in kept:
                labels[annotator] = label
            elif added.get(dim, 0) < MAX_ITEM_RATERS - len(kept):
                labels[annotator] = label
                added[dim] = added.get(dim, 0) + 1
    emits = []
    observed = entry["observed"]
    for dim, labels in by_dimension.items():
        if len(labels) < MIN_RATERS:
            continue
        # per dimension: the annotators and judges of the item published last
        published = entry.get("rt", {}).get(dim)
        judges = {j: r["labels"][dim] for j, r in entry["judge"].items() if dim in r["labels"]}
        if published is None:
            if f"r{SEP}{dim}" in observed:  # published by code before "rt": its labels are unknown, once only
                continue
            observed.append(f"r{SEP}{dim}")
        elif len(published[0]) >= len(labels) and len(published[1]) >= len(judges):  # nobody new
            continue
        value = {"kind": "raters", "dimension": dim, **_item(entry, dim, labels, judges), **common}
        if published is not None:
            before = {a: labels[a] for a in published[0]}
            value["replaces"] = _item(entry, dim, before, {j: judges[j] for j in published[1]})
        entry.setdefault("rt", {})[dim] = [list(labels), list(judges)]
        emits.append(Emit("observations", "humans", value))
    return emits


def _item(entry: Entry, dim: str, labels: dict[str, str], judges: dict[str, str]) -> dict[str, Any]:
    """A ``raters`` item's labels, their annotators' vendors, its time and the judges' labels.

    Its time is its latest label's on ``dim``: when the item was complete, where vendor windows count it
    (a version a later judge makes keeps it: the annotators' labels did not change). Label times never
    change (the first label stands), so the version an item ``replaces`` is rebuilt at the time it was
    counted at, and a window takes it out of that bucket."""
    human = entry["human"]
    return {
        "labels": labels,
        "vendors": {a: human[a]["vendor"] for a in labels},
        "label_ts": max(_label_time(human[a], dim) for a in labels),
        "judges": judges,
    }


def _label_time(record: dict[str, Any], dim: str) -> float:
    """When an annotator labelled ``dim`` on the turn: at its first record's time unless a later record
    added it (``dts``; an entry from before ``dts`` published its items at the first record's time, and a
    version it replaces must be rebuilt so)."""
    times = record.get("dts")
    return float(times[dim]) if times and dim in times else float(record["ts"])


def _unseen(observed: list[str], mark: str, record: dict[str, Any]) -> tuple[int, int] | None:
    """How many of a rater's labels and scores on the turn its observations had: (0, 0) for a rater not
    observed yet (marked now), None if nothing came since. A judge or annotator may send a turn's dimensions
    in several records (a judge prompted per dimension): each record's new ones make an observation."""
    labels, scores = record["labels"], record.get("scores", ())
    if mark not in observed:
        observed.append(mark)
        seen = (0, 0)
    else:
        n = record.get("n")
        if n is None:  # observed before the counts were kept (an entry of an older version): all of it
            return None
        seen = (n, record.get("ns", 0))
        if seen[0] >= len(labels) and seen[1] >= len(scores):
            return None
    record["n"] = len(labels)
    if scores:
        record["ns"] = len(scores)
    return seen


def _after(values: dict[str, Any], n: int) -> dict[str, Any]:
    """A copy of ``values`` without its first ``n`` items (in insertion order: they only grow)."""
    return dict(itertools.islice(values.items(), n, None)) if n else dict(values)


def _counted(entry: Entry, observed: list[str]) -> set[str]:
    """The dimensions of the turn a sampled (not gold) human label was observed on already."""
    counted: set[str] = set()
    for annotator, record in entry["human"].items():
        if not record["gold"] and f"h{SEP}{annotator}" in observed:
            counted.update(itertools.islice(record["labels"], record.get("n")))
    return counted


def _sampled(entry: Entry) -> bool:
    """Whether the turn has a human label that is not on a gold item (labelling coverage)."""
    return any(not record["gold"] for record in entry["human"].values())


def _cover(observed: list[str], judge_id: str) -> bool:
    """Mark ``judge_id``'s turn as labelled; False if it was already."""
    mark = f"k{SEP}{judge_id}"
    if mark in observed:
        return False
    observed.append(mark)
    return True


def number_observations(emits: list[Emit], source: tuple[str, int | None]) -> list[Emit]:
    """Tag each observation with ``src`` = [source, offset, n-th observation of this input record]."""
    seq = 0
    for emit in emits:
        if emit.topic == "observations":
            emit.value["src"] = [source[0], source[1], seq]
            seq += 1
    return emits
