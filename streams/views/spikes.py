"""Defect-rate spikes per category and segment, from judge verdicts and, separately, from human labels.

Each judged turn is one Bernoulli observation per category it was assessed on (1 = it failed a dimension
of that category); for the human source, each turn once, with the first human label of each dimension
that is not on a gold (honeypot) item, if the turn is in the uniform sample of the labelled turns
(``streams/views/uniform_labels.py``: a turn review sampling requested with probability ``pi`` is kept
with probability ``CONVOWATCH_REVIEW_MIN_PROBABILITY / pi``, one labelled without ``pi`` always). A judge
or annotator that sends a turn's dimensions in several records (a judge prompted per dimension) adds an
observation per record, for the categories that record brings: two dimensions of one category in two
records count the category twice for the turn, as two annotators' first labels on them do (counting it
once would drop the second record's failure, or wait for records that may never come). Segments are
slices: journey; journey and model version; journey and intent. One :class:`~detectors.CategorySpikes`
holds a slice value's detectors for every category, per source (a judge id, or ``humans``). The
false-alarm budget is stated per day across all segments and sources
(``CONVOWATCH_SPIKE_FALSE_ALARMS_PER_DAY`` at ``CONVOWATCH_SPIKE_TURNS_PER_DAY`` turns, each scored by
``CONVOWATCH_SPIKE_JUDGES`` judges, and ``CONVOWATCH_SPIKE_LABELLED_TURNS_PER_DAY`` human-labelled turns
so kept) and turned into each detector's in-control run length: every source's detectors see their own
traffic, so a budget that counted turns once would be exceeded about once over per judge. A spike raises
``defect_spike`` (firing, then resolved).

An open spike of a slice that has gone silent closes (``closed_without_traffic``:
``streams/views/spike_silence.py``). A source's detectors of a slice value that has seen nothing for
``idle_seconds`` of the source's event time (a model version retired) are dropped, unless in alarm, and a
value none of the source's detectors has any more gives up its room in the source's guard: each source's first
50 values held it for good, and after turnover every new model version shared the ``other`` detector. Not
while the source's ``other`` detector of that segment label is in alarm: the values it folds would leave it,
and it would never resolve; the idle detectors of that label's values are kept until it resolves, so that a
restart, which admits the values of the recovered detectors, keeps the room as full (they were dropped on
2026-11-26, and after a restart a value ``other`` folded had a detector of its own, and ``other`` never
resolved).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from detectors.category_spikes import CategorySpikes
from detectors.defect_rate_spike import DefectRateSpike, arl0_for_budget
from schemas.common import FAIL, QUALITY_DIMENSIONS
from streams.aggregate import Aggregator, key
from streams.config import spike_events_per_day
from streams.emit import SEP, Emit, iso, sampled_labels
from streams.labels import OTHER, SourceGuards
from streams.metrics import Metrics
from streams.policy import escalation_id
from streams.taxonomy import SEVERITIES, Taxonomy
from streams.views.idle_looks import IDLE_SECONDS, IdleLooks
from streams.views.label_cache import LabelCache
from streams.views.spike_silence import SilentSpikes, closed_summary, source_partition
from streams.views.uniform_labels import UniformLabels, labelled_probability

SLICES: tuple[tuple[str, ...], ...] = (("journey",), ("journey", "model_version"), ("journey", "intent"))


class SpikeView:
    kinds: tuple[str, ...] = ("judged", "labelled", "contact")  # contacts: the clock (spike_silence.py)

    def __init__(
        self,
        metrics: Metrics,
        taxonomy: Taxonomy,
        false_alarms_per_day: float = 1.0,
        turns_per_day: float = 1_000_000.0,
        judges: int = 1,
        labelled_turns_per_day: float = 100_000.0,
        max_segment_values: int = 50,
        uniform_probability: float = 0.001,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.taxonomy = taxonomy
        self.idle_seconds = idle_seconds
        # the human source's turns: a uniform sample, whatever review sampling requested
        self.uniform_labels = UniformLabels(uniform_probability)
        # sorted: the runbook below takes the first of a category's most severe dimensions, and a set's order
        # follows PYTHONHASHSEED (a spike of "inaccurate" linked personalization's runbook in some processes)
        self.category_of = {dim: taxonomy.policy(dim).category for dim in sorted(QUALITY_DIMENSIONS)}
        categories = sorted(set(self.category_of.values()))
        # every judged turn is one event, per judge, for each (slice, category) stream it falls in, and every
        # human-labelled turn one more for the human source's
        events = spike_events_per_day(turns_per_day, judges, labelled_turns_per_day)
        self.arl0 = arl0_for_budget(false_alarms_per_day, events, len(SLICES) * len(categories))
        metrics.spike_budget_turns.labels("judges").set(judges * turns_per_day)
        metrics.spike_budget_turns.labels("humans").set(labelled_turns_per_day)
        self._n_categories = len(categories)
        self._events = {
            "judged": metrics.spike_turns.labels("judges"),
            "labelled": metrics.spike_turns.labels("humans"),
        }
        DefectRateSpike(arl0=self.arl0)  # a budget out of range fails at start, not on every observation
        self.severity = category_severities(taxonomy)
        # the runbook of the category's most severe dimension that has one (its name breaks ties)
        self.runbook = {
            c: next(
                (
                    taxonomy.policy(d).runbook_url
                    for d in sorted(
                        (d for d, cat in self.category_of.items() if cat == c),
                        key=lambda d: SEVERITIES.index(taxonomy.policy(d).severity),
                    )
                    if taxonomy.policy(d).runbook_url
                ),
                None,
            )
            for c in categories
        }
        # detector keys must stay bounded too: past a source's first ``max_segment_values`` values of a
        # segment label, the rest share an "other" detector
        self.guards = SourceGuards(max_segment_values)
        self._slice_cache = LabelCache(self._new_slices)
        # derived, never persisted: each source's spike keys (from the slices built and the recovered state),
        # and when to look for its idle detectors (at its first observation of each period, and after a start)
        self._keys: dict[str, set[str]] = {}
        self._looks = IdleLooks.per_idle(idle_seconds)
        self._silence = SilentSpikes()  # the worker's clock and its open spikes

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Admit the slice values of the recovered spike aggregates first: with the guards of a fresh process,
        a value folded into ``other`` before could get a slice of its own, and the ``other`` detector (in
        alarm, perhaps) would stop getting its turns and never resolve. Each source's own guard: a source
        taken over from another worker keeps its values, whatever this worker's sources saw. Guards afresh,
        as a restart's: one kept from before a rebalance held the room of the values of a source that moved
        to another worker and back, which that worker may have given to others (until 2026-11-26)."""
        seen: dict[tuple[str, str], set[str]] = {}
        self.guards = SourceGuards(self.guards.max_values)
        self._keys = {}
        self._looks.forget()
        for spike_key, _ in aggregator.records("spike"):
            source, values = spike_slice(spike_key)
            self._keys.setdefault(source, set()).add(spike_key)
            for name, value in values.items():
                seen.setdefault((source, name), set()).add(value)
        for (source, name), admitted in seen.items():
            self.guards(source, name).admit(admitted)
        self._slice_cache = LabelCache(self._new_slices)
        self._silence.recover(aggregator, [k for keys in self._keys.values() for k in keys])

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        """A judged or labelled turn's observations; on the clock of every observation, the open spikes of
        silent slices closed, and the detectors of sources silent for ``idle_seconds`` (retired) dropped."""
        arrival = self._silence.tick(obs["ts"])
        emits = [] if obs["kind"] == "contact" else self._observe(aggregator, obs, partition, arrival)
        if (now := self._silence.due()) is not None:
            for spike_key, spikes, silent_at in self._silence.close(aggregator, now):
                source, values = spike_slice(spike_key)
                for category in spikes.resolutions:
                    emits.append(self._escalation(spikes, category, source, values, silent_at, False, True))
        if (day := self._looks.due(None, arrival)) is not None:  # the worker's (a source's: by its name)
            for source in self._silence.unheard(aggregator, self._keys, day - self.idle_seconds):
                self._drop_idle(aggregator, source, source_partition(aggregator, source), day)
        return emits

    def _observe(
        self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None, arrival: float
    ) -> list[Emit]:
        # each turn once: a second annotator's label of a dimension (consensus labelling, a honeypot served
        # to many annotators) is not a second turn, and gold items are not a sample of the traffic; of the
        # turns review sampling requested, a uniform sample (judge-flagged ones come with pi 1, the others
        # at budget / traffic: their mix, and the labelled defect rate, followed the time of day); the join
        # says which pi the turn had
        if obs["kind"] == "labelled":
            if not self.uniform_labels.keeps(obs["turn_id"], labelled_probability(obs, self.taxonomy)):
                return []
            labels: dict[str, str] = sampled_labels(obs)
        else:
            labels = obs["labels"]
        category_of = self.category_of
        judged_set: set[str] = set()
        failed_set: set[str] = set()
        for d, v in labels.items():
            category = category_of.get(d)
            if category is not None:
                judged_set.add(category)
                if v == FAIL:
                    failed_set.add(category)
        if not judged_set:
            return []
        judged, failed = sorted(judged_set), sorted(failed_set)
        source = obs["judge_id"] if obs["kind"] == "judged" else "humans"
        turn_id, ts = obs["turn_id"], obs["ts"]

        def apply(s: CategorySpikes) -> None:
            # one made under another budget (or before 2026-11-26, per source) follows this one
            s.retune(self.arl0).update(judged, failed, ref=turn_id, ts=ts, arrival=arrival)

        emits: list[Emit] = []
        counted = False
        for spike_key, values in self._slices(source, obs["segment"]):
            spikes = aggregator.update(spike_key, obs, partition, self._make, apply)
            if spikes is None:
                continue
            if not counted:  # an event of each category stream it brings: a share of a turn's
                counted = True
                self._events[obs["kind"]].inc(len(judged) / self._n_categories)
            for category in spikes.alarms:
                emits.append(self._escalation(spikes, category, source, values, ts, firing=True))
                self._silence.opened(spike_key)
            for category in spikes.resolutions:
                emits.append(self._escalation(spikes, category, source, values, ts, firing=False))
                self._silence.resolved(spike_key, spikes)
        now = self._looks.due(source, ts)
        if now is not None:
            self._drop_idle(aggregator, source, partition, now)
        return emits

    def _drop_idle(self, aggregator: Aggregator, source: str, partition: int | None, now: float) -> None:
        """Drop ``source``'s detectors that saw nothing for ``idle_seconds`` before event time ``now`` (the
        start of the look's period: a look after a restart decides as the period's first did) and are not in
        alarm (their deletions to the changelog ``partition`` of the source's observations), and release
        the guard room of the slice values none of its detectors has left. Not while the ``other``
        detector of that segment label is in alarm: a value it folds could take the room and leave it, so
        the idle detectors of the values that keep their room are kept too, until the first look after it
        resolves (the state a restart recovers the guards from must name every value the room is kept for).
        """
        keys = self._keys.get(source, set())
        detectors: list[tuple[str, CategorySpikes, dict[str, str]]] = []
        open_other: set[str] = set()  # segment labels whose "other" detector is in alarm
        for spike_key in sorted(keys):
            spikes = aggregator.detector(spike_key)
            if not isinstance(spikes, CategorySpikes):
                keys.discard(spike_key)  # never made (a replay), or dropped by an earlier sweep
                continue
            _, values = spike_slice(spike_key)
            if spikes.last_seen is None:  # state from before 2026-11-26: idle from now on, written so
                aggregator.change(spike_key, partition, lambda s: s.update([], [], ts=now))
            if spikes.in_alarm:
                open_other.update(name for name, value in values.items() if value == OTHER)
            detectors.append((spike_key, spikes, values))
        kept: set[tuple[str, str]] = set()  # (segment label, value) of the detectors kept
        dropped = False
        for spike_key, spikes, values in detectors:
            if (
                spikes.in_alarm
                or spikes.last_seen is None
                or spikes.last_seen >= now - self.idle_seconds
                or any(name in open_other and value != OTHER for name, value in values.items())
            ):
                kept.update(values.items())
            else:
                aggregator.delete(spike_key, partition)
                keys.discard(spike_key)
                dropped = True
        released = False
        for name in ("journey", "model_version", "intent"):
            if name not in open_other:
                in_use = {value for n, value in kept if n == name}
                released = self.guards(source, name).retain(in_use) or released
        if dropped or released:
            self._slice_cache = LabelCache(self._new_slices)  # its keys are registered again as they come

    def _make(self) -> CategorySpikes:
        return CategorySpikes(arl0=self.arl0)

    def _slices(self, source: str, segment: dict[str, Any]) -> list[tuple[str, dict[str, str]]]:
        """(aggregate key, guarded slice values) of each slice of ``segment``, cached by the raw values (a
        guard maps a value the same way from its first call on, so only the first lookup must call it)."""
        raw = (source, segment.get("journey"), segment.get("model_version"), segment.get("intent"))
        slices: list[tuple[str, dict[str, str]]] = self._slice_cache[raw]
        return slices

    def _new_slices(
        self, raw: tuple[str, str | None, str | None, str | None]
    ) -> list[tuple[str, dict[str, str]]]:
        source, *segment_values = raw
        segment = dict(zip(("journey", "model_version", "intent"), segment_values, strict=True))
        slices = []
        for names in SLICES:
            values = {name: self.guards(source, name)(segment[name]) for name in names}
            slices.append((key("spike", source, *(f"{n}={v}" for n, v in values.items())), values))
        self._keys.setdefault(source, set()).update(spike_key for spike_key, _ in slices)
        return slices

    def open_escalations(
        self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool], at: float
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """(shard key, escalation) of every spike open in the aggregates at ``keys`` of the shards this worker
        ``owns``, as if raised at ``at``: after a restart or a rebalance, for the Alertmanager sink to send
        again (nothing else re-sends them)."""
        for parts, spikes in aggregator.owned_detectors(keys, "spike", owns):
            source, values = slice_values(parts)
            assert isinstance(spikes, CategorySpikes)
            for category in spikes.in_alarm:
                value = self._value(spikes, category, source, values, at, firing=True)
                yield source, value

    def _escalation(
        self,
        spikes: CategorySpikes,
        category: str,
        source: str,
        values: dict[str, str],
        ts: float,
        firing: bool,
        silent: bool = False,
    ) -> Emit:
        value = self._value(spikes, category, source, values, ts, firing, silent)
        if firing:
            self.metrics.escalations.labels("defect_spike", value["severity"]).inc()
        set_spike_active(self.metrics, category, value["severity"], source, values, firing)
        return Emit("escalations", value["escalation_id"], value)

    def _value(
        self,
        spikes: CategorySpikes,
        category: str,
        source: str,
        values: dict[str, str],
        ts: float,
        firing: bool,
        silent: bool = False,
    ) -> dict[str, Any]:
        detector = spikes.detector(category)
        episode = detector.n_alarms
        where = ", ".join(f"{n} {v}" for n, v in values.items())
        subject = f"{source}|{category}|{where}|{episode}"
        eid = escalation_id("defect_spike", subject, detector.created)
        severity = self.severity[category]
        who = "human labels" if source == "humans" else f"judge {source}"
        if firing:
            ago = detector.n - (detector.onset or 0)
            summary = (
                f"Defect spike: {category} at {detector.spike_rate:.1%} against a baseline of "
                f"{detector.baseline:.1%} in {where} ({who}), since about {ago} turns ago"
            )
        elif silent:
            summary = closed_summary(spikes, category, f"{where} ({who})", ts)
        else:
            summary = f"Defect spike over: {category} back near {detector.baseline:.1%} in {where} ({who})"
        return {
            "schema_version": 1,
            "escalation_id": eid,
            "kind": "defect_spike",
            "severity": severity,
            "status": "firing" if firing else "resolved",
            "revision": 1 if firing else 2,
            "dimension": None,
            "segment": {
                name: values.get(name)
                for name in ("journey", "intent", "model_version", "channel", "modality")
            },
            "event_time": iso(ts),
            "turn_ids": [str(ref) for ref in detector.evidence],
            "summary": summary,
            "evidence": {
                "category": category,
                "source": source,
                "baseline_rate": detector.baseline,
                "current_rate": detector.current_rate,
                "spike_rate": detector.spike_rate,
                "onset_turns_ago": detector.n - (detector.onset or 0),
                "episode": episode,
                "runbook_url": self.runbook[category],
                "closed_without_traffic": silent,
            },
        }


def category_severities(taxonomy: Taxonomy) -> dict[str, str]:
    """A spike's severity by category: the most severe of the category's dimensions' (the taxonomy's)."""
    severities: dict[str, str] = {}
    for dim in QUALITY_DIMENSIONS:
        policy = taxonomy.policy(dim)
        known = severities.get(policy.category, policy.severity)
        severities[policy.category] = min(known, policy.severity, key=SEVERITIES.index)
    return severities


def spike_slice(spike_key: str) -> tuple[str, dict[str, str]]:
    """(source, slice values) of a spike aggregate's key (``spike<SEP>source<SEP>journey=...``)."""
    return slice_values(spike_key.split(SEP)[1:])


def slice_values(parts: list[str]) -> tuple[str, dict[str, str]]:
    """(source, slice values) of a spike aggregate's key parts after ``spike`` (source, journey=...)."""
    source, *values = parts
    return source, dict(value.split("=", 1) for value in values)


def set_spike_active(
    metrics: Metrics, category: str, severity: str, source: str, values: dict[str, str], active: bool
) -> None:
    """``convowatch_defect_spike_active`` of one source's detector of ``category`` in one slice, labelled
    with the category's ``severity`` (the backstop alert routes on it). Each source (a judge, or human
    labels) has a series of its own: a source's resolution must not hide another's open spike. Values past
    the metric label guard share an ``other`` series, 1 while any of their detectors is open
    (:class:`~streams.labels.OpenFlags`)."""
    m = metrics
    labels = (
        category,
        m.label("journey", values.get("journey")),
        m.label("model_version", values["model_version"]) if "model_version" in values else "*",
        m.label("intent", values["intent"]) if "intent" in values else "*",
        source if source == "humans" else m.label("judge_id", source),
        severity,
    )
    m.spike_open.set(labels, (category, source, *sorted(values.items())), active)
