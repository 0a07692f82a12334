"""What the model-version views share: gauges per pair of versions, the ``version_regression`` escalation.

The three views (``versions.py``: the judge's defect rates; ``version_outcomes.py``: business outcomes;
``version_calibrated.py``: human-calibrated defect rates) each keep one comparison
(:class:`~detectors.msprt.LiveVersionPairs`) per *scope*, two key parts such as judge and journey. A
comparison holds the tests of every pair of versions live together; a test is addressed by its dimension,
``""`` where a pair has a single test. After each observation of a scope the view calls
:meth:`VersionPairView._after`: the gauges of all live pairs are refreshed every ``PUBLISH_EVERY``
observations and those of a test when it decides, not on every observation (with several live versions that
would be most of a view's cost), and those of a comparison with turns since on the worker's timer
(:meth:`VersionPairView.export_pending`) and by the owner after a rebalance; a test that decides ``worse``
fires a ``version_regression`` escalation (severity high, revision 1), resolved (revision 2) when its two
versions stop serving the journey together (a rollback or a completed rollout), or when the comparison has
had no turn for a week (``closed_without_traffic``: ``version_regression.py``). After a restart or a
rebalance, :meth:`VersionPairView.open_escalations` gives the ones still open for the Alertmanager sink to
send again.

Each *owner* (the judge; for a view sharded by the journey itself, the observation partition) keeps
``max_journeys`` journeys apart, the rest sharing ``other``. A comparison that has seen no turn for
``idle_seconds`` of event time before the start of the day that looks (a retired journey) is dropped, from
report.json too, and a journey none of the owner's comparisons has left gives its room to the next new one
(:func:`~streams.views.idle_journeys.drop_idle`, looked for at the owner's first observation of each day and
its first after a start). Until 2026-11-26 each owner's first 50 journeys held their room for good, and after
turnover every new journey was ``other``. Not a comparison whose escalation is open (a test decided
``worse`` of a pair still live together, until its silence closes it), nor, while an ``other`` one is
open, any journey's: the room is kept whole then. An owner none of whose comparisons has seen a turn for
``idle_seconds`` before the start of a day of the worker's clock (a retired judge, whose own observations,
which look, never come; :class:`~streams.views.worker_clock.WorkerClock`) has them looked at so then.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any

from detectors.msprt import LiveVersionPairs
from streams.aggregate import Aggregator
from streams.emit import SEP, Emit
from streams.labels import LabelGuard, SettledOf, SourceGuards
from streams.metrics import Metrics
from streams.views.idle_journeys import drop_idle
from streams.views.idle_looks import IDLE_SECONDS, IdleLooks
from streams.views.spike_silence import source_partition
from streams.views.version_regression import (
    FIGURES,
    KIND,
    SEVERITY,
    SILENCE_SECONDS,
    SilentComparisons,
    TestKey,
    figures,
    regression_record,
    report_rows,
)
from streams.views.worker_clock import WorkerClock, unheard_since

DECISION_VALUE = {"continue": 0.0, "better": 1.0, "worse": -1.0}

#: Observations of one comparison between two refreshes of its gauges.
PUBLISH_EVERY = 50


class VersionPairView(ABC):
    """Base of the model-version views (module doc). A subclass feeds its comparisons in ``apply`` and
    says which gauges, labels and escalation a test gets; the defaults here are for
    :class:`~detectors.msprt.VersionComparison` (one test per pair)."""

    kinds: tuple[str, ...]
    #: Aggregate key prefix of the comparisons, and the view's key in ``report.json``.
    prefix: str
    #: Names of the two scope parts in report rows.
    scope_names: tuple[str, str]
    #: The test's figures in evidence and report rows.
    figure_names: tuple[str, ...] = FIGURES
    #: The gauges are ``<gauge_prefix>_lift``, ``_lift_bound``, ``_decision``, ``_p_value`` and ``_turns``
    #: of :class:`~streams.metrics.Metrics` (``streams/metrics_models.py``).
    gauge_prefix: str
    #: Extra label values of the turns gauge, one per value of :meth:`_turns`.
    turn_labels: tuple[tuple[str, ...], ...] = (("control",), ("treatment",))

    def __init__(
        self,
        metrics: Metrics,
        horizon_seconds: float = 3600.0,
        alpha: float = 0.05,
        tau2: float = 1e-4,
        min_samples: int = 100,
        max_journeys: int = 50,
        idle_seconds: float = IDLE_SECONDS,
        silence_seconds: float = SILENCE_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.horizon_seconds = horizon_seconds
        self.alpha = alpha
        self.tau2 = tau2
        self.min_samples = min_samples
        # aggregate keys stay bounded: rare journeys share one comparison per judge, the shard key of the
        # view's observations (see SourceGuards; views sharded by the journey itself fold per partition)
        self.journeys = SourceGuards(max_journeys)
        self._children: dict[tuple[str, ...], tuple[Any, ...]] = {}
        self._since_publish: dict[tuple[str, str], int] = {}
        self.idle_seconds = idle_seconds
        # derived, never persisted: each owner's comparison keys (those updated, and the recovered ones), and
        # when to look for its idle ones
        self._keys: dict[Hashable, set[str]] = {}
        self._looks = IdleLooks.per_idle(idle_seconds)
        self._clock = WorkerClock(idle_seconds)  # and of the owners never heard from again
        self.silence_seconds = silence_seconds
        # two versions seen within the horizon still serve together: not silent before it (review, 2026-11-26)
        self._silent_after = max(silence_seconds, horizon_seconds)
        self._silence = SilentComparisons(self._silent_after, self._is_open, self._key_partition)
        metrics.escalations.labels(KIND, SEVERITY)  # 0 from the start, so increase() sees the first one

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Admit the journeys of the recovered comparisons first, as the spike view does: with the guard of
        a fresh process a journey folded into ``other`` before could get a comparison of its own, and one
        that had its own could be folded into ``other``, its test (perhaps firing) never updated or ended
        again. Then forget the cached gauge children: after a rebalance the worker removes those of shards
        it lost (``streams/shard_gauges.py``), and a removed child, set again, is never exported; and publish
        afresh."""
        self._admit(aggregator)
        self._children.clear()
        self._since_publish.clear()  # the owned comparisons' gauges: exported from the state (export_owned)
        self._keys = {}
        for key, _ in aggregator.records(self.prefix):
            self._keys.setdefault(self._owner_of(key, aggregator), set()).add(key)
        self._looks.forget()
        self._clock.forget()
        self._silence.recover(aggregator, [key for keys in self._keys.values() for key in keys])

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        """An observation's comparisons (:meth:`_observe`); on the worker's clock, the idle comparisons of
        the owners none of whose comparisons saw a turn for ``idle_seconds`` (a retired judge: its own
        observations, which look, never come) dropped as the owner's own look would; before, the comparisons
        with a regression open and no turn for ``silence_seconds`` closed (``version_regression.py``)."""
        self._silence.tick(obs["ts"])
        emits = [] if obs["kind"] == "contact" else self._observe(aggregator, obs, partition)
        if (now := self._silence.due()) is not None:
            for key, comparison, silent_at in self._silence.close(aggregator, now):
                closed = {"ts": silent_at, "turn_id": None, "closed_without_traffic": True}
                _, first, second = key.split(SEP)
                emits.extend(self._escalations(comparison, (first, second), closed))
        if (look := self._clock.tick(obs["ts"])) is not None:
            self._drop_unheard(aggregator, look)
        return emits

    @abstractmethod
    def _observe(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        """Feed ``obs`` to its comparisons, then :meth:`_looked`; the escalations their tests raise."""

    def _drop_unheard(self, aggregator: Aggregator, look: float) -> None:
        before = self._clock.before(look)
        for owner, keys in list(self._keys.items()):
            if unheard_since((_last_seen(aggregator.detector(key)) for key in keys), before):
                self._sweep(aggregator, owner, keys, look, self._owner_partition(aggregator, owner))
                if not keys:
                    del self._keys[owner]

    def _key_partition(self, aggregator: Aggregator, key: str) -> int | None:
        """The changelog partition of the comparison at ``key``: its owner's."""
        return self._owner_partition(aggregator, self._owner_of(key, aggregator))

    def _owner_partition(self, aggregator: Aggregator, owner: Hashable) -> int | None:
        """The changelog partition of ``owner``'s comparisons: its judge's shard's."""
        return source_partition(aggregator, str(owner))

    def _admit(self, aggregator: Aggregator) -> None:
        """Admit the journeys of the recovered comparisons to fresh journey guards (see
        ``SpikeView.rebalanced``)."""
        self.journeys = SourceGuards(self.journeys.max_values)
        at = 1 + self.scope_names.index("journey")
        judge_at = 1 + self.scope_names.index("judge_id") if "judge_id" in self.scope_names else None
        seen: dict[str, set[str]] = {}
        for key, _ in aggregator.records(self.prefix):
            parts = key.split(SEP)
            seen.setdefault("" if judge_at is None else parts[judge_at], set()).add(parts[at])
        for source, journeys in seen.items():
            self.journeys(source, "journey").admit(journeys)

    def _owner_of(self, key: str, aggregator: Aggregator) -> Hashable:
        """The owner of a recovered comparison's key: its judge."""
        return key.split(SEP)[1 + self.scope_names.index("judge_id")]

    def _guard(self, owner: Hashable) -> LabelGuard:
        """The journey guard of ``owner``."""
        return self.journeys(str(owner), "journey")

    def _journey_of(self, key: str) -> str:
        return key.split(SEP)[1 + self.scope_names.index("journey")]

    def _looked(
        self,
        aggregator: Aggregator,
        owner: Hashable,
        keys: Iterable[str],
        obs: dict[str, Any],
        partition: int | None,
    ) -> None:
        """After ``obs`` went to the comparisons at ``keys`` of ``owner``: at the owner's first observation
        of a day (and after a start), drop its idle comparisons not open (module doc) and give up the room
        of the journeys none is left of."""
        tracked = self._keys.get(owner) or self._keys.setdefault(owner, set())
        tracked.update(keys)
        now = self._looks.due(owner, obs["ts"])
        if now is not None:
            self._sweep(aggregator, owner, tracked, now, partition)

    def _sweep(
        self, aggregator: Aggregator, owner: Hashable, tracked: set[str], now: float, partition: int | None
    ) -> None:
        """Drop ``owner``'s comparisons at ``tracked`` idle before ``now`` and not open, their deletions to
        the changelog ``partition``, and give up the room of the journeys none is left of."""
        is_open = self._is_open
        swept = drop_idle(aggregator, tracked, now, self.idle_seconds, partition, self._journey_of, is_open)
        for key in swept.dropped:
            _, first, second = key.split(SEP)
            self._since_publish.pop((first, second), None)
        if swept.kept is not None:
            self._guard(owner).retain(swept.kept)

    def _is_open(self, comparison: Any) -> bool:
        return next(self._open_tests(comparison), None) is not None

    def _params(self) -> dict[str, Any]:
        """The comparison's parameters from the view's."""
        return {
            "horizon_seconds": self.horizon_seconds,
            "alpha": self.alpha,
            "tau2": self.tau2,
            "min_samples": self.min_samples,
        }

    # -- what a subclass says ------------------------------------------------------------------------

    @abstractmethod
    def _scope_labels(self, at: TestKey, label_of: SettledOf) -> tuple[str | None, ...]:
        """The gauges' label values (bounded, by ``label_of``) before the two model versions."""

    @abstractmethod
    def _escalation(self, at: TestKey, test: Any, obs: dict[str, Any], firing: bool) -> Emit:
        """The test's ``version_regression`` escalation (usually by :meth:`_regression`), made at ``obs``
        (its ``ts`` and ``turn_id``; a ``turn_id`` of None: none, when an open one is sent again)."""

    def _pair_tests(self, comparison: Any, control: str, treatment: str) -> dict[str, Any]:
        """The tests of a pair by dimension (KeyError for a forgotten version)."""
        return {"": comparison.test(control, treatment)}

    def _events(self, comparison: Any) -> list[tuple[str, str, str, str]]:
        """``(control, treatment, dimension, what)`` of the comparison's last update."""
        return [(c, t, "", what) for c, t, what in comparison.events]

    def _all_tests(self, comparison: Any) -> list[tuple[str, str, str, Any]]:
        """``(control, treatment, dimension, test)`` of every test, sorted."""
        return [(c, t, "", test) for c, t, test in comparison.tests()]

    def _turns(self, test: Any) -> tuple[int, ...]:
        """The values of the turns gauges, in the order of :attr:`turn_labels`."""
        return (test.n_control, test.n_treatment)

    # -- shared ----------------------------------------------------------------------------------------

    def _after(self, comparison: Any, scope: tuple[str, str], obs: dict[str, Any]) -> list[Emit]:
        """Gauges and escalations after ``comparison`` (of ``scope``) took ``obs``."""
        since = self._since_publish.get(scope, 0) + 1
        if since >= PUBLISH_EVERY:
            since = 0
            self._publish_live(scope, comparison)
        self._since_publish[scope] = since
        if not comparison.eventful:  # most observations
            return []
        return self._escalations(comparison, scope, obs)

    def _escalations(self, comparison: Any, scope: tuple[str, str], obs: dict[str, Any]) -> list[Emit]:
        """The escalations of the events of ``comparison``'s last update or close, at ``obs``."""
        events = self._events(comparison)
        emits: list[Emit] = []
        for control, treatment, dim, what in events:
            try:
                tests = self._pair_tests(comparison, control, treatment)
            except KeyError:  # a version forgotten (too many versions): its tests went with it
                continue
            episode = comparison.episode(control, treatment)
            at = TestKey(scope, dim, control, treatment, episode, comparison.created)
            if what == "ended":
                emits.extend(
                    self._escalation(at._replace(dim=d), test, obs, firing=False)
                    for d, test in sorted(tests.items())
                    if test.decision == "worse"
                )
                continue
            self._publish(at, tests[dim])
            if what == "worse":
                self._silence.opened(SEP.join((self.prefix, *scope)))
                self.metrics.escalations.labels(KIND, SEVERITY).inc()
                emits.append(self._escalation(at, tests[dim], obs, firing=True))
        return emits

    def _publish_live(self, scope: tuple[str, str], comparison: Any, recovered: bool = False) -> None:
        """The gauges of every pair live together in ``comparison`` (``recovered``: see :meth:`_publish`)."""
        for control, treatment in comparison.live_pairs:
            for dim, test in self._pair_tests(comparison, control, treatment).items():
                self._publish(TestKey(scope, dim, control, treatment), test, recovered)

    def export_pending(self, aggregator: Aggregator) -> None:
        """The gauges of the live pairs of each comparison with observations since its last refresh (the
        tail of a burst: until 2026-11-26 it waited for the comparison's next ``PUBLISH_EVERY`` turns)."""
        for scope, since in self._since_publish.items():
            if since:
                self._since_publish[scope] = 0
                comparison = aggregator.detector(SEP.join((self.prefix, *scope)))
                if isinstance(comparison, LiveVersionPairs):
                    self._publish_live(scope, comparison)

    def export_owned(self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool]) -> None:
        """After a rebalance, the gauges of the live pairs of the recovered comparisons at ``keys`` whose
        shard (the scope's first part) this worker owns."""
        for parts, comparison in aggregator.owned_detectors(keys, self.prefix, owns):
            if len(parts) == 2 and isinstance(comparison, LiveVersionPairs):
                self._publish_live((parts[0], parts[1]), comparison, recovered=True)

    def open_escalations(
        self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool], at: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(shard key, escalation) of every regression open in the comparisons at ``keys`` whose shard (the
        scope's first part: a judge, or a journey) this worker ``owns``: a test decided ``worse`` of a pair
        still live together. After a restart or a rebalance, for the Alertmanager sink to send again
        (nothing else does before the pair ends). Each has the id, revision (1), labels, severity and
        status of the firing record; the test went on counting turns after its decision, so its figures in
        the evidence and the summary are its latest; the event time is ``at``, and there is no turn id."""
        now = {"ts": at, "turn_id": None}
        for parts, comparison in aggregator.owned_detectors(keys, self.prefix, owns):
            assert isinstance(comparison, LiveVersionPairs)
            scope = (parts[0], parts[1])
            for control, treatment, dim, test in self._open_tests(comparison):
                episode = comparison.episode(control, treatment)
                where = TestKey(scope, dim, control, treatment, episode, comparison.created)
                yield scope[0], self._escalation(where, test, now, firing=True).value

    def _open_tests(self, comparison: LiveVersionPairs) -> Iterator[tuple[str, str, str, Any]]:
        """(control, treatment, dimension, test) of each test decided ``worse`` of a pair still live: its
        escalation is open."""
        for control, treatment in comparison.live_pairs:
            try:
                tests = self._pair_tests(comparison, control, treatment)
            except KeyError:  # as in _after; not expected for a live pair
                continue
            for dim, test in sorted(tests.items()):
                if test.decision == "worse":
                    yield control, treatment, dim, test

    def _publish(self, at: TestKey, test: Any, recovered: bool = False) -> None:
        """The test's gauges; ``recovered`` (re-exported after a rebalance): with the label values the live
        path gives (``other`` for a value a full guard folds), unexported where a value could still take a
        guard's room (``Metrics.settled_label``: old values would fill a restarted worker's guards)."""
        m = self.metrics
        label_of: SettledOf = m.settled_label if recovered else m.label
        settled = (
            *self._scope_labels(at, label_of),
            label_of("model_version", at.control),
            label_of("model_version", at.treatment),
        )
        if None in settled:
            return
        labels = tuple(label for label in settled if label is not None)
        children = self._children.get(labels)  # keyed by bounded label values, so bounded too
        if children is None:
            prefix = self.gauge_prefix
            bound, turns = getattr(m, f"{prefix}_lift_bound"), getattr(m, f"{prefix}_turns")
            children = self._children[labels] = (
                getattr(m, f"{prefix}_lift").labels(*labels),
                bound.labels(*labels, "lower"),
                bound.labels(*labels, "upper"),
                getattr(m, f"{prefix}_decision").labels(*labels),
                getattr(m, f"{prefix}_p_value").labels(*labels),
                *(turns.labels(*labels, *arm) for arm in self.turn_labels),
            )
        lift, low, high, decision, p_value, *turns = children
        lift.set(test.lift)
        interval = test.interval
        low.set(interval[0])
        high.set(interval[1])
        decision.set(DECISION_VALUE[test.decision])
        p_value.set(test.p_value)
        for gauge, n in zip(turns, self._turns(test), strict=True):
            gauge.set(n)

    def _regression(
        self,
        key: str,
        head: dict[str, Any],
        at: TestKey,
        test: Any,
        obs: dict[str, Any],
        firing: bool,
        text: str,
    ) -> Emit:
        """The escalation ``key`` of a test (firing or resolved; closed at ``obs`` if its
        ``closed_without_traffic``) with the summary ``text`` (:func:`regression_record`)."""
        if obs.get("closed_without_traffic"):
            text = f"{text}; closed without traffic: no turns for {self._silent_after / 86400:.1f} days"
        test_figures = {**figures(test, self.figure_names), "alpha": self.alpha, "tau2": self.tau2}
        value = regression_record(key, head, at, test_figures, obs, firing, text)
        return Emit("escalations", value["escalation_id"], value)

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """One row per scope, pair of versions (and dimension, where tests have one)."""
        rows = []
        for scope, comparison in aggregator.items(self.prefix):
            if isinstance(comparison, LiveVersionPairs):
                tests = self._all_tests(comparison)
                rows += report_rows(scope, comparison, tests, self.scope_names, self.figure_names)
        return {self.prefix: rows}


def _last_seen(comparison: Any) -> float | None:
    """A comparison's newest turn time (None: none there, or none kept)."""
    return None if comparison is None else comparison.last_seen
