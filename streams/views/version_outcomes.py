"""Model-version comparison on business outcomes: is the new version escalating more, completing less?

Per journey and outcome one :class:`~detectors.msprt.VersionComparison` (live versions within
``CONVOWATCH_VERSION_HORIZON_SECONDS`` of event time, one always-valid mSPRT per ordered pair, as in
``streams/views/versions.py``) over the ``turn`` observations (shard key: the journey), each carrying its
ChatTurn's ``outcome``. Outcomes, per turn:

- ``escalated_to_agent`` (lower is better) and ``contained`` (higher is better), as the turn reports them;
- ``task_completed`` (higher is better);
- ``thumbs_down`` (lower is better): among turns with ``user_feedback``, the share ``down``.

A turn that does not report an outcome (the field is missing) is not counted for it. When the new version
is significantly worse on an outcome, a ``version_regression`` escalation (high) fires once per journey,
outcome and pair (evidence: ``source`` ``outcome``, ``outcome``); it resolves when the two versions stop
serving the journey together. Gauges ``convowatch_version_outcome_*`` mirror ``convowatch_version_*``.
The journeys kept apart, and the comparisons of idle ones dropped, are per observation partition (their
owner in ``version_common.py``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any

from detectors.msprt import MixtureSPRT, VersionComparison
from streams.aggregate import Aggregator
from streams.emit import SEP, Emit
from streams.labels import LabelGuard, PartitionGuards, SettledOf, shard_partition, shown
from streams.metrics import Metrics
from streams.views.version_common import VersionPairView
from streams.views.version_regression import TestKey, regression_text

#: Outcome -> higher is better.
OUTCOMES = {"escalated_to_agent": False, "thumbs_down": False, "contained": True, "task_completed": True}
PREFIX = "version_outcomes"


def outcome_values(outcome: dict[str, Any] | None) -> dict[str, bool]:
    """The outcomes a turn reports, as booleans (missing ones left out)."""
    outcome = outcome or {}
    values = {
        name: bool(outcome[name])
        for name in ("escalated_to_agent", "contained", "task_completed")
        if outcome.get(name) is not None
    }
    if outcome.get("user_feedback") in ("up", "down"):
        values["thumbs_down"] = outcome["user_feedback"] == "down"
    return values


class VersionOutcomeView(VersionPairView):
    kinds: tuple[str, ...] = ("turn",)
    prefix = PREFIX
    gauge_prefix = "version_outcome"
    scope_names = ("journey", "outcome")

    def __init__(self, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(metrics, **kwargs)
        # the shard key is the journey: its guards are per observation partition, not per source
        self.partition_journeys = PartitionGuards(self.journeys.max_values)

    def _admit(self, aggregator: Aggregator) -> None:
        self.partition_journeys = PartitionGuards(self.journeys.max_values)
        parts = (key.split(SEP)[1] for key, _ in aggregator.records(self.prefix))
        self.partition_journeys.admit(parts, aggregator.partition_of)
        aggregator.drop_unpartitioned_folds(PREFIX, OUTCOMES)

    def _observe(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        segment = obs.get("segment") or {}
        version = segment.get("model_version")
        values = outcome_values(obs.get("outcome"))
        if not version or not values:
            return []
        owner = aggregator.fold_partition(partition)
        journey = self.partition_journeys.fold(segment.get("journey"), owner)
        ts = obs["ts"]
        emits: list[Emit] = []
        keys = []
        for outcome, value in values.items():

            def apply(c: VersionComparison, value: bool = value) -> None:
                c.update(version, value, ts)

            key = f"{PREFIX}{SEP}{journey}{SEP}{outcome}"
            keys.append(key)
            comparison = aggregator.update(key, obs, partition, self._makers[outcome], apply)
            if comparison is not None:
                emits.extend(self._after(comparison, (journey, outcome), obs))
        self._looked(aggregator, owner, keys, obs, partition)
        return emits

    def _owner_of(self, key: str, aggregator: Aggregator) -> Hashable:
        """The observation partition of a recovered comparison (None without partitions): its owner."""
        partition_of = aggregator.partition_of
        return None if partition_of is None else shard_partition(key.split(SEP)[1], partition_of)

    def _owner_partition(self, aggregator: Aggregator, owner: Hashable) -> int | None:
        """The owner is the partition itself (None without partitions)."""
        assert owner is None or isinstance(owner, int)
        return owner

    def _guard(self, owner: Hashable) -> LabelGuard:
        assert owner is None or isinstance(owner, int)  # a partition, as apply and _owner_of give
        return self.partition_journeys(owner)

    @functools.cached_property
    def _makers(self) -> dict[str, Callable[[], VersionComparison]]:
        """Per outcome, what makes its comparison."""
        return {outcome: functools.partial(self._make, better) for outcome, better in OUTCOMES.items()}

    def _make(self, better: bool) -> VersionComparison:
        return VersionComparison(**self._params(), higher_is_better=better)

    def _scope_labels(self, at: TestKey, label_of: SettledOf) -> tuple[str | None, ...]:
        journey, outcome = at.scope
        return (label_of("journey", shown(journey)), outcome)

    def _escalation(self, at: TestKey, test: MixtureSPRT, obs: dict[str, Any], firing: bool) -> Emit:
        part, outcome = at.scope  # a folded comparison's part names its partition: the id only says it
        journey = shown(part)
        where, closed, rates = f" on {outcome}", f"{outcome} ", "{t} of turns against {c}"
        text = regression_text(test, at, journey, self.alpha, firing, where, closed, rates)
        higher = OUTCOMES[outcome]
        head = {"source": "outcome", "outcome": outcome, "higher_is_better": higher, "journey": journey}
        eid_key = f"outcome|{part}|{outcome}|{at.control}|{at.treatment}"
        return self._regression(eid_key, head, at, test, obs, firing, text)
