"""How fast does a high-risk failure reach ``convowatch.escalations``? (issue: escalation playbook)

Starts a private Kafka broker and real ``convowatch worker`` processes (``--roles all``: one worker running
everything; ``--roles split``: a ``join`` worker and an ``aggregate`` worker), then offers generated traffic
(the realistic mix of ``streams.generator``: turns, verdicts of two judges, late human labels, signals; many
segments, so every detector view is busy) at a fixed rate of input events per second. The embedded pipeline
run over the same records beforehand says which record triggers each ``high_risk_failure`` escalation (the
one that completes the failure: a failing verdict or label, or the turn arriving after it). For each, the
latency is from the moment that record was handed to the producer to the moment the escalation is readable
by an outside consumer. Reports p50/p99/max, the load achieved, and whether the workers kept up: the join's
input lag and the aggregation's lag (records of the observations topic past its committed offsets, each a
pack of observations) when the load stopped, and how long each took to drain. With ``--warmup W`` the
first W seconds of load are offered but their escalations are reported apart: fresh workers start behind
(topic metadata, first designs, cold caches) and catch up.

    .venv/bin/python bench/escalation_latency.py --rate 2000 --seconds 30 [--roles split] [--warmup 15]

``--nice-aggregate N`` (with ``--roles split``, Linux) lowers the aggregate worker's CPU priority: the
escalation path (the join worker) then gets the cores first when the machine is short of them, and the
aggregation catches up later. The workers run in sessions of their own, and with the kernel's session
autogroups (``/proc/sys/kernel/sched_autogroup_enabled``) a process's plain nice value ranks it only within
its session, so N is written to the worker's ``/proc/<pid>/autogroup``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson

from common import emit, machine, percentile, quiet_gc, role_workers, start_reader

from confluent_kafka import Consumer, Producer

from schemas import Stream
from streams.config import Settings
from streams.generator import TrafficGenerator, to_records
from streams.lag import ConsumerLagMonitor
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.producer import turn_key
from streams.topics import input_topics
from tests.support.broker import KafkaBroker
from tests.support.worker import WorkerProcess, run_cli

PREFIX = "bench."
APP_ID = "bench-latency"


def autogroups_apply(pid: int) -> bool:
    """Whether the kernel weighs process ``pid``'s session as an autogroup: autogroups on, and the process
    in the root CPU cgroup (in any other, its cgroup's weight decides, not the autogroup nice value)."""
    enabled = Path("/proc/sys/kernel/sched_autogroup_enabled")
    if not enabled.exists() or enabled.read_text().strip() != "1":
        return False
    cpu_v1, unified = [], "/"
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controllers == "":
            unified = path
        elif "cpu" in controllers.split(","):
            cpu_v1.append(path)
    # the cpu controller of cgroup v1 if mounted (hybrid hierarchies), else the unified hierarchy's (v2)
    return all(path == "/" for path in cpu_v1) if cpu_v1 else unified == "/"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="input events per second (all streams)")
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to offer the load (measured)")
    parser.add_argument(
        "--warmup",
        type=float,
        default=0.0,
        help="seconds of load first, its escalations reported apart (fresh workers, cold caches)",
    )
    parser.add_argument("--roles", choices=["all", "split"], default="all")
    parser.add_argument(
        "--nice-aggregate",
        type=int,
        choices=range(20),
        default=0,
        metavar="N",
        help="with --roles split: the aggregate worker's autogroup nice value, 0-19 (see above)",
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    if args.nice_aggregate and args.roles != "split":
        parser.error("--nice-aggregate needs --roles split")
    if args.nice_aggregate and not autogroups_apply(os.getpid()):  # the workers will be where this is
        parser.error(
            "--nice-aggregate needs session autogroups (kernel.sched_autogroup_enabled=1) and the workers in "
            "the root CPU cgroup: elsewhere the autogroup nice value changes nothing"
        )
    records = make_records(int(args.rate * (args.warmup + args.seconds)), args.seed)
    triggers = escalation_triggers(records)
    env = {"CONVOWATCH_TOPIC_PREFIX": PREFIX, "CONVOWATCH_APP_ID": APP_ID}
    with KafkaBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        created = run_cli("topics", "create", "--broker", broker.bootstrap, env=env)
        assert created.returncode == 0, created.stderr
        with role_workers(broker.bootstrap, env, args.roles, Path(tmp)) as workers:
            if args.nice_aggregate:  # the aggregate worker's session's CPU weight against the others'
                Path(f"/proc/{workers[1].proc.pid}/autogroup").write_text(str(args.nice_aggregate))
            wait_assigned(workers, len(input_topics(Settings())) * Settings().partitions)
            result = run_load(broker.bootstrap, records, triggers, args, workers[0])
    result["machine"] = machine()
    result["command"] = (
        f"bench/escalation_latency.py --rate {args.rate:g} --seconds {args.seconds:g}"
        + (f" --roles {args.roles}" if args.roles != "all" else "")
        + (f" --nice-aggregate {args.nice_aggregate}" if args.nice_aggregate else "")
        + (f" --warmup {args.warmup:g}" if args.warmup else "")
    )
    emit(
        result,
        args.json,
        [
            (
                "workers",
                args.roles + (f", aggregate at nice {args.nice_aggregate}" if args.nice_aggregate else ""),
            ),
            ("offered input events/s", f"{result['offered_rate']:.0f} (target {args.rate:.0f})"),
            ("high-risk escalations", f"{result['expected']} expected, {result['escalations_seen']} read"),
            ("measured (after the warm-up)", f"{result['measured_escalations']} escalations"),
            *(
                [
                    (
                        "warm-up (not measured)",
                        f"{args.warmup:g} s: {result['warmup_escalations']} escalations, "
                        f"p99 {result['warmup_p99_s'] * 1000:.0f} ms, "
                        f"max {result['warmup_max_s'] * 1000:.0f} ms",
                    )
                ]
                if args.warmup
                else []
            ),
            ("latency p50", f"{result['p50_s'] * 1000:.1f} ms"),
            ("latency p99", f"{result['p99_s'] * 1000:.1f} ms"),
            ("latency max", f"{result['max_s'] * 1000:.1f} ms"),
            ("join lag when the load stopped", f"{result['lag_at_end']} records"),
            ("join drained after", f"{result['drain_s']:.1f} s"),
            (
                "aggregation lag when the load stopped",
                f"{result['aggregation_lag_at_end']} records (observation packs)",
            ),
            ("aggregation drained after", f"{result['aggregation_drain_s']:.1f} s"),
        ],
    )


def make_records(events: int, seed: int) -> list[tuple[Stream, bytes]]:
    """About ``events`` records spanning about two event-hours, every human label kept, as
    ``bench/throughput.py`` makes them: labels (median delay 10-20 minutes) then arrive interleaved with
    turns and every view is busy. At a fixed 200 turns per event-second (before 2026-11-25) the traffic
    spanned a few event-minutes, and nearly every label fell after its end (16 in 60,000 records)."""
    rate = max(5.0, events / 2.1 / 7200)
    generator = TrafficGenerator(seed=seed, rate=rate)
    items = to_records(generator.records(events / rate / 2.1, drain=True))
    return [(r[2], r[3]) for r in itertools.islice(items, events)]


def wait_assigned(workers: list[WorkerProcess], inputs: int, timeout: float = 120.0) -> None:
    """Until every worker is ready (assigned, tables recovered: ``/readyz``) and the first one owns every
    input partition: a group still joining or a table recovering must not fall inside the measurement."""

    def assigned(worker: WorkerProcess) -> float:
        return sum(v for (name, _), v in worker.scrape().items() if name == "convowatch_assigned_partitions")

    def ready(worker: WorkerProcess) -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{worker.metrics_port}/readyz", timeout=5):
                return True
        except urllib.error.HTTPError:  # 503 until ready
            return False

    deadline = time.monotonic() + timeout
    while assigned(workers[0]) < inputs or not all(ready(w) for w in workers):
        if time.monotonic() > deadline:
            raise RuntimeError(f"workers not assigned in {timeout:g} s; log:\n{workers[0].log_tail()}")
        time.sleep(0.1)


def escalation_triggers(records: list[tuple[Stream, bytes]]) -> dict[str, int]:
    """escalation_id -> index of the record whose processing first publishes it (embedded pipeline)."""
    pipeline = Pipeline(Settings(topic_prefix=PREFIX))
    triggers: dict[str, int] = {}
    for index, (stream, raw) in enumerate(records):
        for out in pipeline.process(stream, raw, source_topic="oracle", offset=index):
            if out.topic == "escalations" and out.value["kind"] == "high_risk_failure":
                triggers.setdefault(out.value["escalation_id"], index)
    return triggers


def run_load(
    bootstrap: str,
    records: list[tuple[Stream, bytes]],
    triggers: dict[str, int],
    args: argparse.Namespace,
    join_worker: WorkerProcess,
) -> dict:
    topics = input_topics(Settings(topic_prefix=PREFIX))
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 1})
    by_index = {index: eid for eid, index in triggers.items()}
    sent_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    stop = threading.Event()
    ready = threading.Event()

    def consume() -> None:
        consumer = Consumer(
            {"bootstrap.servers": bootstrap, "group.id": f"lat-{os.getpid()}", "auto.offset.reset": "latest"}
        )
        consumer.subscribe([PREFIX + "escalations"], on_assign=lambda c, p: ready.set())
        while not stop.is_set():
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            seen_at.setdefault(orjson.loads(message.value())["escalation_id"], time.time())
        consumer.close()

    quiet_gc()
    reader = start_reader(consume, ready, producer, timeout=30, settle=1.0)

    per_tick = args.rate * 0.01  # events per 10 ms tick
    index = 0
    carry = 0.0
    began = time.monotonic()
    wall_began = time.time()
    next_tick = began
    while index < len(records):
        carry += per_tick
        for _ in range(int(carry)):
            if index >= len(records):
                break
            stream, raw = records[index]
            key = turn_key(raw, "conversation_id" if stream is Stream.SIGNALS else "turn_id")
            producer.produce(topics[stream], raw, key)
            if index in by_index:
                sent_at[by_index[index]] = time.time()
            index += 1
        carry -= int(carry)
        producer.poll(0)
        next_tick += 0.01
        pause = next_tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    elapsed = time.monotonic() - began
    producer.flush(30)

    def processed() -> int:
        return int(sum(join_worker.value("convowatch_records_in_total", stream=s.value) or 0 for s in Stream))

    observations = ConsumerLagMonitor(
        Settings(broker=bootstrap, app_id=APP_ID if args.roles == "all" else f"{APP_ID}-aggregate"),
        Metrics(),
        [PREFIX + "internal.observations"],
    )

    def aggregation_lag() -> int:
        return sum(observations.check().values())

    lag_at_end = len(records) - processed()
    aggregation_lag_at_end = aggregation_lag()
    stopped = time.monotonic()
    while processed() < len(records) and time.monotonic() - stopped < 300:
        time.sleep(0.2)
    drain_s = time.monotonic() - stopped
    while aggregation_lag() and time.monotonic() - stopped < 600:
        time.sleep(0.5)
    aggregation_drain_s = time.monotonic() - stopped
    while len(seen_at.keys() & sent_at.keys()) < len(sent_at) and time.monotonic() - stopped < 330:
        time.sleep(0.05)
    stop.set()
    reader.join(10)
    measured_from = wall_began + args.warmup
    latencies = [seen_at[e] - sent_at[e] for e in sent_at if e in seen_at and sent_at[e] >= measured_from]
    warmup = [seen_at[e] - sent_at[e] for e in sent_at if e in seen_at and sent_at[e] < measured_from]
    return {
        "offered_rate": len(records) / elapsed,
        "target_rate": args.rate,
        "roles": args.roles,
        "nice_aggregate": args.nice_aggregate,
        "seconds": elapsed,
        "input_events": len(records),
        "expected": len(sent_at),
        "escalations_seen": len(seen_at.keys() & sent_at.keys()),
        "missing": len(sent_at.keys() - seen_at.keys()),
        "warmup_s": args.warmup,
        "warmup_escalations": len(warmup),
        "warmup_p99_s": percentile(warmup, 99),
        "warmup_max_s": max(warmup) if warmup else float("nan"),
        "measured_escalations": len(latencies),
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies) if latencies else float("nan"),
        "lag_at_end": lag_at_end,
        "drain_s": drain_s,
        "aggregation_lag_at_end": aggregation_lag_at_end,
        "aggregation_drain_s": aggregation_drain_s,
    }


if __name__ == "__main__":
    main()
