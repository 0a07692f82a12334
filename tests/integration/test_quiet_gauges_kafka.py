"""Throttled gauges on a real broker: a drained worker's agreement and version gauges come to what its
aggregates hold (the worker's timer exports what the throttles left since their last refresh), and after a
second worker joined, every series is on the worker that owns its shard and nowhere else, and those by judge
all on the second once the first stopped, before any new traffic (the others, by journey and model version,
once traffic brings their values to the second's label guards). Until 2026-11-26 a drained worker showed 594
pairs in a window holding 601, and after the scale-out the window, Gwet's AC1, sensitivity, calibrated-rate
and version series were gone from both workers."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.agreement_breakdown import AgreementBreakdown
from detectors.msprt import VersionComparison
from streams.aggregate import detector_types
from streams.emit import SEP
from streams.generator import TrafficGenerator, to_records
from tests.support.broker import KafkaBroker
from tests.support.verify import read_raw
from tests.support.wait import wait_until
from tests.support.worker import WorkerProcess, produce_records

pytestmark = pytest.mark.kafka

#: Gauges refreshed through a throttle (and re-exported after a rebalance), by shard
THROTTLED = (
    "convowatch_judge_gwet_ac1",
    "convowatch_judge_window_agreement_pairs",
    "convowatch_judge_segment_agreement_pairs",
    "convowatch_judge_sensitivity_ratio",
    "convowatch_calibrated_defect_rate_ratio",
    "convowatch_version_lift",
    "convowatch_version_calibrated_lift",
    "convowatch_version_outcome_lift",
    "convowatch_version_outcome_turns",
)
#: Those labelled by judge and dimension only: a worker re-exports them for every judge of its shards; the
#: others carry a segment value (journey, model version) and are re-exported for the values its label guards
#: pass already, those of the traffic it has had (a worker that has had none shows them once traffic comes)
BY_JUDGE = {
    "convowatch_judge_gwet_ac1",
    "convowatch_judge_window_agreement_pairs",
    "convowatch_judge_sensitivity_ratio",
}
Series = tuple[str, tuple[tuple[str, str], ...]]


def held(bootstrap: str, topic: str) -> dict[str, Any]:
    """The detectors the aggregates changelog holds (its last value of each key), by key."""
    table: dict[str, Any] = {}
    for key, value in read_raw(bootstrap, topic):
        name = orjson.loads(key or b'""')
        if value is None:
            table.pop(name, None)
            continue
        decoded = orjson.loads(value)
        if isinstance(decoded, str):  # JSON bytes kept as a JSON string
            decoded = orjson.loads(decoded)
        table[name] = decoded
    types = detector_types()
    return {
        name: types[value["detector"]["type"]].from_dict(value["detector"])
        for name, value in table.items()
        if isinstance(value, dict) and "detector" in value
    }


def expected(detectors: dict[str, Any]) -> dict[Series, float]:
    """Window pairs of each judge and dimension, turns and lift of each outcome test: what the gauges show
    of the held detectors."""
    out: dict[Series, float] = {}
    for name, detector in detectors.items():
        kind, *parts = name.split(SEP)
        if kind == "agreement_detail" and isinstance(detector, AgreementBreakdown):
            judge_id, dimension = parts
            for window in detector.windows:
                labels = (("dimension", dimension), ("judge_id", judge_id), ("window", window))
                out["convowatch_judge_window_agreement_pairs", labels] = detector.window(window).n
        elif kind == "version_outcomes" and isinstance(detector, VersionComparison):
            journey, outcome = parts
            for control, treatment in detector.live_pairs:
                test = detector.test(control, treatment)
                at = {"journey": journey, "outcome": outcome, "control": control, "treatment": treatment}
                out["convowatch_version_outcome_lift", tuple(sorted(at.items()))] = test.lift
                for arm, n in (("control", test.n_control), ("treatment", test.n_treatment)):
                    out["convowatch_version_outcome_turns", tuple(sorted({**at, "arm": arm}.items()))] = n
    return out


def differences(worker: WorkerProcess, want: dict[Series, float]) -> dict[Series, tuple[float | None, float]]:
    shown = worker.scrape()
    return {
        series: (shown.get(series), value)
        for series, value in want.items()
        if not (shown.get(series) == value or (math.isnan(value) and math.isnan(shown.get(series, 0.0))))
    }


def throttled(worker: WorkerProcess) -> set[Series]:
    return {series for series in worker.scrape() if series[0] in THROTTLED}


def by_judge(series: set[Series]) -> set[Series]:
    return {one for one in series if one[0] in BY_JUDGE}


def drained(worker: WorkerProcess) -> bool:
    lags = [v for (name, _), v in worker.scrape().items() if name == "convowatch_consumer_lag"]
    return bool(lags) and not any(lags)


def assigned(worker: WorkerProcess) -> float:
    return sum(v for (name, _), v in worker.scrape().items() if name == "convowatch_assigned_partitions")


def test_a_drained_worker_shows_what_it_holds_and_each_owner_its_shards_after_a_scale_out(
    kafka_broker: KafkaBroker,
    unique_name: Callable[[str], str],
    make_worker: Callable[..., WorkerProcess],
    tmp_path: Path,
) -> None:
    bootstrap = kafka_broker.bootstrap
    app_id = unique_name("app")
    env = {
        "CONVOWATCH_TOPIC_PREFIX": unique_name("quiet") + ".",
        "CONVOWATCH_APP_ID": app_id,
        "CONVOWATCH_LAG_INTERVAL_SECONDS": "0.5",
    }
    records = itertools.islice(to_records(TrafficGenerator(seed=13, rate=5.0).records(600, drain=True)), 8000)
    produce_records(bootstrap, env, tmp_path, ((r[2], r[3]) for r in records))

    first = make_worker(bootstrap, env)
    wait_until(lambda: drained(first), timeout=120, interval=0.5, ignore=(OSError,), message=first.log_tail)
    want = expected(held(bootstrap, f"{app_id}-aggregates-changelog"))
    assert any(name == "convowatch_judge_window_agreement_pairs" for name, _ in want)
    assert any(name == "convowatch_version_outcome_lift" for name, _ in want)
    # drained, the worker gets no batch: its timer (10 s) exports what the throttles left
    wait_until(
        lambda: not differences(first, want),
        timeout=30,
        interval=0.5,
        ignore=(OSError,),
        message=lambda: f"shown, held: {differences(first, want)}",
    )
    before = throttled(first)

    # a second worker joins, with no traffic: each shows the series of the shards it owns now, once (the
    # second, which has had no traffic, those by judge; the first all those of its shards)
    second = make_worker(bootstrap, env)

    def split() -> bool:
        a, b = throttled(first), throttled(second)
        whole = by_judge(a | b) == by_judge(before) and a | b <= before
        return assigned(first) > 0 and assigned(second) > 0 and whole and not a & b

    wait_until(
        split,
        timeout=90,
        interval=0.5,
        ignore=(OSError,),
        message=lambda: (
            f"missing: {sorted(before - throttled(first) - throttled(second))[:5]}, "
            f"on both: {sorted(throttled(first) & throttled(second))[:5]}\n"
            f"first worker:\n{first.log_tail(60)}\nsecond worker:\n{second.log_tail(60)}"
        ),
    )
    for worker in (first, second):  # and their values are what the owner holds (the same aggregates)
        mine = {series: value for series, value in want.items() if series in throttled(worker)}
        assert not differences(worker, mine)

    # the first stops: the second takes every shard over (whichever moved above), with no traffic
    first.stop()
    shown = {series: value for series, value in want.items() if series[0] in BY_JUDGE}
    wait_until(
        lambda: by_judge(throttled(second)) == by_judge(before) and not differences(second, shown),
        timeout=90,
        interval=0.5,
        ignore=(OSError,),
        message=lambda: (
            f"missing: {sorted(by_judge(before) - throttled(second))[:5]}, "
            f"shown, held: {differences(second, shown)}\n"
            f"second worker:\n{second.log_tail(60)}"
        ),
    )
