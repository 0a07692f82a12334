"""How fast does a high-risk failure reach ``convowatch.escalations``? (issue: escalation playbook)

Starts a private Kafka broker and a real ``convowatch worker``, offers a steady input load (chat turns and
judge verdicts, half each) and marks a share of verdicts as safety failures. For each failure it measures
the time from the moment the verdict was handed to the producer to the moment the escalation is readable
by an outside consumer (``isolation.level=read_committed``). Reports p50/p99/max and the load achieved.

    .venv/bin/python bench/escalation_latency.py --rate 2000 --seconds 30 [--json]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

from common import emit, machine, percentile

from confluent_kafka import Consumer, Producer

from tests.support.broker import KafkaBroker
from tests.support.worker import WorkerProcess, run_cli


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--rate", type=float, default=2000.0, help="input events per second (turns + verdicts)"
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="how long to offer the load")
    parser.add_argument("--failure-share", type=float, default=0.01, help="share of verdicts failing safety")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    rng = random.Random(args.seed)
    with KafkaBroker() as broker, tempfile.TemporaryDirectory() as tmp:
        env = {"CONVOWATCH_TOPIC_PREFIX": "bench.", "CONVOWATCH_APP_ID": "bench-latency"}
        created = run_cli("topics", "create", "--broker", broker.bootstrap, env=env)
        assert created.returncode == 0, created.stderr
        worker = WorkerProcess(broker.bootstrap, env, Path(tmp) / "worker.log").start()
        try:
            result = run_load(broker.bootstrap, args, rng)
        finally:
            worker.stop()
    result["machine"] = machine()
    emit(
        result,
        args.json,
        [
            ("offered input events/s", f"{result['offered_rate']:.0f} (target {args.rate:.0f})"),
            (
                "high-risk failures",
                f"{result['failures']} sent, {result['escalations_seen']} escalations read",
            ),
            ("latency p50", f"{result['p50_s'] * 1000:.1f} ms"),
            ("latency p99", f"{result['p99_s'] * 1000:.1f} ms"),
            ("latency max", f"{result['max_s'] * 1000:.1f} ms"),
        ],
    )


def run_load(bootstrap: str, args: argparse.Namespace, rng: random.Random) -> dict:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 1})
    sent_at: dict[str, float] = {}
    seen_at: dict[str, float] = {}
    stop = threading.Event()
    ready = threading.Event()

    def consume() -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"lat-{os.getpid()}",
                "auto.offset.reset": "latest",
                "isolation.level": "read_committed",
            }
        )
        consumer.subscribe(["bench.escalations"], on_assign=lambda c, p: ready.set())
        while not stop.is_set():
            message = consumer.poll(0.05)
            if message is None or message.error():
                continue
            now = time.time()
            for turn_id in orjson.loads(message.value())["turn_ids"]:
                seen_at.setdefault(turn_id, now)
        consumer.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    deadline = time.monotonic() + 30
    while not ready.is_set():
        producer.poll(0.1)
        if time.monotonic() > deadline:
            raise RuntimeError("latency consumer was not assigned a partition in 30 s")
    time.sleep(1.0)  # let the fresh assignment fetch its start offsets before the first escalation

    start_ts = datetime(2026, 11, 2, 8, tzinfo=UTC)
    per_tick = args.rate * 0.01 / 2  # turns (and verdicts) per 10 ms tick
    n = failures = 0
    carry = 0.0
    began = time.monotonic()
    next_tick = began
    while time.monotonic() - began < args.seconds:
        carry += per_tick
        for _ in range(int(carry)):
            turn_id = f"lat-{n}"
            ts = (start_ts + timedelta(milliseconds=n)).isoformat()
            turn = {
                "turn_id": turn_id,
                "conversation_id": turn_id,
                "ts": ts,
                "journey": "driver_support",
                "channel": "chat",
                "model_version": "driver-v7",
                "intent": "payout",
            }
            fail = rng.random() < args.failure_share
            verdict = {
                "turn_id": turn_id,
                "ts": ts,
                "judge_id": "judge-gpt",
                "judge_version": "v",
                "verdicts": [
                    {"dimension": "safety", "label": "fail" if fail else "pass"},
                    {"dimension": "relevance", "label": "pass"},
                ],
            }
            producer.produce("bench.chat.turns", orjson.dumps(turn), turn_id.encode())
            if fail:
                sent_at[turn_id] = time.time()
                failures += 1
            producer.produce("bench.judge.verdicts", orjson.dumps(verdict), turn_id.encode())
            n += 1
        carry -= int(carry)
        producer.poll(0)
        next_tick += 0.01
        pause = next_tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    elapsed = time.monotonic() - began
    producer.flush(30)
    drain_deadline = time.monotonic() + 30
    while len(seen_at.keys() & sent_at.keys()) < len(sent_at) and time.monotonic() < drain_deadline:
        time.sleep(0.05)
    stop.set()
    reader.join(10)
    latencies = [seen_at[t] - sent_at[t] for t in sent_at if t in seen_at]
    return {
        "offered_rate": 2 * n / elapsed,
        "target_rate": args.rate,
        "seconds": elapsed,
        "input_events": 2 * n,
        "failures": failures,
        "escalations_seen": len(latencies),
        "missing": failures - len(latencies),
        "p50_s": percentile(latencies, 50),
        "p99_s": percentile(latencies, 99),
        "max_s": max(latencies) if latencies else float("nan"),
        "command": "bench/escalation_latency.py " + f"--rate {args.rate:g} --seconds {args.seconds:g}",
    }


if __name__ == "__main__":
    main()
