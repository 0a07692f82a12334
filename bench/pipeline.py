"""The embedded core alone: events/s and µs per event, end to end and by stage.

Generates realistic traffic (turns, verdicts, late labels) in memory, then times
(1) the whole embedded pipeline as ``convowatch replay`` runs it, outputs serialised to JSON, and
(2) each stage in isolation over the same records: parse/validate, join, aggregate (detectors),
serialise outputs. Metrics are updated inside join and aggregate; ``--no-metrics`` shows their share.

    .venv/bin/python bench/pipeline.py [--events 200000] [--json]
"""

from __future__ import annotations

import argparse
import gc
import time
from typing import Any

import orjson

from common import emit, machine

from prometheus_client import CollectorRegistry

from schemas import parse_record
from streams.cli import tune_gc
from streams.config import Settings
from streams.embedded import run_records
from streams.generator import TrafficGenerator, to_records
from streams.metrics import Metrics
from streams.pipeline import Pipeline


def make_records(events: int, seed: int) -> list[Any]:
    generator = TrafficGenerator(seed=seed, rate=500.0, signals=False)  # as measured before signals existed
    records = []
    for record in to_records(generator.records(events / 500.0 / 2.1)):
        records.append(record)
        if len(records) >= events:
            break
    return records


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
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    tune_gc()
    records = make_records(args.events, args.seed)
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

    p = pipeline()
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

    t_join = timed(join)

    def aggregate() -> None:
        apply = p.aggregator.apply
        for i, observation in enumerate(observations):
            outputs.extend(apply(observation.value))
            if i % 1024 == 0:
                p.aggregator.flush()
        p.aggregator.flush()

    t_aggregate = timed(aggregate)
    t_output = timed(lambda: [orjson.dumps(e.value) for e in outputs])

    rows = {
        "end_to_end": total,
        "parse_validate": t_parse,
        "join": t_join,
        "aggregate": t_aggregate,
        "serialise_outputs": t_output,
    }
    result = {
        "events": n,
        "events_per_second": n / total,
        "us_per_event": {k: v / n * 1e6 for k, v in rows.items()},
        "observations": len(observations),
        "outputs": len(outputs),
        "machine": machine(),
        "command": f"bench/pipeline.py --events {args.events}",
    }
    table = [
        ("events", f"{n:,} ({len(observations):,} observations, {len(outputs):,} outputs)"),
        ("end to end", f"{n / total:,.0f} events/s  ({total / n * 1e6:.2f} µs/event)"),
    ]
    table += [(f"  {k}", f"{v / n * 1e6:.2f} µs/event") for k, v in rows.items() if k != "end_to_end"]
    emit(result, args.json, table)


if __name__ == "__main__":
    main()
