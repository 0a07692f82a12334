"""Gold accuracy per golden item: which golden (turn, dimension) items the raters miss, and which look wrong.

Gold accuracy per vendor, annotator and judge (:mod:`streams.views.gold`) cannot tell a wrong expected
answer from a rater's mistake: a bad item lowers every rater's figure alike. For each golden turn this
counts, per dimension of its truth, the labels scored and those that missed the expected label: the human
labels per vendor, on the shard ``humans`` (aggregate ``gold_item/humans/<turn>``), each judge's verdicts
on the judge's shard (``gold_item/<judge>/<turn>``). Counts only (:class:`~detectors.GoldItemTally`), so
the state is a few hundred bytes per golden turn and shard, bounded by the golden set's file.

An item is ``suspect`` (likely a wrong expected answer) when at least :data:`MIN_RATERS` labels were scored
on it, humans' and judges' alike, and most of them missed. report.json ``gold.items`` lists the
:data:`TOP_ITEMS` items most worth a look: suspect ones first, then by misses; ``gold.suspect_turns``
the golden turns with a suspect item. The gauge
``convowatch_gold_items_suspect`` counts the items suspect on the human labels alone: on Kafka the judges'
counts are on other workers, and the humans shard's worker sets it.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from detectors.keyed import KeyedDetectors
from streams.aggregate import Aggregator, key
from streams.emit import SEP
from streams.golden import GoldenSet
from streams.metrics import Metrics

PREFIX = "gold_item"
HUMANS = "humans"
#: Labels an item needs before most of them missing makes it suspect: two that both miss (with raters each
#: wrong with probability p, p² by chance) are rarer than the 2 of 3 the rule admits anyway (3p²).
MIN_RATERS = 2
#: Items listed in report.json ``gold.items``.
TOP_ITEMS = 20
#: Turns listed in report.json ``gold.suspect_turns`` (a golden turn's expected answers are one record of
#: the golden file: a wrong one is often wrong on several dimensions, which would fill ``items``).
SUSPECT_TURNS = 100


def _tallies() -> KeyedDetectors:
    return KeyedDetectors("GoldItemTally")


def _current(keyed: KeyedDetectors, truth: dict[str, str]) -> Iterator[tuple[str, str, int, int]]:
    """(rater, dimension, scored, missed) of a turn's aggregate, against ``truth`` as it is now: counts
    against an expected label since corrected are left out."""
    for rater, tally in keyed.items():
        for dimension, (expected, scored, missed) in tally.counts.items():
            if truth.get(dimension) == expected:
                yield rater, dimension, scored, missed


def _suspect(scored: int, missed: int) -> bool:
    return scored >= MIN_RATERS and 2 * missed > scored


def _suspect_dimensions(keyed: KeyedDetectors, truth: dict[str, str]) -> int:
    """How many of a turn's dimensions are suspect on the raters of ``keyed`` together."""
    totals: dict[str, list[int]] = {}
    for _, dimension, scored, missed in _current(keyed, truth):
        pair = totals.setdefault(dimension, [0, 0])
        pair[0] += scored
        pair[1] += missed
    return sum(_suspect(scored, missed) for scored, missed in totals.values())


class GoldItems:
    """Per-item gold counts, kept for :class:`~streams.views.gold.GoldView` from its observations."""

    def __init__(self, metrics: Metrics, golden: GoldenSet) -> None:
        self.metrics = metrics
        self.golden = golden
        self._suspect_on_humans = 0  # items suspect on the human labels alone (the gauge)

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Count the items suspect on the recovered human labels again (the gauge is the humans shard's:
        a worker that does not own it has it cleared)."""
        start = key(PREFIX, HUMANS) + SEP
        self._suspect_on_humans = 0
        for item_key in [k for k, _ in aggregator.records(PREFIX) if k.startswith(start)]:
            keyed = aggregator.detector(item_key)
            truth = self.golden.get(item_key.removeprefix(start))
            if isinstance(keyed, KeyedDetectors) and truth is not None:
                self._suspect_on_humans += _suspect_dimensions(keyed, truth)
        self.metrics.gold_items_suspect.set(self._suspect_on_humans)

    def score(
        self,
        aggregator: Aggregator,
        obs: dict[str, Any],
        partition: int | None,
        truth: dict[str, str],
        rater: str,
    ) -> None:
        """Count ``obs``'s labels (a ``gold_label`` of vendor ``rater``, or a judge ``rater``'s
        ``gold_verdict``) on its turn's ``truth``."""
        humans = obs["kind"] == "gold_label"
        shard = HUMANS if humans else rater
        labels: dict[str, str] = obs["labels"]
        disputed: list[int] = []

        def count(keyed: KeyedDetectors) -> None:
            if humans:
                disputed.append(_suspect_dimensions(keyed, truth))
            keyed.update(rater, labels, truth)
            if humans:
                disputed.append(_suspect_dimensions(keyed, truth))

        aggregator.update(key(PREFIX, shard, obs["turn_id"]), obs, partition, _tallies, count)
        if disputed and disputed[1] != disputed[0]:
            self._suspect_on_humans += disputed[1] - disputed[0]
            self.metrics.gold_items_suspect.set(self._suspect_on_humans)

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``items_scored``, ``items_suspect``, ``items``: the :data:`TOP_ITEMS` golden items most worth a
        look, suspect ones first, then by misses, and ``suspect_turns``: the golden turns with a suspect
        item, most suspect items first (at most :data:`SUSPECT_TURNS`)."""
        rows = list(self._rows(aggregator.items(PREFIX)))
        rows.sort(
            key=lambda r: (not r["suspect"], -r["missed"], -r["disagree_share"], r["turn_id"], r["dimension"])
        )
        suspect_items: dict[str, int] = {}
        for row in rows:
            if row["suspect"]:
                suspect_items[row["turn_id"]] = suspect_items.get(row["turn_id"], 0) + 1
        turns = sorted(suspect_items, key=lambda t: (-suspect_items[t], t))
        return {
            "items_scored": len(rows),
            "items_suspect": sum(suspect_items.values()),
            "items": rows[:TOP_ITEMS],
            "suspect_turns": turns[:SUSPECT_TURNS],
        }

    def _rows(self, aggregates: Iterable[tuple[list[str], Any]]) -> Iterable[dict[str, Any]]:
        # (turn, dimension) -> "vendors" or "judges" -> rater -> [scored, missed]
        counts: dict[tuple[str, str], dict[str, dict[str, list[int]]]] = {}
        for (shard, *turn_parts), keyed in aggregates:
            turn_id = SEP.join(turn_parts)
            side = "vendors" if shard == HUMANS else "judges"
            assert isinstance(keyed, KeyedDetectors)
            truth = self.golden.get(turn_id)
            if truth is None:  # no longer in the golden set
                continue
            for rater, dimension, scored, missed in _current(keyed, truth):
                sides = counts.setdefault((turn_id, dimension), {"vendors": {}, "judges": {}})
                figures = sides[side].setdefault(rater, [0, 0])
                figures[0] += scored
                figures[1] += missed
        for (turn_id, dimension), sides in counts.items():
            humans = [sum(c[i] for c in sides["vendors"].values()) for i in (0, 1)]
            judges = [sum(c[i] for c in sides["judges"].values()) for i in (0, 1)]
            scored, missed = humans[0] + judges[0], humans[1] + judges[1]
            yield {
                "turn_id": turn_id,
                "dimension": dimension,
                "expected": self.golden[turn_id][dimension],
                "scored": scored,
                "missed": missed,
                "disagree_share": missed / scored,
                "suspect": _suspect(scored, missed),
                "humans_scored": humans[0],
                "humans_missed": humans[1],
                "judges_scored": judges[0],
                "judges_missed": judges[1],
                "vendors": {v: {"scored": s, "missed": m} for v, (s, m) in sorted(sides["vendors"].items())},
                "judges": {j: {"scored": s, "missed": m} for j, (s, m) in sorted(sides["judges"].items())},
            }
