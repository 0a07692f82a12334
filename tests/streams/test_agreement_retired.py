"""A retired judge's agreement and calibration aggregates go after ``idle_seconds`` of the worker's clock,
with their gauges, and a restart neither brings them back nor defers their drop.

Until 2026-11-26 they stayed for good: the cumulative figures had no idle rule, the breakdowns' looked at the
judge's own pairs, which a retired judge never sends, and ``ConvowatchJudgeAgreementLow`` of a judge replaced
for disagreeing with humans kept firing, also after a restart.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from streams.aggregate import Aggregator
from streams.metrics import Metrics
from streams.shard_gauges import export_agreement
from streams.views.agreement import AgreementView
from streams.views.calibration import CalibrationView
from tests.support.restartable import RestartableView

DAY = 86400.0
OLD, NEW = "judge-old", "judge-new"
DIMENSIONS = ("relevance", "safety")
PAIR_KINDS = ("agreement", "agreement_detail", "agreement_vendor", "calibration")


class Worker(RestartableView):
    """The agreement and calibration views over one aggregator whose state is stored as JSON."""

    def make_view(self, metrics: Metrics) -> AgreementView:
        return AgreementView(metrics, refresh_every=1)

    def _start(self) -> None:
        self.registry = CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.view = self.make_view(self.metrics)
        views = [self.view, CalibrationView(self.metrics, 1)]
        self.aggregator = Aggregator(self.metrics, self.store, views=views)

    def apply(self, obs: dict[str, Any]) -> None:
        self.offset += 1
        self.aggregator.apply({**obs, "src": ["o", self.offset, 0]})

    def pair(self, judge: str, ts: float, model_version: str = "m1") -> None:
        """The judge's verdict on a turn at ``ts``, its pairs with a human label and that label."""
        human = "fail" if self.rng.random() < 0.3 else "pass"
        agrees = judge == NEW or self.rng.random() < 0.5  # the old judge: a coin against the humans
        label = human if agrees else ("pass" if human == "fail" else "fail")
        self.apply(
            {"kind": "judged", "judge_id": judge, "labels": dict.fromkeys(DIMENSIONS, label), "ts": ts}
        )
        for dimension in ("relevance", "safety"):
            self.apply(
                {
                    "kind": "pair",
                    "turn_id": f"t{self.offset}",
                    "judge_id": judge,
                    "judge_version": "v1",
                    "dimension": dimension,
                    "judge_label": label,
                    "human_label": human,
                    "inclusion_probability": None,
                    "confidence": 0.8,
                    "segment": {"journey": "shopper", "model_version": model_version, "intent": "refund"},
                    "ts": ts,
                }
            )
        self.apply(
            {
                "kind": "labelled",
                "turn_id": f"t{self.offset}",
                "vendor_id": "acme",
                "judges": {judge: {"relevance": label}},
                "labels": {"relevance": human},
                "label_ts": ts + 3600.0,
                "ts": ts,
            }
        )

    def audit(self, judge: str, start: float = 0.0, turns: int = 40) -> None:
        """``turns`` of the judge's turns labelled by humans, a minute apart from ``start`` (:meth:`pair`)."""
        for i in range(turns):
            self.pair(judge, start + i * 60.0)

    def contact(self, ts: float) -> None:
        """A turn of another judge's shard: only its contact comes to this worker (on Kafka)."""
        self.apply({"kind": "contact", "conversation_id": f"c{self.offset}", "turn_id": "t", "ts": ts})

    def keys(self, judge: str) -> set[str]:
        return {k for k in self.state() if k.split("\x1f")[0] in PAIR_KINDS and k.split("\x1f")[1] == judge}

    def series(self, judge: str) -> set[str]:
        return {
            s.name
            for family in self.registry.collect()
            for s in family.samples
            if s.labels.get("judge_id") == judge
        }

    def restart_and_export(self) -> None:
        """What the worker does after a restart: recover, then export the gauges of the state it owns."""
        self.restart()
        keys = [k for k, _ in self.store.items()]
        export_agreement(self.metrics, self.aggregator, keys, lambda shard: True)
        self.aggregator.export_owned(keys, lambda shard: True)


def _traffic(worker: Worker, days: float, other_judge: bool = True) -> None:
    """The old judge's pairs for its first 3 days, then the new judge's (or only contacts of turns on
    another worker's shard) every 3 hours."""
    ts = 0.0
    while ts < days * DAY:
        worker.contact(ts)  # every turn's, on every worker (the clock: worker_clock.py)
        if ts < 3 * DAY:
            worker.pair(OLD, ts)
        elif other_judge:
            worker.pair(NEW, ts)
        else:
            worker.contact(ts)
        ts += 3 * 3600.0


def test_a_retired_judges_aggregates_and_gauges_go_after_the_idle_period_of_other_judges_traffic() -> None:
    worker = Worker()
    _traffic(worker, days=32)
    assert worker.keys(OLD) == {
        f"{kind}\x1f{OLD}\x1f{dimension}"
        for kind in PAIR_KINDS
        for dimension in ("relevance", "safety")
        if kind != "agreement_vendor" or dimension == "relevance"
    }
    assert "convowatch_judge_cohen_kappa" in worker.series(OLD)  # 30 days after its last pair, not before
    _traffic_from(worker, 32 * DAY, 35 * DAY)
    assert worker.keys(OLD) == set()
    assert worker.series(OLD) == set()
    assert len(worker.keys(NEW)) == 7
    assert {"convowatch_judge_cohen_kappa", "convowatch_judge_sensitivity_ratio"} <= worker.series(NEW)
    assert [row["judge_id"] for row in worker.view.rows(worker.aggregator)] == [NEW, NEW]

    worker.restart_and_export()
    assert worker.series(OLD) == set()
    assert "convowatch_judge_cohen_kappa" in worker.series(NEW)


def _traffic_from(worker: Worker, start: float, end: float) -> None:
    ts = start
    while ts < end:
        worker.contact(ts)
        worker.pair(NEW, ts)
        ts += 3 * 3600.0


def test_a_worker_holding_only_the_retired_judges_shard_drops_it_on_its_contacts() -> None:
    worker = Worker()
    _traffic(worker, days=35, other_judge=False)
    assert worker.keys(OLD) == set()
    assert worker.series(OLD) == set()


def test_a_restart_neither_defers_the_drop_nor_hastens_it() -> None:
    # the judge's newest verdict time is kept in its breakdown: a restart on day 20 drops what a run without
    # it drops, when it does (until 2026-11-26 every judge counted as heard at the restart, and the retired
    # one went 30 days after that, on day 51, not on day 34)
    once, restarted = Worker(), Worker()
    _traffic(once, days=20)
    _traffic(restarted, days=20)
    restarted.restart_and_export()
    assert restarted.series(OLD) == once.series(OLD) != set()
    _traffic_from(once, 20 * DAY, 33 * DAY)
    _traffic_from(restarted, 20 * DAY, 33 * DAY)
    assert len(once.keys(OLD)) == len(restarted.keys(OLD)) == 7
    _traffic_from(once, 33 * DAY, 35 * DAY)
    _traffic_from(restarted, 33 * DAY, 35 * DAY)
    assert once.keys(OLD) == set() and once.series(OLD) == set()
    assert restarted.keys(OLD) == set() and restarted.series(OLD) == set()
    assert restarted.state() == once.state()


def test_an_active_judges_figures_stay_through_a_month_without_human_labels() -> None:
    # pairs come only as humans label: a dimension audited less often than monthly, or a pause in labelling,
    # must not cost a judge that still sends verdicts its cumulative figures (the review of the first
    # version of the rule: 40 pairs every 35 days never reached ConvowatchJudgeAgreementLow's 50)
    worker = Worker()
    for audit in (0.0, 35 * DAY):
        worker.audit(OLD, audit)
        day = audit
        while day < audit + 35 * DAY:  # the judge's verdicts, every hour, with no label
            labels = {"relevance": "pass", "safety": "pass"}
            worker.apply({"kind": "judged", "judge_id": OLD, "labels": labels, "ts": day})
            day += 3600.0
    assert len(worker.keys(OLD)) == 6  # its vendor figures went with their labels (labels only decide them)
    assert (
        worker.registry.get_sample_value(
            "convowatch_judge_agreement_pairs", {"judge_id": OLD, "dimension": "safety"}
        )
        == 80.0
    )


def _verdicts(worker: Worker, start: float, end: float, dimensions: tuple[str, ...]) -> None:
    """OLD's verdicts on ``dimensions``, every hour, with no label."""
    ts = start
    while ts < end:
        worker.apply(
            {"kind": "judged", "judge_id": OLD, "labels": dict.fromkeys(dimensions, "pass"), "ts": ts}
        )
        ts += 3600.0


def test_a_dimension_the_judge_no_longer_judges_goes_while_it_judges_others() -> None:
    # safety handed to another judge: OLD's safety figures go 30 days after its last safety verdict and pair
    worker = Worker()
    worker.audit(OLD)
    _verdicts(worker, DAY, 40 * DAY, ("relevance",))
    assert {k.split("\x1f")[2] for k in worker.keys(OLD) if not k.startswith("agreement_vendor")} == {
        "relevance"
    }


def test_a_restart_whose_first_observation_is_an_old_label_does_not_hasten_a_drop() -> None:
    # the first observation after the restart is a label of a turn 40 days old: the judge's verdicts since
    # the start count from its first verdict or contact, not from that label's turn
    once, restarted = Worker(), Worker()
    for worker in (once, restarted):
        worker.audit(OLD)
        _verdicts(worker, DAY, 40 * DAY, ("relevance", "safety"))
    restarted.restart()
    for worker in (once, restarted):
        worker.apply(
            {
                "kind": "labelled",
                "turn_id": "t-old",
                "vendor_id": "acme",
                "judges": {OLD: {"relevance": "pass"}},
                "labels": {"relevance": "pass"},
                "label_ts": 40 * DAY,
                "ts": 60.0,
            }
        )
        worker.contact(40 * DAY)  # a current turn's: the clock moves, and looks, before OLD's next verdict
        _verdicts(worker, 40 * DAY, 45 * DAY, ("relevance", "safety"))
    pairs = {"agreement", "agreement_detail", "calibration"}
    assert {k.split("\x1f")[0] for k in restarted.keys(OLD)} >= pairs
    assert restarted.keys(OLD) == once.keys(OLD)


def test_a_late_pair_of_an_old_turn_after_a_restart_does_not_hasten_a_drop() -> None:
    # a human labels a 35-day-old turn right after a restart: the (judge, dimension) still counts as heard
    # at the start, not at that turn's time
    once, restarted = Worker(), Worker()
    for worker in (once, restarted):
        worker.audit(OLD)
        _verdicts(worker, DAY, 39 * DAY, ("relevance", "safety"))
    restarted.restart()
    for worker in (once, restarted):
        worker.contact(40 * DAY)
        worker.pair(OLD, 5 * DAY)
        _verdicts(worker, 40 * DAY, 41.5 * DAY, ("relevance",))
    assert restarted.keys(OLD) == once.keys(OLD)
    assert {k.split("\x1f")[2] for k in restarted.keys(OLD)} == {"relevance", "safety"}


def test_a_judge_from_before_turn_times_were_kept_counts_from_the_first_look() -> None:
    worker = Worker()
    _traffic(worker, days=4)
    worker.without_last_seen(
        k for k in worker.state() if k.split("\x1f")[0] in ("agreement_detail", "agreement_vendor")
    )
    _traffic_from(worker, 4 * DAY, 33 * DAY)
    assert len(worker.keys(OLD)) == 7  # stamped on day 4: idle from then on
    _traffic_from(worker, 33 * DAY, 36 * DAY)
    assert worker.keys(OLD) == set()


def test_an_idle_segment_values_gauges_go_with_its_figures() -> None:
    worker = Worker()
    for hours in range(0, 40 * 24, 3):
        worker.pair(NEW, hours * 3600.0, "m1" if hours < 3 * 24 else "m2")
    versions = {
        s.labels["segment_value"]
        for family in worker.registry.collect()
        for s in family.samples
        if s.name.startswith("convowatch_judge_segment_") and s.labels["segment"] == "model_version"
    }
    assert versions == {"m2"}
    assert worker.keys(NEW)  # the judge itself stays
