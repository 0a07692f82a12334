"""Throughput and latency near the Kafka client's limit, measured side by side (issue: "Throughput and
latency").

One run starts a private Kafka broker, pre-produces ``--events`` realistic input records (the generator's mix
of chat turns, judge verdicts and late human labels, ~0.6 KB each on average; padded with realistic text when
the mix would average under ``--min-avg-bytes``) to the three input topics (4 partitions, keyed by
``turn_id``, ``murmur2_random``), and measures on that same broker, topics and data:

(a) raw    an aiokafka consumer doing nothing but ``getmany(max_records=...)`` over all input partitions and
           counting: the client's ceiling on this machine (a fresh interpreter each time);
(b) worker a real ``convowatch worker`` (fresh app id = consumer group, fresh output topics) from its first
           record processed until ``convowatch_records_in_total`` == N *and* the group's committed offsets
           reach the end of every input partition (so every output was acknowledged first); also until the
           internal observations topic is committed (aggregation done). Its ratio to (a), same run;
(c) latency a fresh worker (``--latency-roles split``: a join and an aggregate worker) on topics of its own
           (prefix ``lat0.``, ``lat1.`` ... per rate), offered turns + verdicts (+ ~10% labels, 2 s later)
           at each ``--rate`` events/s: produce time → record readable with ``read_committed`` on
           ``escalations`` (``high_risk_failure`` of the ``--failure-share`` of verdicts made to fail safety,
           timed from that verdict) and on ``defects`` (every defect, from its verdict or label);
           p50/p99/max per ``--seconds`` window after a warm-up. If the worker has not caught up when the
           drain ends, figures are lower bounds (≥);
(d) memory per pending (unjoined) turn, chat text empty, no verdicts: embedded pipeline under tracemalloc;
(e) embedded the same records through the in-process pipeline (``run_records``, all views on), in a fresh
           interpreter: a cold pass (as a restarted worker) and a warm pass (detector design caches filled).

(a) and (b) alternate ``--repeat`` times (a1 b1 a2 b2 ...); the table shows medians, each run's figure, and
the ratio from the same run. CPU µs per event (process CPU time / events) is shown too: on a shared machine it
is less sensitive to other load than wall time. Also shown: what the worker writes back to Kafka per input
event, the machine's load average, and which code was measured (HEAD + a hash of the uncommitted diff).

    .venv/bin/python bench/throughput.py                 # 300k events, 5,000 events/s for 2 x 20 s, 2 repeats
    .venv/bin/python bench/throughput.py --quick         # smoke test, < 1 min
    .venv/bin/python bench/throughput.py --rate 5000,1000 --json-out result.json   # table + JSON file
    .venv/bin/python bench/throughput.py --show result.json                         # its table again
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, machine

from confluent_kafka.admin import AdminClient

from throughput_embedded import embedded_throughput, pending_memory
from throughput_inputs import INPUT_PREFIX, PARTITIONS, QUIET, end_offsets, generate, input_names, produce_all
from throughput_latency import run_latency
from throughput_raw import run_raw
from throughput_report import print_table
from throughput_worker import run_worker_once


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=300_000, help="records pre-produced for (a), (b), (e)")
    parser.add_argument(
        "--rate",
        default=None,
        help="offered input events/s for (c), comma-separated for several (default 5000)",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each measured latency window")
    parser.add_argument("--warmup", type=float, default=3.0, help="latency warm-up, not measured")
    parser.add_argument(
        "--latency-roles",
        choices=("all", "split"),
        default="all",
        help="(c) with one worker running both roles, or a join and an aggregate worker",
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs of (a), (b), (e) and latency windows")
    parser.add_argument(
        "--failure-share", type=float, default=0.01, help="verdicts made to fail safety in (c)"
    )
    parser.add_argument("--pending-turns", type=int, default=100_000, help="turns for (d)")
    parser.add_argument(
        "--embedded-events", type=int, default=100_000, help="records for (e), at most --events"
    )
    parser.add_argument("--min-avg-bytes", type=int, default=500, help="pad chat texts below this mean size")
    parser.add_argument("--compression", default="none", help="producer compression.type for the inputs")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument(
        "--skip", default="", help="comma-separated phases to skip: raw,worker,latency,memory,embedded"
    )
    parser.add_argument(
        "--compare-loop",
        choices=("asyncio", "uvloop"),
        default=None,
        help="after each (b) run, run (b) again on this event loop (CONVOWATCH_EVENT_LOOP): A/B in one run",
    )
    parser.add_argument("--quick", action="store_true", help="small smoke run (< 1 min)")
    parser.add_argument("--keep-logs", action="store_true", help="keep worker logs (path printed)")
    parser.add_argument(
        "--show", type=Path, default=None, help="print the table of an earlier --json-out file"
    )
    parser.add_argument("--json", action="store_true", help="print the JSON result instead of the table")
    parser.add_argument("--json-out", type=Path, default=None, help="also write the JSON result to this file")
    args = parser.parse_args()
    if args.show is not None:
        print_table(json.loads(args.show.read_text()))
        return
    if args.quick:
        args.events, args.seconds, args.warmup, args.repeat = 8_000, 4.0, 1.0, 1
        args.pending_turns, args.embedded_events = 5_000, 3_000
        args.rate = args.rate or "1000"
    args.rate = args.rate or "5000"
    args.rates = [float(x) for x in str(args.rate).split(",")]
    skip = set(filter(None, args.skip.split(",")))

    from tests.support.broker import KafkaBroker
    from tests.support.worker import run_cli

    result: dict[str, Any] = {
        "machine": machine(),
        "load_average_before": load_average(),
        "args": vars(args),
        "code": code_state(),
    }
    t0 = time.monotonic()
    logdir = Path(tempfile.mkdtemp(prefix="convowatch-bench-"))
    log(args, f"generating {args.events:,} records ...")
    records = generate(args.events, args.seed, args.min_avg_bytes)
    sizes: dict[str, list[int]] = {}
    for stream, _, value in records:
        sizes.setdefault(stream, []).append(len(value))
    n = len(records)
    result["data"] = {
        "events": n,
        "mean_bytes": sum(len(v) for _, _, v in records) / n,
        "by_stream": {s: {"count": len(v), "mean_bytes": sum(v) / len(v)} for s, v in sizes.items()},
    }
    with KafkaBroker(heap="1g") as broker:
        bootstrap = broker.bootstrap
        admin_conf: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": QUIET}
        admin = AdminClient(admin_conf)
        env = {"CONVOWATCH_TOPIC_PREFIX": INPUT_PREFIX, "CONVOWATCH_APP_ID": "bench-tp-setup"}
        created = run_cli("topics", "create", "--broker", bootstrap, "--partitions", str(PARTITIONS), env=env)
        assert created.returncode == 0, created.stderr
        log(args, f"producing to {bootstrap} ...")
        result["data"]["produce_events_per_second"] = produce_all(
            bootstrap, records, INPUT_PREFIX, args.compression
        )
        ends = end_offsets(admin, input_names(INPUT_PREFIX))
        assert sum(ends.values()) == n, (sum(ends.values()), n)
        embedded_records = records[: min(args.embedded_events, n)]
        del records
        gc.collect()

        raw_runs: list[dict[str, Any]] = []
        worker_runs: list[dict[str, Any]] = []
        compare_runs: list[dict[str, Any]] = []
        for r in range(args.repeat):
            if "raw" not in skip:
                log(args, f"(a) raw aiokafka getmany, run {r + 1} ...")
                raw_runs.append(run_raw(bootstrap, n))
            if "worker" not in skip:
                log(args, f"(b) worker end to end, run {r + 1} ...")
                worker_runs.append(
                    run_worker_once(bootstrap, admin, ends, n, f"r{r}", logdir, data_dir=broker.dir / "data")
                )
                if args.compare_loop:
                    log(args, f"(b') worker end to end on {args.compare_loop}, run {r + 1} ...")
                    compare_runs.append(
                        run_worker_once(
                            bootstrap,
                            admin,
                            ends,
                            n,
                            f"r{r}{args.compare_loop}",
                            logdir,
                            extra_env={"CONVOWATCH_EVENT_LOOP": args.compare_loop},
                        )
                    )
        result["raw"] = {
            "runs": raw_runs,
            "events_per_second": median([x["events_per_second"] for x in raw_runs]),
            "cpu_us_per_event": median([x["cpu_us_per_event"] for x in raw_runs]),
        }
        loop = os.environ.get("CONVOWATCH_EVENT_LOOP", "uvloop")
        result["worker"] = {"runs": worker_runs, "event_loop": loop}
        result["worker"] |= worker_medians(worker_runs)
        if compare_runs:
            result["worker_compare"] = {
                "event_loop": args.compare_loop,
                "runs": compare_runs,
                **worker_medians(compare_runs),
                "ratio_pairs": [
                    w["events_per_second"] / c["events_per_second"]
                    for w, c in zip(worker_runs, compare_runs, strict=False)
                ],
            }
        result["ratio_worker_to_raw"] = (
            result["worker"]["events_per_second"] / result["raw"]["events_per_second"]
        )
        result["ratio_pairs"] = [
            w["events_per_second"] / a["events_per_second"]
            for a, w in zip(raw_runs, worker_runs, strict=False)
        ]
        if "latency" not in skip:
            result["latency"] = []
            for index, offered in enumerate(args.rates):
                log(args, f"(c) latency at {offered:,.0f} events/s ...")
                result["latency"].append(
                    run_latency(
                        bootstrap,
                        f"lat{index}.",
                        offered,
                        args.seconds,
                        args.repeat,
                        args.warmup,
                        args.failure_share,
                        2.0,
                        args.seed + 1,
                        logdir,
                        roles=args.latency_roles,
                    )
                )
    if "memory" not in skip:
        log(args, "(d) memory per pending turn ...")
        result["memory"] = pending_memory(args.pending_turns, args.seed)
    if "embedded" not in skip:
        runs = []
        for r in range(args.repeat):
            log(args, f"(e) embedded pipeline, run {r + 1} ...")
            runs.append(embedded_throughput(embedded_records, logdir))
        result["embedded"] = {"runs": runs}
        for phase in ("cold", "warm"):
            result["embedded"][phase] = {
                k: median([x[phase][k] for x in runs]) for k in ("events_per_second", "cpu_us_per_event")
            }
    result["load_average_after"] = load_average()
    result["wall_seconds"] = time.monotonic() - t0
    result["command"] = "bench/throughput.py " + " ".join(sys.argv[1:])
    if not args.keep_logs:
        import shutil

        shutil.rmtree(logdir, ignore_errors=True)
    else:
        result["logs"] = str(logdir)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(result, indent=2, sort_keys=True, default=str) + "\n")
    if args.json:
        print(json.dumps(result, indent=2, sort_keys=True, default=str))
    else:
        print_table(result)


#: Figures of a worker run (bench/throughput_worker.run_worker_once) summarised by their median over runs
WORKER_FIGURES = (
    "events_per_second",
    "events_per_second_processed",
    "events_per_second_with_aggregation",
    "cpu_us_per_event",
    "cpu_us_per_event_with_aggregation",
    "startup_seconds",
    "cpu_utilisation",
    "cpu_system_share",
    "join_processing_share",
)


def worker_medians(runs: list[dict[str, Any]]) -> dict[str, float]:
    """Each of :data:`WORKER_FIGURES` as its median over ``runs`` (over the runs that have it)."""
    return {k: median([x[k] for x in runs if k in x]) for k in WORKER_FIGURES}


def code_state() -> dict[str, Any]:
    """Which code was measured: HEAD, a hash of the uncommitted diff, the modified files (others may be
    editing the working tree while a run goes on)."""
    import hashlib

    def git(*a: str) -> str:
        return subprocess.run(["git", *a], cwd=REPO, capture_output=True, text=True).stdout

    untracked = git("ls-files", "--others", "--exclude-standard").split()
    digest = hashlib.sha1(git("diff", "HEAD").encode())
    for name in sorted(untracked):
        with contextlib.suppress(OSError):
            digest.update(name.encode() + (REPO / name).read_bytes())
    return {
        "head": git("rev-parse", "HEAD").strip(),
        "diff_sha1": digest.hexdigest(),
        "modified": sorted(set(git("diff", "HEAD", "--name-only").split()) | set(untracked)),
    }


def log(args: argparse.Namespace, text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    main()
