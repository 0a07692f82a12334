"""bench/pipeline.py runs end to end on a small input and accounts for its metric updates."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path

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
        "metrics_in_join_and_aggregate",
        "serialise_outputs",
    }
    assert all(value > 0 for value in stages.values())
    assert stages["metrics_in_join_and_aggregate"] < stages["join"] + stages["aggregate"]
    assert result["metric_updates_per_event"]["Gauge.set"] > 0  # the join's pending gauge, at least
    assert result["observations"] > 0 and result["outputs"] > 0


def test_counting_updates_counts_by_kind_and_restores_prometheus_client() -> None:
    sys.path.insert(0, str(REPO / "bench"))
    try:
        from pipeline import counting_updates
    finally:
        sys.path.remove(str(REPO / "bench"))
    inc, set_ = Counter.inc, Gauge.set
    registry = CollectorRegistry()
    counter = Counter("c", "c", registry=registry)
    gauge = Gauge("g", "g", registry=registry)
    counts: collections.Counter[str] = collections.Counter()
    with counting_updates(counts):
        counter.inc()
        counter.inc(2)
        gauge.set(5)
    assert counts == {"Counter.inc": 2, "Gauge.set": 1}
    assert registry.get_sample_value("c_total") == 3.0  # the updates still happened
    assert registry.get_sample_value("g") == 5.0
    assert (Counter.inc, Gauge.set) == (inc, set_)
