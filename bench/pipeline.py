"""The embedded core alone: events/s and µs per event, end to end and by stage.

Generates realistic traffic (turns, verdicts, late labels) in memory, then times
(1) the whole embedded pipeline as ``convowatch replay`` runs it, outputs serialised to JSON, and
(2) each stage in isolation over the same records: parse/validate, join, aggregate (detectors),
metrics, serialise outputs, and "other": the end-to-end time the stages leave out (ordering, batching,
flushes, glue). Metrics are updated inside join and aggregate, and their rows include them;
the metrics row (not to be added to the others) is the number of metric calls the two stages made (value
updates, child lookups, the label guard; counted on a second run) times each call's cost measured alone
(:func:`call_seconds`). Timing the stages with updates as no-ops instead was tried: the difference, a few
µs per event, drowned in the run-to-run noise (±2 µs).

    .venv/bin/python bench/pipeline.py [--events 200000] [--judge-per-dimension] [--json]

``--judge-per-dimension`` splits each judge verdict into one record per dimension (as from a judge prompted
per dimension), each observed on its own: more records and observations for the same turns, so compare
the µs per chat turn with a run without it.
"""

from __future__ import annotations

import argparse
import collections
import gc
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import orjson

from common import emit, machine

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

from schemas import Stream, parse_record
from streams.cli import tune_gc
from streams.config import Settings
from streams.embedded import run_records
from streams.generator import TrafficGenerator, to_records
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.series_budget import CappedCounter, CappedFamily


def make_records(events: int, seed: int) -> list[Any]:
    """About ``events`` records of turns, verdicts and human labels (10% of turns, some by two annotators)
    spanning about two event-hours, every label kept, as ``bench/throughput.py`` makes them: labels (median
    delay 10-20 minutes) then arrive interleaved with turns, as in production. At a fixed 500 turns per
    event-second (before 2026-11-25) the traffic spanned under two event-minutes, so nearly every label fell
    after its end and the figures had no human-label work in them."""
    rate = max(5.0, events / 2.1 / 7200)
    generator = TrafficGenerator(seed=seed, rate=rate, signals=False)  # turn-keyed streams only
    records = []
    for record in to_records(generator.records(events / rate / 2.1, drain=True)):
        records.append(record)
        if len(records) >= events:
            break
    return records


def per_dimension(records: list[Any]) -> list[Any]:
    """``records`` with each judge verdict split into one record per dimension (the perceptual scores with
    the first), at the verdict's event time, offsets renumbered."""
    split: list[Any] = []
    for ts, _, stream, raw, source, _ in records:
        if stream is not Stream.JUDGE_VERDICTS:
            split.append((ts, stream, raw, source))
            continue
        verdict = orjson.loads(raw)
        for i, one in enumerate(verdict["verdicts"]):
            part = {**verdict, "verdicts": [one]}
            if i:
                part.pop("scores", None)
            split.append((ts, stream, orjson.dumps(part), source))
    return [(ts, i, stream, raw, source, i) for i, (ts, stream, raw, source) in enumerate(split)]


#: The metric work of the join and the aggregation: prometheus_client's value updates, its child lookups
#: (``labels()``, where a view does not keep the child: prometheus_client's, or a family's with a series
#: budget, which finds an existing child first), and convowatch's label guard (``Metrics.label``)
CALLS: list[tuple[type, str]] = [
    (Counter, "inc"),
    (Gauge, "inc"),
    (Gauge, "dec"),
    (Gauge, "set"),
    (Histogram, "observe"),
    (MetricWrapperBase, "labels"),
    (CappedFamily, "labels"),
    (Metrics, "label"),
]


@contextmanager
def counting_calls(counts: collections.Counter[str]) -> Iterator[None]:
    """Count every call of :data:`CALLS` made inside the block, by ``Class.method``."""
    saved = [(cls, name, cls.__dict__[name]) for cls, name in CALLS]
    try:
        for cls, name, method in saved:

            def counted(
                self: Any,
                *args: Any,
                _method: Any = method,
                _kind: str = f"{cls.__name__}.{name}",
                **kwargs: Any,
            ) -> Any:
                counts[_kind] += 1
                return _method(self, *args, **kwargs)

            setattr(cls, name, counted)
        yield
    finally:
        for cls, name, method in saved:
            setattr(cls, name, method)


def call_seconds(calls: int = 200_000) -> dict[str, float]:
    """Seconds per call of each of :data:`CALLS`, measured alone (the loop's own cost taken off): value
    updates on a child of a two-label metric, ``labels()`` finding an existing child, the label guard
    passing a value it knows. A histogram has prometheus_client's default buckets."""
    registry = CollectorRegistry()
    counter = Counter("bench_counter", "bench", ["a", "b"], registry=registry)
    gauge = Gauge("bench_gauge", "bench", ["a", "b"], registry=registry).labels("x", "y")
    histogram = Histogram("bench_histogram", "bench", ["a", "b"], registry=registry).labels("x", "y")
    capped = CappedCounter("bench_capped", "bench", ["a", "b"], registry=registry, combinations=10)
    capped.labels("x", "y")
    metrics = Metrics(CollectorRegistry())
    metrics.label("journey", "shopper")

    def per_call(fn: Any, *args: Any) -> float:
        began = time.perf_counter()
        for _ in range(calls):
            fn(*args)
        return (time.perf_counter() - began) / calls

    began = time.perf_counter()
    for _ in range(calls):
        pass
    loop = (time.perf_counter() - began) / calls
    costs = {
        "Counter.inc": per_call(counter.labels("x", "y").inc, 1),
        "Gauge.inc": per_call(gauge.inc, 1),
        "Gauge.dec": per_call(gauge.dec, 1),
        "Gauge.set": per_call(gauge.set, 0.5),
        "Histogram.observe": per_call(histogram.observe, 0.5),
        "MetricWrapperBase.labels": per_call(counter.labels, "x", "y"),
        "CappedFamily.labels": per_call(capped.labels, "x", "y"),
        "Metrics.label": per_call(metrics.label, "journey", "shopper"),
    }
    return {kind: max(0.0, cost - loop) for kind, cost in costs.items()}


def join_and_aggregate(
    records: list[Any], parsed: list[Any], settings: Settings
) -> tuple[float, float, list[Any], list[Any]]:
    """Seconds of the join and of the aggregation over ``records`` (parsed already) on a fresh pipeline,
    and the observations and outputs they emitted."""
    p = Pipeline(settings, Metrics(CollectorRegistry()), batched=True)
    observations: list[Any] = []
    outputs: list[Any] = []

    def join() -> None:
        handle = p.joiner.handle
        for i, (record, event) in enumerate(zip(records, parsed, strict=True)):
            for e in handle(event, None, (record[4], record[5])):
                (observations if e.topic == "observations" else outputs).append(e)
            if i % 1024 == 0:
                p.joiner.flush()
        p.joiner.flush()

    def aggregate() -> None:
        apply = p.aggregator.apply
        for i, observation in enumerate(observations):
            outputs.extend(apply(observation.value))
            if i % 1024 == 0:
                p.aggregator.flush()
        p.aggregator.flush()

    return timed(join), timed(aggregate), observations, outputs


def timed(fn: Any) -> float:
    gc.collect()
    began = time.perf_counter()
    fn()
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--judge-per-dimension", action="store_true", help="one verdict record per dimension")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    tune_gc()
    records = make_records(args.events, args.seed)
    if args.judge_per_dimension:
        records = per_dimension(records)
    n = len(records)
    settings = Settings()

    def pipeline() -> Pipeline:
        return Pipeline(settings, Metrics(CollectorRegistry()), batched=True)

    # (1) end to end, as replay runs it (outputs serialised, not written)
    sink_bytes = [0]

    def publish(e: Any) -> None:
        sink_bytes[0] += len(orjson.dumps(e.value))

    total = timed(lambda: run_records(pipeline(), records, publish))

    # (2) stages in isolation, on the same records
    parsed: list[Any] = []
    t_parse = timed(lambda: parsed.extend(parse_record(r[2], r[3]) for r in records))

    t_join, t_aggregate, observations, outputs = join_and_aggregate(records, parsed, settings)
    # the metric calls the two stages made (counted on a second run), each at its cost measured alone
    counts: collections.Counter[str] = collections.Counter()
    with counting_calls(counts):
        join_and_aggregate(records, parsed, settings)
    costs = call_seconds()
    t_metrics = sum(count * costs[kind] for kind, count in counts.items())
    t_output = timed(lambda: [orjson.dumps(e.value) for e in outputs])

    rows = {
        "end_to_end": total,
        "parse_validate": t_parse,
        "join": t_join,
        "aggregate": t_aggregate,
        "metrics_included_in_join_and_aggregate": t_metrics,
        "serialise_outputs": t_output,
    }
    # what the stages timed alone leave out of the end-to-end run: merging by event time, batching,
    # flushes and glue (and the run-to-run noise between the two)
    rows["other"] = total - t_parse - t_join - t_aggregate - t_output
    turns = sum(1 for r in records if r[2] is Stream.CHAT_TURNS)
    result = {
        "events": n,
        "records_by_stream": dict(collections.Counter(r[2].value for r in records)),
        "events_per_second": n / total,
        "us_per_chat_turn": total / turns * 1e6,
        "us_per_event": {k: v / n * 1e6 for k, v in rows.items()},
        "observations": len(observations),
        "outputs": len(outputs),
        "metric_calls_per_event": {kind: count / n for kind, count in sorted(counts.items())},
        "metric_call_us": {kind: cost * 1e6 for kind, cost in costs.items()},
        "machine": machine(),
        "command": f"bench/pipeline.py --events {args.events}"
        + (" --judge-per-dimension" if args.judge_per_dimension else ""),
    }
    table = [
        ("events", f"{n:,} ({len(observations):,} observations, {len(outputs):,} outputs)"),
        ("end to end", f"{n / total:,.0f} events/s  ({total / n * 1e6:.2f} µs/event)"),
        ("  per chat turn", f"{total / turns * 1e6:.1f} µs ({turns:,} turns)"),
    ]
    table += [(f"  {k}", f"{v / n * 1e6:.2f} µs/event") for k, v in rows.items() if k != "end_to_end"]
    updates = ", ".join(
        f"{kind} {count / n:.2f} x {costs[kind] * 1e6:.2f} µs" for kind, count in sorted(counts.items())
    )
    table.append(("  metric calls per event", updates))
    emit(result, args.json, table)


if __name__ == "__main__":
    main()
