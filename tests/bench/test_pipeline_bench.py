"""bench/pipeline.py runs end to end on a small input and accounts for its metric updates."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge

REPO = Path(__file__).resolve().parents[2]


def test_the_pipeline_bench_reports_every_stage() -> None:
    done = subprocess.run(
        [sys.executable, "bench/pipeline.py", "--events", "3000", "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    result = json.loads(done.stdout)
    stages = result["us_per_event"]
    assert set(stages) == {
        "end_to_end",
        "parse_validate",
        "join",
        "aggregate",
        "metrics_included_in_join_and_aggregate",
        "serialise_outputs",
        "other",  # what the stages timed alone leave out: may be below 0 by noise on a run this small
    }
    assert all(value > 0 for stage, value in stages.items() if stage != "other")
    # the traffic spans event-hours, so the late human labels are in it (they fell after its end before)
    assert result["records_by_stream"]["human_labels"] > 0.03 * result["events"]
    assert stages["metrics_included_in_join_and_aggregate"] < stages["join"] + stages["aggregate"]
    calls = result["metric_calls_per_event"]
    assert calls["Gauge.set"] > 0 and calls["MetricWrapperBase.labels"] > 0 and calls["Metrics.label"] > 0
    assert calls["CappedFamily.labels"] > 0  # families with a series budget find their children first
    assert all(cost > 0 for cost in result["metric_call_us"].values())
    assert result["observations"] > 0 and result["outputs"] > 0


def test_per_dimension_verdicts_split_every_verdict_and_keep_the_rest() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from pipeline import make_records, per_dimension
    finally:
        sys.path.remove(str(REPO / "bench"))
    from schemas import Stream

    records = make_records(2000, 3)
    split = per_dimension(records)
    verdicts = [json.loads(r[3]) for r in records if r[2] is Stream.JUDGE_VERDICTS]
    parts = [json.loads(r[3]) for r in split if r[2] is Stream.JUDGE_VERDICTS]
    assert len(parts) == sum(len(v["verdicts"]) for v in verdicts) > len(verdicts)
    assert all(len(p["verdicts"]) == 1 for p in parts)
    assert [r[3] for r in split if r[2] is not Stream.JUDGE_VERDICTS] == [
        r[3] for r in records if r[2] is not Stream.JUDGE_VERDICTS
    ]
    assert [r[5] for r in split] == list(range(len(split)))  # offsets renumbered
    scored = [v for v in verdicts if v.get("scores")]
    assert sum(1 for p in parts if p.get("scores")) == len(scored)  # the scores ride with the first


def test_counting_calls_counts_by_kind_and_restores_what_it_patched_even_on_error() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from pipeline import CALLS, counting_calls
    finally:
        sys.path.remove(str(REPO / "bench"))
    originals = [cls.__dict__[name] for cls, name in CALLS]
    registry = CollectorRegistry()
    counter = Counter("c", "c", ["a"], registry=registry)
    gauge = Gauge("g", "g", registry=registry)
    counts: collections.Counter[str] = collections.Counter()
    with pytest.raises(RuntimeError), counting_calls(counts):
        counter.labels("x").inc()
        counter.labels("x").inc(2)
        gauge.set(5)
        raise RuntimeError("a stage failed")
    assert counts == {"MetricWrapperBase.labels": 2, "Counter.inc": 2, "Gauge.set": 1}
    assert registry.get_sample_value("c_total", {"a": "x"}) == 3.0  # the calls still happened
    assert registry.get_sample_value("g") == 5.0
    assert [cls.__dict__[name] for cls, name in CALLS] == originals
