"""Garbage-collector pauses of a join holding many pending turns: its entries kept as JSON bytes (what the
join keeps since 2026-11-25, embedded and in the Kafka worker's table) against live dicts and lists (before).

Python's collector scans every tracked container (dict, list) of the generations it collects, and pauses
the worker while it does. A pending turn held as dicts and lists is about nine tracked containers; a
million of them (the join's default cap, ``CONVOWATCH_JOIN_MAX_ENTRIES``) made a collection of the middle
generation stop the process for seconds, which no escalation's latency target survives. JSON bytes are not
tracked at all.

Each representation runs in a fresh interpreter with the worker's collector thresholds
(``streams.cli.tune_gc``), on the same generated traffic: ``--turns`` chat turns with their judge verdicts,
``--label-share`` of them with a late human label, through the embedded pipeline's ``ingest`` (parse and join,
the code the worker's join agent runs, without keeping outputs for a replay; state flushed every 1,000
records, as on Kafka). Reported for each:
the collections by generation while the state grew (how many, the longest, their total), a full collection
timed at the end (what the oldest generation's automatic one costs then), the tracked objects the state
added per pending turn, the CPU per input record, and the RSS grown per pending turn.

    .venv/bin/python bench/gc_pauses.py                  # 1,000,000 turns each
    .venv/bin/python bench/gc_pauses.py --turns 200000 --json
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry

from bench.soak import BATCH, rss_bytes, traffic
from streams.cli import tune_gc
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.state import DictStore

REPRESENTATIONS = {"json": "JSON bytes", "objects": "dicts and lists"}


def measure(values: str, turns: int, seed: int = 11, label_share: float = 0.1) -> dict[str, Any]:
    """Grow a join to ``turns`` pending turns holding its entries as ``values``; what the collector did."""
    tune_gc()
    gc.collect()
    pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
    began = [0.0]

    def watch(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses[info["generation"]].append(time.perf_counter() - began[0])

    store = DictStore(json_values=values == "json")
    pipeline = Pipeline(Settings(), Metrics(CollectorRegistry()), pending_store=store, batched=True)
    rss_before, tracked_before = rss_bytes()[0], len(gc.get_objects())
    records = 0
    gc.callbacks.append(watch)
    cpu = time.process_time()
    try:
        for stream, raw in traffic(turns, 100.0, seed, label_share):
            pipeline.ingest(stream, raw, source_topic=stream.value, partition=0, offset=records)
            records += 1
            if records % BATCH == 0:
                pipeline.flush()
        pipeline.flush()
        cpu = time.process_time() - cpu
    finally:
        gc.callbacks.remove(watch)
    pending = len(pipeline.joiner.state)
    tracked = len(gc.get_objects()) - tracked_before
    rss = rss_bytes()[0]
    full = time.perf_counter()
    gc.collect()
    full = time.perf_counter() - full
    return {
        "values": values,
        "records": records,
        "pending": pending,
        "tracked_per_pending_turn": round(tracked / pending, 2),
        "collections": {
            str(generation): {
                "count": len(found),
                "longest_ms": round(max(found, default=0.0) * 1e3, 1),
                "total_s": round(sum(found), 2),
            }
            for generation, found in pauses.items()
        },
        "full_collection_at_end_ms": round(full * 1e3, 1),
        "cpu_us_per_record": round(cpu / records * 1e6, 1),
        "rss_bytes_per_pending_turn": round((rss - rss_before) / pending),
    }


def run_child(values: str, args: argparse.Namespace) -> dict[str, Any]:
    """One representation in a fresh interpreter (its heap, collector state and RSS its own)."""
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        command = [sys.executable, __file__, "--values", values, "--turns", str(args.turns)]
        command += ["--seed", str(args.seed), "--label-share", str(args.label_share)]
        subprocess.run([*command, "--result-file", handle.name], check=True, cwd=REPO)
        result: dict[str, Any] = json.loads(Path(handle.name).read_text())
        return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=1_000_000, help="chat turns (pending at the end)")
    parser.add_argument("--label-share", type=float, default=0.1, help="turns that get a late human label")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--values", choices=sorted(REPRESENTATIONS), help="run this one only, here")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of a table")
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)  # a child writes its result here
    args = parser.parse_args(argv)
    if args.values:
        result = measure(args.values, args.turns, args.seed, args.label_share)
        if args.result_file:
            args.result_file.write_text(json.dumps(result))
        else:
            print(json.dumps(result, indent=2))
        return 0
    results = [run_child(values, args) for values in REPRESENTATIONS]
    if args.json:
        machine = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
        print(json.dumps({"machine": machine, "results": results}, indent=2))
        return 0
    rows: list[tuple[str, Any]] = [
        ("pending turns", lambda r: f"{r['pending']:,}"),
        ("tracked objects per pending turn", lambda r: r["tracked_per_pending_turn"]),
    ]
    for generation in "012":
        rows.append(
            (
                f"generation {generation}: count, longest, total",
                lambda r, g=generation: "{count}, {longest_ms} ms, {total_s} s".format(**r["collections"][g]),
            )
        )
    rows += [
        ("full collection at the end", lambda r: f"{r['full_collection_at_end_ms']} ms"),
        ("CPU per input record", lambda r: f"{r['cpu_us_per_record']} µs"),
        ("RSS grown per pending turn", lambda r: f"{r['rss_bytes_per_pending_turn']:,} B"),
    ]
    print(f"{'':<40}" + "".join(f"{REPRESENTATIONS[r['values']]:>28}" for r in results))
    for label, cell in rows:
        print(f"{label:<40}" + "".join(f"{cell(r)!s:>28}" for r in results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
