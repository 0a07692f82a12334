"""Human-calibrated defect rates: the judge on every turn, corrected by the human labels it has.

Per judge, dimension and journey (and ``*``, all journeys) a :class:`~detectors.PredictionPoweredRate`
(prediction-powered inference, PPI++): every ``judged`` observation counts the judge's verdict ``f`` (1 =
fail) once, every ``pair`` adds the human truth ``y`` for a turn already counted (``add_label``). A pair
whose turn never arrived was never counted as judged, so it adds both (journey ``unknown``). All of a
judge's estimators live in one :class:`~detectors.keyed.KeyedDetectors` under ``ppi/<judge>`` (shard: the
judge), keyed ``<journey>\\x1f<dimension>``: one state update per judged turn.

A label whose HumanLabel carries ``inclusion_probability`` ``p`` (copied from its review request, see
``streams/views/review.py``) weighs ``1 / p`` (inverse-probability weighting): turns sampled for review
with known, unequal probabilities still give an unbiased estimate. A label without it weighs 1, i.e. is
assumed part of a uniform random sample of judged turns; labelling that targets the judge's fails without
recording the probability, or gold turns chosen for difficulty, bias it.

Per judge, ``max_journeys`` journeys get estimators of their own; later ones share ``other``. An estimator
that has counted no judged turn for ``idle_seconds`` of the judge's event time before the start of the day
that looks (a retired journey, or all journeys' figures of a dimension the judge no longer labels) is
dropped, from report.json too, and a journey none of the judge's estimators has left gives its room to the
next new one: looked for at the judge's first observation of each day of event time and its first after a
start (:class:`~streams.views.idle_looks.IdleLooks`), inside the update of the judge's estimators, so the
drop is written with it. Until 2026-11-26 each judge's first 50 journeys held their room for good, and after
turnover every new journey was ``other``. A label (``pair``) is dated by its turn, counted already: it
keeps no estimator. A judge none of whose estimators has counted a judged turn for ``idle_seconds`` before
the start of a day of the worker's clock (retired: its own observations, which look, never come) has them
looked at so then, and its record deleted once empty (``streams/views/retired_maps.py``); the gauges of an
estimator dropped go with it (until 2026-11-26 they stayed, at their last figures).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from detectors import PredictionPoweredRate
from detectors.keyed import KeyedDetectors
from schemas.common import FAIL, QUALITY_DIMENSIONS
from streams.aggregate import Aggregator
from streams.emit import SEP, Emit
from streams.labels import OTHER, SourceGuards
from streams.metrics import Metrics
from streams.views.agreement import MAX_SEGMENT_VALUES
from streams.views.agreement_report import finite_or_none, interval_or_none
from streams.views.idle_looks import IDLE_SECONDS, IdleLooks
from streams.views.refresh import Refresh
from streams.views.retired_maps import drop_unheard_maps
from streams.views.worker_clock import WorkerClock

ALL = "*"


def _estimators() -> KeyedDetectors:
    return KeyedDetectors("PredictionPoweredRate")


class DefectRateView:
    kinds: tuple[str, ...] = ("judged", "pair", "contact")  # contacts: the clock (worker_clock.py)

    def __init__(
        self,
        metrics: Metrics,
        refresh_every: int = 200,
        refresh_seconds: float = 60.0,
        max_journeys: int = MAX_SEGMENT_VALUES,
        idle_seconds: float = IDLE_SECONDS,
    ) -> None:
        self.metrics = metrics
        self.refresh = Refresh(refresh_every, refresh_seconds)
        self.journeys = SourceGuards(max_journeys)  # bounds the estimators per judge
        self.idle_seconds = idle_seconds
        # derived, never persisted: when to look for each judge's idle estimators, the judges whose
        # estimators this worker made or recovered, and the clock on which those never heard from again are
        # looked at (retired_maps.py)
        self._looks = IdleLooks.per_idle(idle_seconds)
        self._judges: set[str] = set()
        self._clock = WorkerClock(idle_seconds)

    def rebalanced(self, aggregator: Aggregator) -> None:
        """Admit the journeys of the recovered estimators first: with a fresh guard a restarted worker
        admitted new ones in their place, and each restart added estimators to a judge's one record. Fresh
        guards, as a restart's (see ``SpikeView.rebalanced``)."""
        self.journeys = SourceGuards(self.journeys.max_values)
        self._judges = set()
        for ppi_key, _ in list(aggregator.records("ppi")):
            keyed = aggregator.detector(ppi_key)
            assert isinstance(keyed, KeyedDetectors)
            journeys = {inner.split(SEP, 1)[0] for inner, _ in keyed.items()}
            self._judges.add(ppi_key.split(SEP, 1)[1])
            self.journeys(ppi_key.split(SEP, 1)[1], "journey").admit(journeys - {ALL})
        self._looks.forget()
        self._clock.forget()
        self.refresh.forget()  # the owned judges' gauges are exported from the recovered state (export_owned)

    def apply(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> list[Emit]:
        """A judged turn's verdicts or a pair's label; on the worker's clock, the idle estimators of the
        judges that counted nothing for ``idle_seconds`` (retired: they never look themselves) dropped."""
        if obs["kind"] != "contact":
            self._observe(aggregator, obs, partition)
        if (look := self._clock.tick(obs["ts"])) is not None:
            for judge_id, dropped in drop_unheard_maps(
                aggregator, self._judges, "ppi", look, self.idle_seconds
            ).items():
                self._dropped(judge_id, dropped)
                keyed = aggregator.detector(f"ppi{SEP}{judge_id}")
                held = keyed.keys if isinstance(keyed, KeyedDetectors) else []
                self.journeys(judge_id, "journey").retain({inner.split(SEP, 1)[0] for inner in held})
        return []

    def _dropped(self, judge_id: str, dropped: list[str]) -> None:
        """Remove the gauges of ``judge_id``'s ``dropped`` estimators (``<journey><SEP><dimension>``)."""
        m = self.metrics
        for inner in dropped:
            journey, dimension = inner.split(SEP, 1)
            labels = {"judge_id": judge_id, "dimension": dimension, "journey": journey}
            m.calibrated_rate.remove_by_labels(labels)
            m.calibrated_rate_bound.remove_by_labels(labels)

    def _observe(self, aggregator: Aggregator, obs: dict[str, Any], partition: int | None) -> None:
        judge_id = obs["judge_id"]
        segment = obs["segment"]
        ts = obs["ts"]
        if obs["kind"] == "judged":
            verdicts = [(d, label == FAIL) for d, label in obs["labels"].items() if d in QUALITY_DIMENSIONS]
            if not verdicts:
                return

            def apply(keyed: KeyedDetectors) -> None:
                for dim, fail in verdicts:
                    keyed.update(journey + SEP + dim, fail, ts=ts)
                    keyed.update(ALL + SEP + dim, fail, ts=ts)
                self._drop_idle(keyed, judge_id, ts)

        else:
            dim = obs["dimension"]
            if dim not in QUALITY_DIMENSIONS:
                return
            fail, truth = obs["judge_label"] == FAIL, obs["human_label"] == FAIL
            verdicts = [(dim, fail)]
            pi = obs.get("inclusion_probability")
            weight = 1.0 / pi if pi else 1.0

            def apply(keyed: KeyedDetectors) -> None:
                for where in (journey, ALL):
                    if segment is None:  # the turn never arrived: never counted by a judged observation
                        keyed.update(where + SEP + dim, fail, truth, weight, ts=ts)
                    else:
                        keyed.at(where + SEP + dim).add_label(fail, truth, weight)
                self._drop_idle(keyed, judge_id, ts)

        # the guard only now: a value it admits must get an estimator, or a restart (which admits the
        # estimators' journeys) would map it otherwise
        journey = self.journeys(judge_id, "journey")(segment.get("journey") if segment else None)
        keyed = aggregator.update(f"ppi{SEP}{judge_id}", obs, partition, _estimators, apply)
        self._judges.add(judge_id)
        if keyed is not None and self.refresh((judge_id, journey), ts):
            self._export(keyed, judge_id, journey, self.metrics.label)

    def export_pending(self, aggregator: Aggregator) -> None:
        """The gauges of each judge and journey with observations since its last refresh."""
        for judge_id, journey in self.refresh.pending():
            keyed = aggregator.detector(f"ppi{SEP}{judge_id}")
            if isinstance(keyed, KeyedDetectors):
                self._export(keyed, judge_id, journey, self.metrics.recovered_label)

    def export_owned(self, aggregator: Aggregator, keys: Iterable[str], owns: Callable[[str], bool]) -> None:
        """After a rebalance, the gauges of every journey (and ``*``) of the recovered estimators at ``keys``
        of the judges this worker owns."""
        for parts, keyed in aggregator.owned_detectors(keys, "ppi", owns):
            if len(parts) == 1 and isinstance(keyed, KeyedDetectors):
                journeys = {inner.split(SEP, 1)[0] for inner in keyed.keys} - {ALL}
                for journey in sorted(journeys) or [ALL]:
                    self._export(keyed, parts[0], journey, self.metrics.admitted_label)

    def _export(
        self, keyed: KeyedDetectors, judge_id: str, journey: str, label_of: Callable[[str, str | None], str]
    ) -> None:
        """The gauges of ``journey`` (a key part) and of all journeys, of every dimension the judge's
        estimators hold (a judge prompted per dimension sends one a record, and the refresh, per judge and
        journey, went to whichever came)."""
        m = self.metrics
        judge = label_of("judge_id", judge_id)
        if judge != judge_id:  # folded into "other" by the metric guard: report.json only
            return
        journey_label = label_of("journey", journey)
        dims = sorted({inner.split(SEP, 1)[1] for inner, _ in keyed.items()})
        for dim in dims:
            dimension = label_of("dimension", dim)
            for where, label in ((ALL, ALL),) if journey == ALL else ((journey, journey_label), (ALL, ALL)):
                if where != ALL and (label != journey or journey == OTHER):
                    continue  # journeys the metric guard or the view fold into "other": report.json only
                ppi = keyed.get(where + SEP + dim)
                if ppi is None:  # a dimension this journey has no estimator of
                    continue
                low, high = ppi.interval
                m.calibrated_rate.labels(judge, dimension, label).set(ppi.estimate)
                m.calibrated_rate_bound.labels(judge, dimension, label, "lower").set(low)
                m.calibrated_rate_bound.labels(judge, dimension, label, "upper").set(high)

    def _drop_idle(self, keyed: KeyedDetectors, judge_id: str, ts: float) -> None:
        """At the judge's first observation of a day (and after a start), after its update: drop the
        estimators idle since ``idle_seconds`` before the day's start, and give up the room of the journeys
        none is left of (PredictionPoweredRate has no alarm to keep one for)."""
        now = self._looks.due(judge_id, ts)
        if now is not None and (dropped := keyed.drop_idle(now, self.idle_seconds)):
            journeys = {inner.split(SEP, 1)[0] for inner in keyed.keys}
            self.journeys(judge_id, "journey").retain(journeys)
            self._dropped(judge_id, dropped)

    def report(self, aggregator: Aggregator) -> dict[str, Any]:
        """``defect_rates``: one row per judge, quality dimension and journey (``*``: all journeys)."""
        rows = []
        for (judge_id,), keyed in aggregator.items("ppi"):
            assert isinstance(keyed, KeyedDetectors)
            for inner, ppi in keyed.items():
                assert isinstance(ppi, PredictionPoweredRate)
                journey, dimension = inner.split(SEP)
                rows.append(
                    {"judge_id": judge_id, "dimension": dimension, "journey": journey, **ppi_row(ppi)}
                )
        rows.sort(key=lambda r: (r["judge_id"], r["dimension"], r["journey"]))
        return {"defect_rates": rows}


def ppi_row(ppi: PredictionPoweredRate) -> dict[str, Any]:
    return {
        "n_judged": ppi.n_judged,
        "n_labelled": ppi.n_labelled,
        "coverage": ppi.n_labelled / ppi.n_judged if ppi.n_judged else None,
        "estimate": finite_or_none(ppi.estimate),
        "interval": interval_or_none(ppi.interval),
        "std_error": finite_or_none(ppi.std_error),
        "lambda_hat": finite_or_none(ppi.lambda_hat),
        "judge_rate": finite_or_none(ppi.judge_rate),
        "human_estimate": finite_or_none(ppi.human_estimate),
        "human_interval": interval_or_none(ppi.human_interval),
    }
