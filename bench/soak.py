"""Bounded memory: does the join's state stay bounded over a long run with late labels?

Feeds ``--turns`` generated turns (each with a judge verdict; ``--label-share`` of them get a human label
minutes to hours of event time later) through the embedded pipeline's ``ingest`` (parse + join: the code the
Kafka worker's join agent runs), in batches of 1,000 as on Kafka, and samples the pending-turn count,
evictions and the process's RSS as it goes. Two scenarios by default, one per bound:

- ``ttl``: event-time TTL ``--ttl`` (1 h) binds, the cap is far away; steady state about rate x TTL turns;
- ``cap``: ``--max-entries`` (100,000) binds, the TTL (7 days) never does.

Bytes per pending turn come two ways: from tracemalloc over a fresh join holding ``--calibrate`` turns (the
Python heap the state costs), and as (peak RSS - RSS before the run) / peak pending (everything the process
grew by, allocator slack and the generator's buffer of not-yet-due labels included).

    .venv/bin/python bench/soak.py                       # 1,000,000 turns per scenario
    .venv/bin/python bench/soak.py --scenario cap --turns 200000 --json
    .venv/bin/python bench/soak.py --with-aggregates     # also run the aggregation views (much slower)
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
import tracemalloc
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline

BATCH = 1_000  # records per state flush, as the Kafka agent's batch_max
SCENARIOS = {
    "ttl": {"ttl": 3600.0, "max_entries": 1_000_000},
    "cap": {"ttl": 7 * 86400.0, "max_entries": 100_000},
}


def rss_bytes() -> tuple[int, int]:
    """(current, peak) resident set size of this process, from /proc."""
    values = {}
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                values[line.split(":")[0]] = int(line.split()[1]) * 1024
    return values["VmRSS"], values["VmHWM"]


CODES = {b"c": Stream.CHAT_TURNS, b"j": Stream.JUDGE_VERDICTS, b"h": Stream.HUMAN_LABELS}
GENERATOR = """
import sys, orjson
from streams.generator import TrafficGenerator
turns, rate, seed, share = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
out, seen = sys.stdout.buffer, 0
generator = TrafficGenerator(seed=seed, rate=rate, label_share=share, signals=False)
for _, stream, event in generator.records(turns / rate * 1.1 + 60):
    if stream == "chat_turns":
        seen += 1
        if seen > turns:
            break
    out.write(stream[0].encode() + orjson.dumps(event) + b"\\n")
"""


def traffic(turns: int, rate: float, seed: int, label_share: float) -> Iterator[tuple[Stream, bytes]]:
    """Generated records until ``turns`` chat turns were produced (labels due later are dropped). The
    generator runs in a child process: its buffer of not-yet-due late labels (up to 6 h of event time)
    would otherwise count in this process's RSS."""
    command = [sys.executable, "-c", GENERATOR, str(turns), str(rate), str(seed), str(label_share)]
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, bufsize=1 << 20) as child:
        assert child.stdout is not None
        for line in child.stdout:
            yield CODES[line[:1]], line[1:-1]
    if child.returncode:
        raise RuntimeError(f"traffic generator failed with exit status {child.returncode}")


@dataclass
class Sample:
    records: int
    turns: int
    pending: int
    evicted_ttl: int
    evicted_capacity: int
    rss_mb: float
    seconds: float


@dataclass
class SoakResult:
    scenario: str
    turns: int
    records: int
    rate: float
    ttl_seconds: float
    max_entries: int
    seconds: float
    records_per_second: float
    peak_pending: int
    final_pending: int
    evicted_ttl: int
    evicted_capacity: int
    rss_before_mb: float
    rss_peak_mb: float
    rss_end_mb: float
    rss_bytes_per_pending_turn: float
    ttl_violations: int  # entries older than the TTL left after an eviction pass (must be 0)
    samples: list[Sample] = field(default_factory=list)


def soak(
    scenario: str,
    turns: int,
    rate: float = 100.0,
    ttl: float = 3600.0,
    max_entries: int = 1_000_000,
    seed: int = 11,
    label_share: float = 0.1,
    sample_every: int = 100_000,
    with_aggregates: bool = False,
    on_sample: Callable[[Sample], None] | None = None,
) -> SoakResult:
    """Run one soak; at every sample an explicit eviction pass checks the TTL invariant."""
    gc.collect()
    rss_before, _ = rss_bytes()
    settings = Settings(join_ttl_seconds=ttl, join_max_entries=max_entries)
    registry = CollectorRegistry()
    pipeline = Pipeline(settings, Metrics(registry), batched=True)
    joiner = pipeline.joiner

    def evicted(reason: str) -> int:
        return int(registry.get_sample_value("convowatch_join_evictions_total", {"reason": reason}) or 0)

    samples: list[Sample] = []
    peak_pending = records = seen_turns = ttl_violations = 0
    started = time.perf_counter()

    def sample() -> None:
        nonlocal ttl_violations
        pipeline.flush()
        joiner.evict()
        pipeline.flush()
        horizon = joiner.watermark - ttl
        ttl_violations += sum(1 for _, entry in joiner.store.items() if entry["last"] < horizon)
        s = Sample(
            records,
            seen_turns,
            len(joiner.state),
            evicted("ttl"),
            evicted("capacity"),
            round(rss_bytes()[0] / 1e6, 1),
            round(time.perf_counter() - started, 1),
        )
        samples.append(s)
        if on_sample is not None:
            on_sample(s)

    for stream, raw in traffic(turns, rate, seed, label_share):
        for emit in pipeline.ingest(stream, raw, source_topic=stream.value, partition=0, offset=records):
            if with_aggregates and emit.topic == "observations":
                pipeline.aggregate_in_process(emit.value, 0)
        records += 1
        seen_turns += stream is Stream.CHAT_TURNS
        if records % BATCH == 0:
            pipeline.flush()
            peak_pending = max(peak_pending, len(joiner.state))
        if records % sample_every == 0:
            sample()
    sample()
    seconds = time.perf_counter() - started
    peak_pending = max(peak_pending, *(s.pending for s in samples))
    rss_end, rss_peak = rss_bytes()
    return SoakResult(
        scenario=scenario,
        turns=seen_turns,
        records=records,
        rate=rate,
        ttl_seconds=ttl,
        max_entries=max_entries,
        seconds=round(seconds, 1),
        records_per_second=round(records / seconds),
        peak_pending=peak_pending,
        final_pending=len(joiner.state),
        evicted_ttl=evicted("ttl"),
        evicted_capacity=evicted("capacity"),
        rss_before_mb=round(rss_before / 1e6, 1),
        rss_peak_mb=round(rss_peak / 1e6, 1),
        rss_end_mb=round(rss_end / 1e6, 1),
        rss_bytes_per_pending_turn=round((rss_peak - rss_before) / max(peak_pending, 1)),
        ttl_violations=ttl_violations,
        samples=samples,
    )


def traced_bytes_per_pending_turn(turns: int = 20_000, seed: int = 3) -> dict[str, Any]:
    """Python heap held per pending turn (chat turn + verdict, no label): tracemalloc over a fresh join."""
    records = list(traffic(turns, 100.0, seed, label_share=0.0))
    pipeline = Pipeline(Settings(), Metrics(CollectorRegistry()), batched=True)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for i, (stream, raw) in enumerate(records):
        pipeline.ingest(stream, raw, source_topic=stream.value, partition=0, offset=i)
        if i % BATCH == 0:
            pipeline.flush()
    pipeline.flush()
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    pending = len(pipeline.joiner.state)
    return {"pending": pending, "bytes": held, "bytes_per_pending_turn": round(held / pending)}


def run_child(scenario: str, argv: list[str]) -> SoakResult:
    """Run one scenario in a fresh interpreter (its progress lines pass through) and read its result."""
    rest = [a for a in argv if not a.startswith("--scenario")]
    if "--scenario" in argv:
        del rest[rest.index(argv[argv.index("--scenario") + 1])]
    with tempfile.NamedTemporaryFile(suffix=".json") as handle:
        command = [sys.executable, __file__, *rest, "--scenario", scenario, "--result-file", handle.name]
        subprocess.run(command, check=True)
        data = json.loads(Path(handle.name).read_text())
    data["samples"] = [Sample(**s) for s in data["samples"]]
    return SoakResult(**data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scenario", choices=["ttl", "cap", "both"], default="both")
    parser.add_argument("--turns", type=int, default=1_000_000, help="chat turns per scenario")
    parser.add_argument("--rate", type=float, default=100.0, help="turns per event-time second")
    parser.add_argument("--ttl", type=float, default=None, help="join TTL, event-time seconds")
    parser.add_argument("--max-entries", type=int, default=None, help="join cap on pending turns")
    parser.add_argument("--label-share", type=float, default=0.1, help="turns that get a late human label")
    parser.add_argument("--sample-every", type=int, default=100_000, help="records between samples")
    parser.add_argument("--calibrate", type=int, default=20_000, help="turns for the tracemalloc measure")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--with-aggregates", action="store_true", help="also run the aggregation views")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of tables")
    parser.add_argument("--result-file", type=Path, help=argparse.SUPPRESS)  # a child writes its result here
    args = parser.parse_args(argv)

    def progress(s: Sample) -> None:
        if not args.json:
            print(
                f"{s.records:>10,} {s.turns:>10,} {s.pending:>9,} {s.evicted_ttl:>10,} "
                f"{s.evicted_capacity:>10,} {s.rss_mb:>8.1f} {s.seconds:>8.1f}",
                flush=True,
            )

    if args.scenario == "both":  # each scenario in a fresh process, so RSS figures are its own
        results = [run_child(name, argv if argv is not None else sys.argv[1:]) for name in ("ttl", "cap")]
    else:
        bounds = dict(SCENARIOS[args.scenario])
        bounds["ttl"] = args.ttl if args.ttl is not None else bounds["ttl"]
        bounds["max_entries"] = args.max_entries if args.max_entries is not None else bounds["max_entries"]
        if not args.json:
            print(f"\nscenario {args.scenario}: TTL {bounds['ttl']:,.0f} s, cap {bounds['max_entries']:,}")
            print(
                f"{'records':>10} {'turns':>10} {'pending':>9} {'ttl evict':>10} {'cap evict':>10} "
                f"{'RSS MB':>8} {'seconds':>8}"
            )
        result = soak(
            args.scenario,
            args.turns,
            rate=args.rate,
            ttl=float(bounds["ttl"]),
            max_entries=int(bounds["max_entries"]),
            seed=args.seed,
            label_share=args.label_share,
            sample_every=args.sample_every,
            with_aggregates=args.with_aggregates,
            on_sample=progress,
        )
        results = [result]
        if args.result_file:
            args.result_file.write_text(json.dumps(asdict(result)))
            return 0
    traced = traced_bytes_per_pending_turn(args.calibrate)
    out = {
        "machine": {"python": sys.version.split()[0], "cpus": os.cpu_count()},
        "traced": traced,
        "scenarios": [asdict(r) for r in results],
    }
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print()
    keys = [
        "turns",
        "records",
        "records_per_second",
        "ttl_seconds",
        "max_entries",
        "peak_pending",
        "final_pending",
        "evicted_ttl",
        "evicted_capacity",
        "ttl_violations",
        "rss_before_mb",
        "rss_peak_mb",
        "rss_end_mb",
        "rss_bytes_per_pending_turn",
    ]
    print(f"{'':<28}" + "".join(f"{r.scenario:>14}" for r in results))
    for key in keys:
        print(f"{key:<28}" + "".join(f"{getattr(r, key):>14,}" for r in results))
    print(
        f"\ntracemalloc: {traced['bytes_per_pending_turn']:,} bytes per pending turn "
        f"({traced['pending']:,} pending turns hold {traced['bytes'] / 1e6:.1f} MB of Python heap)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
