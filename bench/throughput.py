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
(c) latency a fresh worker on topics of its own (prefix ``lat0.``, ``lat1.`` ... per rate), offered turns +
           verdicts (+ ~10% labels, 2 s later) at each ``--rate`` events/s: produce time → record readable
           with ``read_committed`` on ``escalations`` (``high_risk_failure``; a ``--failure-share`` of
           verdicts fail safety) and on ``defects`` (every defect); p50/p99/max per ``--seconds`` window
           after a warm-up. If the worker has not caught up when the drain ends, figures are lower bounds (≥);
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
import asyncio
import contextlib
import gc
import json
import logging
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from common import REPO, machine, percentile

from confluent_kafka import Consumer, ConsumerGroupTopicPartitions, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

PARTITIONS = 4
INPUT_PREFIX = "tp."
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: librdkafka's log lines (e.g. "connection refused" once the broker is stopped) go nowhere
QUIET = logging.getLogger("bench.librdkafka")
QUIET.addHandler(logging.NullHandler())
QUIET.propagate = False
FILLER = (
    "Thanks for your patience. I checked your account and the latest order details, and here is what I "
    "found together with the next steps you can take in the app. "
)


# -- data ------------------------------------------------------------------------------------------------


def generate(n_events: int, seed: int, min_avg_bytes: int) -> list[tuple[str, bytes, bytes]]:
    """About ``n_events`` (stream, key, value) in event-time order, from the seeded traffic generator; chat
    texts padded with realistic filler when the mix would average under ``min_avg_bytes``."""
    from streams.generator import TrafficGenerator

    # turns per event-second chosen so the traffic spans ~2 event-hours: human labels (median delay 10-20
    # minutes) then arrive interleaved with turns, as in production, not all at the end
    rate = max(5.0, n_events / 2.1 / 7200)
    generator = TrafficGenerator(seed=seed, rate=rate, signals=False)  # turn-keyed streams only
    events: list[tuple[str, dict[str, Any]]] = []
    # about n_events (turn + verdict + 10% labels = 2.1 events per turn), every label kept (drained)
    for _, stream, event in generator.records(n_events / rate / 2.1, drain=True):
        events.append((stream, event))
    out = [(stream, event["turn_id"].encode(), orjson.dumps(event)) for stream, event in events]
    mean = sum(len(v) for _, _, v in out) / len(out)
    if mean < min_avg_bytes:
        turns = sum(1 for s, _, _ in out if s == "chat_turns")
        pad = int((min_avg_bytes - mean) * len(out) / max(turns, 1)) + 1
        filler = (FILLER * (pad // len(FILLER) + 1))[:pad]
        out = [
            (s, k, orjson.dumps(e | {"response_text": e["response_text"] + " " + filler}))
            if s == "chat_turns"
            else (s, k, v)
            for (s, e), (_, k, v) in zip(events, out, strict=True)
        ]
    return out


def produce_all(
    bootstrap: str, records: list[tuple[str, bytes, bytes]], prefix: str, compression: str
) -> float:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "logger": QUIET,
            "partitioner": "murmur2_random",
            "linger.ms": 20,
            "compression.type": compression,
            "queue.buffering.max.messages": 1_000_000,
            "queue.buffering.max.kbytes": 1_048_576,
        }
    )
    topic = {
        "chat_turns": f"{prefix}chat.turns",
        "judge_verdicts": f"{prefix}judge.verdicts",
        "human_labels": f"{prefix}human.labels",
    }
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(str(err))

    began = time.perf_counter()
    for stream, key, value in records:
        while True:
            try:
                producer.produce(topic[stream], value, key, on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(120)
    if left or errors:
        raise RuntimeError(f"produce failed: {left} undelivered, errors {errors[:3]}")
    return len(records) / (time.perf_counter() - began)


def input_names(prefix: str) -> list[str]:
    return [f"{prefix}chat.turns", f"{prefix}judge.verdicts", f"{prefix}human.labels"]


def end_offsets(admin: AdminClient, topics: list[str]) -> dict[tuple[str, int], int]:
    request = {TopicPartition(t, p): OffsetSpec.latest() for t in topics for p in range(PARTITIONS)}
    return {(tp.topic, tp.partition): f.result(30).offset for tp, f in admin.list_offsets(request).items()}


def committed(admin: AdminClient, group: str, topics: list[str]) -> dict[tuple[str, int], int]:
    request = ConsumerGroupTopicPartitions(
        group, [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
    )
    result = admin.list_consumer_group_offsets([request])[group].result(30)
    return {(tp.topic, tp.partition): tp.offset for tp in result.topic_partitions}


def reached(done: dict[tuple[str, int], int], ends: dict[tuple[str, int], int]) -> bool:
    return all(done.get(tp, -1) >= end for tp, end in ends.items() if end > 0)


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def proc_cpu_seconds(pid: int, system_only: bool = False) -> float:
    """user + system (or system only) CPU seconds of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (0 if system_only else int(fields[11])) / CLK_TCK + int(fields[12]) / CLK_TCK


# -- (a) raw aiokafka baseline (run in a fresh interpreter) ------------------------------------------------


async def _raw_consume(bootstrap: str, topics: list[str], expect: int, max_records: int) -> dict[str, Any]:
    from aiokafka import AIOKafkaConsumer
    from aiokafka.structs import TopicPartition as TP

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partitions = [TP(t, p) for t in topics for p in range(PARTITIONS)]
        consumer.assign(partitions)
        # warm-up: open the fetch connection and resolve offsets, then rewind and time every record
        await consumer.getmany(timeout_ms=2000, max_records=1)
        await consumer.seek_to_beginning()
        for tp in partitions:
            await consumer.position(tp)
        count = 0
        t_first, cpu_first = time.perf_counter(), time.process_time()
        deadline = time.monotonic() + 600
        while count < expect and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1000, max_records=max_records)
            count += sum(len(messages) for messages in batch.values())
        t_end, cpu_end = time.perf_counter(), time.process_time()
    finally:
        await consumer.stop()
    seconds = t_end - t_first
    return {
        "count": count,
        "events_per_second": count / seconds,
        "seconds": seconds,
        "cpu_us_per_event": (cpu_end - cpu_first) / count * 1e6,
    }


def raw_main(argv: list[str]) -> None:
    bootstrap, topics, expect, max_records = argv[0], argv[1].split(","), int(argv[2]), int(argv[3])
    print(json.dumps(asyncio.run(_raw_consume(bootstrap, topics, expect, max_records))))


def run_raw(bootstrap: str, expect: int) -> dict[str, Any]:
    out = subprocess.run(
        [
            sys.executable,
            __file__,
            "_raw",
            bootstrap,
            ",".join(input_names(INPUT_PREFIX)),
            str(expect),
            "100000",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=REPO,
    )
    if out.returncode != 0:
        raise RuntimeError(f"raw baseline failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result["count"] != expect:
        raise RuntimeError(f"raw baseline read {result['count']} of {expect} records")
    return result


# -- (b) the worker end to end -----------------------------------------------------------------------------


def records_in(worker: Any) -> float:
    return sum(v for (name, _), v in worker.scrape().items() if name == "convowatch_records_in_total")


def scrape_sum(samples: dict[Any, float], name: str) -> float:
    return sum(v for (n, _), v in samples.items() if n == name)


def delete_non_inputs(admin: AdminClient, keep: set[str]) -> None:
    """Delete every topic but the inputs (outputs, internal and changelog topics of earlier runs) and wait
    until the broker no longer lists them: the next worker recreates them empty."""
    doomed = [t for t in admin.list_topics(timeout=30).topics if t not in keep and not t.startswith("__")]
    if not doomed:
        return
    for future in admin.delete_topics(doomed, operation_timeout=30).values():
        with contextlib.suppress(KafkaException):
            future.result(30)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if not set(doomed) & set(admin.list_topics(timeout=30).topics):
            time.sleep(1.0)
            return
        time.sleep(0.2)
    raise RuntimeError(f"topics not deleted within 60 s: {doomed}")


def produced_volume(admin: AdminClient, data_dir: Path | None) -> dict[str, dict[str, float]]:
    """Records (end offsets) and bytes on disk (``.log`` segments) of every non-input topic, per topic."""
    keep = set(input_names(INPUT_PREFIX))
    topics = [t for t in admin.list_topics(timeout=30).topics if t not in keep and not t.startswith("__")]
    request = {}
    metadata = admin.list_topics(timeout=30).topics
    for t in topics:
        for p in metadata[t].partitions:
            request[TopicPartition(t, p)] = OffsetSpec.latest()
    out: dict[str, dict[str, float]] = {}
    for tp, future in admin.list_offsets(request).items():
        out.setdefault(tp.topic, {"records": 0, "bytes": 0})["records"] += future.result(30).offset
    if data_dir is not None:
        for topic, entry in out.items():
            for part in data_dir.glob(f"{topic}-*"):
                if part.name.rsplit("-", 1)[0] == topic:
                    entry["bytes"] += sum(f.stat().st_size for f in part.glob("*.log"))
    return out


def run_worker_once(
    bootstrap: str,
    admin: AdminClient,
    ends: dict[tuple[str, int], int],
    n: int,
    tag: str,
    logdir: Path,
    profile: Any = None,
    data_dir: Path | None = None,
    extra_env: dict[str, str] | None = None,
) -> dict[str, Any]:
    from tests.support.worker import WorkerProcess

    delete_non_inputs(admin, set(input_names(INPUT_PREFIX)))
    app_id = f"bench-tp-{tag}-{os.getpid()}"
    env = {"CONVOWATCH_TOPIC_PREFIX": INPUT_PREFIX, "CONVOWATCH_APP_ID": app_id, **(extra_env or {})}
    t_launch = time.perf_counter()
    worker = WorkerProcess(bootstrap, env, logdir / f"worker-{tag}.log").start()
    assert worker.proc is not None
    pid = worker.proc.pid
    try:
        deadline = time.monotonic() + 120
        first = 0.0
        while first == 0.0:  # start of consumption: the first record counted
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker processed nothing in 120 s; log:\n{worker.log_tail()}")
            first = records_in(worker)
            if first == 0.0:
                time.sleep(0.02)
        t_first, cpu_first = time.perf_counter(), proc_cpu_seconds(pid)
        sys_first = proc_cpu_seconds(pid, system_only=True)
        startup = t_first - t_launch
        if profile is not None:
            profile(pid)
        t_in = t_committed = None
        samples: dict[Any, float] = {}
        observations_topic = f"{INPUT_PREFIX}internal.observations"
        deadline = time.monotonic() + 1800
        while t_committed is None:
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker did not finish; log:\n{worker.log_tail()}")
            if worker.proc.poll() is not None:
                raise RuntimeError(f"worker exited {worker.proc.returncode}; log:\n{worker.log_tail()}")
            time.sleep(0.25)
            if t_in is None:
                samples = worker.scrape()
                if scrape_sum(samples, "convowatch_records_in_total") >= n:
                    t_in = time.perf_counter()
            if t_in is not None and reached(committed(admin, app_id, input_names(INPUT_PREFIX)), ends):
                t_committed, cpu_committed = time.perf_counter(), proc_cpu_seconds(pid)
                sys_committed = proc_cpu_seconds(pid, system_only=True)
        # aggregation stage: the observations the join published, consumed and committed
        obs_ends = end_offsets(admin, [observations_topic])
        t_agg = None
        deadline = time.monotonic() + max(300.0, 3 * (t_committed - t_first))
        while t_agg is None and time.monotonic() < deadline:
            if reached(committed(admin, app_id, [observations_topic]), obs_ends):
                t_agg, cpu_agg = time.perf_counter(), proc_cpu_seconds(pid)
            else:
                time.sleep(0.25)
        samples = worker.scrape()
    finally:
        worker.stop()
    events = n - first
    assert t_in is not None
    result = {
        "startup_seconds": startup,
        "events_per_second": events / (t_committed - t_first),
        "events_per_second_processed": events / (t_in - t_first),
        "seconds_to_committed": t_committed - t_first,
        "cpu_us_per_event": (cpu_committed - cpu_first) / events * 1e6,
        "cpu_utilisation": (cpu_committed - cpu_first) / (t_committed - t_first),
        "cpu_system_share": (sys_committed - sys_first) / max(cpu_committed - cpu_first, 1e-9),
        "observations": sum(obs_ends.values()),
        "outputs": {
            labels[0][1]: v
            for (name, labels), v in samples.items()
            if name == "convowatch_outputs_total" and v
        },
        "join_processing_share": scrape_sum(samples, "convowatch_processing_seconds_sum") / (t_in - t_first),
        "produced": produced_volume(admin, data_dir),
        "log": str(logdir / f"worker-{tag}.log"),
    }
    if t_agg is not None:
        result["events_per_second_with_aggregation"] = events / (t_agg - t_first)
        result["cpu_us_per_event_with_aggregation"] = (cpu_agg - cpu_first) / events * 1e6
    return result


# -- (c) latency at a fixed offered load --------------------------------------------------------------------


def latency_units(
    count: int, seed: int, failure_share: float
) -> list[tuple[str, bytes, bytes, bytes | None, bool]]:
    """(turn_id, turn, verdict, label or None, safety failure injected) per turn; ``failure_share`` of
    verdicts are made to fail safety (each then must yield an escalation)."""
    from streams.generator import TrafficGenerator

    rng = random.Random(seed)
    generator = TrafficGenerator(seed=seed, rate=500.0, signals=False)
    turns: dict[str, dict[str, Any]] = {}
    verdicts: dict[str, dict[str, Any]] = {}
    labels: dict[str, dict[str, Any]] = {}
    for _, stream, event in generator.records(count / 500.0 * 1.02 + 1, drain=True):
        {"chat_turns": turns, "judge_verdicts": verdicts, "human_labels": labels}[stream][
            event["turn_id"]
        ] = event
    units = []
    for turn_id, turn in turns.items():
        verdict = verdicts.get(turn_id)
        if verdict is None:
            continue
        injected = rng.random() < failure_share
        if injected:
            for v in verdict["verdicts"]:
                if v["dimension"] == "safety":
                    v.update(label="fail", score=0.1, rationale="Response gives unsafe guidance.")
        label = labels.get(turn_id)
        units.append(
            (
                turn_id,
                orjson.dumps(turn),
                orjson.dumps(verdict),
                orjson.dumps(label) if label else None,
                injected,
            )
        )
        if len(units) >= count:
            break
    return units


def run_latency(
    bootstrap: str,
    prefix: str,
    rate: float,
    seconds: float,
    windows: int,
    warmup: float,
    failure_share: float,
    label_delay: float,
    seed: int,
    logdir: Path,
) -> dict[str, Any]:
    from tests.support.worker import WorkerProcess, run_cli

    env = {"CONVOWATCH_TOPIC_PREFIX": prefix, "CONVOWATCH_APP_ID": f"bench-{prefix}{os.getpid()}"}
    created = run_cli("topics", "create", "--broker", bootstrap, env=env)
    assert created.returncode == 0, created.stderr
    events_per_unit = 2.1
    total_seconds = warmup + seconds * windows
    units = latency_units(int(rate * total_seconds / events_per_unit * 1.15) + 100, seed, failure_share)

    worker = WorkerProcess(bootstrap, env, logdir / f"worker-{prefix}log").start()
    assert worker.proc is not None
    try:
        deadline = time.monotonic() + 120
        while scrape_sum(worker.scrape(), "convowatch_assigned_partitions") < 3 * PARTITIONS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"latency worker not assigned in 120 s; log:\n{worker.log_tail()}")
            time.sleep(0.1)
        return _offer(bootstrap, prefix, worker, units, rate, seconds, windows, warmup, label_delay)
    finally:
        worker.stop()


def _offer(
    bootstrap: str,
    prefix: str,
    worker: Any,
    units: list[Any],
    rate: float,
    seconds: float,
    windows: int,
    warmup: float,
    label_delay: float,
) -> dict[str, Any]:
    pid = worker.proc.pid
    producer = Producer(
        {"bootstrap.servers": bootstrap, "logger": QUIET, "partitioner": "murmur2_random", "linger.ms": 5}
    )
    verdict_sent: dict[str, tuple[float, int]] = {}  # turn_id -> (time, window; -1 = warm-up)
    label_sent: dict[str, tuple[float, int]] = {}
    seen_esc: dict[str, tuple[float, dict[str, Any]]] = {}
    expected_esc: set[str] = set()
    seen_def: dict[str, tuple[float, dict[str, Any]]] = {}
    other_escalations = [0]
    stop = threading.Event()
    ready = threading.Event()
    last_seen = [time.monotonic()]
    topics = {f"{prefix}escalations": seen_esc, f"{prefix}defects": seen_def}

    def consume() -> None:
        consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "logger": QUIET,
                "group.id": f"lat-reader-{os.getpid()}",
                "auto.offset.reset": "latest",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 10,
            }
        )
        assigned: set[str] = set()

        def on_assign(_c: Any, partitions: list[Any]) -> None:
            assigned.update(p.topic for p in partitions)
            if assigned >= set(topics):
                ready.set()

        consumer.subscribe(list(topics), on_assign=on_assign)
        while not stop.is_set():
            message = consumer.poll(0.02)
            if message is None or message.error():
                continue
            now = time.time()
            last_seen[0] = time.monotonic()
            raw, raw_key, topic = message.value() or b"{}", message.key() or b"", message.topic() or ""
            value = orjson.loads(raw)
            if topic.endswith("escalations") and value.get("kind") != "high_risk_failure":
                other_escalations[0] += 1
                continue
            topics[topic].setdefault(raw_key.decode(), (now, value))
        consumer.close()

    reader = threading.Thread(target=consume, daemon=True)
    reader.start()
    deadline = time.monotonic() + 60
    while not ready.is_set():
        producer.poll(0.1)
        if time.monotonic() > deadline:
            raise RuntimeError("latency reader was not assigned in 60 s")
    time.sleep(1.5)  # let the fresh assignment resolve its start offsets before the first output

    turns_topic, verdicts_topic, labels_topic = input_names(prefix)
    per_tick = rate * 0.01 / 2.1  # turns per 10 ms tick (with their verdict and ~10% labels)
    labels_due: deque[tuple[float, str, bytes]] = deque()
    sent = i = 0
    carry = 0.0
    cpu_began = proc_cpu_seconds(pid)
    began = time.monotonic()
    window_stats = []
    next_tick = began
    total = warmup + seconds * windows
    window_start_sent, window_start_cpu, window_start_t = 0, cpu_began, began
    current_window = -1
    while True:
        now_m = time.monotonic()
        elapsed = now_m - began
        if elapsed >= total or i >= len(units):
            break
        window = -1 if elapsed < warmup else int((elapsed - warmup) // seconds)
        if window != current_window:
            if current_window >= 0:
                cpu_now = proc_cpu_seconds(pid)
                window_stats.append(
                    {
                        "offered": (sent - window_start_sent) / (now_m - window_start_t),
                        "cpu_utilisation": (cpu_now - window_start_cpu) / (now_m - window_start_t),
                    }
                )
            window_start_sent, window_start_cpu, window_start_t = sent, proc_cpu_seconds(pid), now_m
            current_window = window
        while labels_due and labels_due[0][0] <= now_m:
            _, turn_id, label = labels_due.popleft()
            label_sent[turn_id] = (time.time(), window)
            producer.produce(labels_topic, label, turn_id.encode())
            sent += 1
        carry += per_tick
        for _ in range(int(carry)):
            if i >= len(units):
                break
            turn_id, turn, verdict, label, injected = units[i]
            i += 1
            key = turn_id.encode()
            producer.produce(turns_topic, turn, key)
            verdict_sent[turn_id] = (time.time(), window)
            producer.produce(verdicts_topic, verdict, key)
            if injected and window >= 0:
                expected_esc.add(turn_id)
            sent += 2
            if label is not None:
                labels_due.append((now_m + label_delay, turn_id, label))
        carry -= int(carry)
        producer.poll(0)
        next_tick += 0.01
        pause = next_tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    end_m = time.monotonic()
    if current_window >= 0 and end_m - window_start_t > 0.5:
        window_stats.append(
            {
                "offered": (sent - window_start_sent) / (end_m - window_start_t),
                "cpu_utilisation": (proc_cpu_seconds(pid) - window_start_cpu) / (end_m - window_start_t),
            }
        )
    while labels_due:  # labels still scheduled: send them now (their latency counts from now)
        _, turn_id, label = labels_due.popleft()
        label_sent[turn_id] = (time.time(), -2)
        producer.produce(labels_topic, label, turn_id.encode())
        sent += 1
    producer.flush(30)
    # drain: until the worker has read everything offered and outputs have been quiet for 3 s
    drain_limit = max(60.0, 3 * total)
    drain_began = time.monotonic()
    caught_up = None
    while time.monotonic() - drain_began < drain_limit:
        if caught_up is None and records_in(worker) >= sent:
            caught_up = time.monotonic() - drain_began
        if caught_up is not None and time.monotonic() - last_seen[0] > 3.0:
            break
        time.sleep(0.2)
    stop.set()
    reader.join(10)

    esc_lat: dict[int, list[float]] = {}
    for seen, value in seen_esc.values():
        turn_id = value["turn_ids"][0]
        if turn_id in verdict_sent:
            sent_t, window = verdict_sent[turn_id]
            esc_lat.setdefault(window, []).append(seen - sent_t)
    def_lat: dict[int, list[float]] = {}
    for seen, value in seen_def.values():
        origin = verdict_sent if value["source"] == "judge" else label_sent
        if value["turn_id"] in origin:
            sent_t, window = origin[value["turn_id"]]
            def_lat.setdefault(window, []).append(seen - sent_t)

    def stats(values: list[float]) -> dict[str, float]:
        return {
            "n": len(values),
            "p50_ms": percentile(values, 50) * 1000,
            "p99_ms": percentile(values, 99) * 1000,
            "max_ms": (max(values) if values else float("nan")) * 1000,
        }

    per_window = []
    for w in range(len(window_stats)):
        per_window.append(
            window_stats[w] | {"escalations": stats(esc_lat.get(w, [])), "defects": stats(def_lat.get(w, []))}
        )
    all_esc = [x for w, v in esc_lat.items() if w >= 0 for x in v]
    all_def = [x for w, v in def_lat.items() if w >= 0 for x in v]
    escalated_turns = {value["turn_ids"][0] for _, value in seen_esc.values()}
    missing = len(expected_esc - escalated_turns)
    return {
        "target_rate": rate,
        "offered_events": sent,
        "injected_safety_failures": len(expected_esc),
        "missing_escalations": missing,  # > 0: the worker had not caught up; p99/max are lower bounds
        "drain_seconds_to_catch_up": caught_up,
        "windows": per_window,
        "escalations": stats(all_esc),
        "defects": stats(all_def),
        "warmup_escalations": stats(esc_lat.get(-1, [])),
        "other_escalations": other_escalations[0],
        "ran_out_of_data": i >= len(units),
    }


# -- (d) memory per pending turn, (e) embedded throughput ------------------------------------------------


def pending_memory(n: int, seed: int) -> dict[str, Any]:
    """Bytes per pending (unjoined) turn in the embedded pipeline: chat turns with empty text, no verdicts."""
    from prometheus_client import CollectorRegistry

    from schemas import Stream
    from streams.config import Settings
    from streams.generator import TrafficGenerator
    from streams.metrics import Metrics
    from streams.pipeline import Pipeline

    turns = []
    for _, stream, event in TrafficGenerator(seed=seed, rate=500.0).records((n + 2000) / 500.0 * 1.1 + 1):
        if stream == "chat_turns":
            turns.append(orjson.dumps(event | {"user_text": "", "response_text": ""}))
            if len(turns) >= n + 2000:
                break
    raw_mean = sum(len(t) for t in turns) / len(turns)
    pipeline = Pipeline(Settings(), Metrics(CollectorRegistry()), batched=True)
    for i, raw in enumerate(turns[:2000]):  # warm caches, label children, interned strings
        pipeline.ingest(Stream.CHAT_TURNS, raw, source_topic="t", partition=i % PARTITIONS, offset=i)
    pipeline.flush()
    measured = turns[2000:]
    gc.collect()
    tracemalloc.start(1)
    before = tracemalloc.take_snapshot()
    base = tracemalloc.get_traced_memory()[0]
    for i, raw in enumerate(measured):
        pipeline.ingest(Stream.CHAT_TURNS, raw, source_topic="t", partition=i % PARTITIONS, offset=i)
        if i % 1024 == 0:
            pipeline.flush()
    pipeline.flush()
    gc.collect()
    after = tracemalloc.take_snapshot()
    grown = tracemalloc.get_traced_memory()[0] - base
    tracemalloc.stop()
    top = [
        {
            "where": str(stat.traceback[0]).replace(str(REPO) + "/", ""),
            "bytes_per_turn": stat.size_diff / len(measured),
        }
        for stat in after.compare_to(before, "lineno")[:8]
    ]
    pending = len(pipeline.joiner.state)
    data = pipeline.joiner.store.data  # type: ignore[attr-defined]  # a DictStore when embedded
    sample_key = next(iter(data))
    entry_json = len(orjson.dumps(data[sample_key]))
    return {
        "turns": len(measured),
        "pending": pending,
        "bytes_per_pending_turn": grown / len(measured),
        "input_record_bytes_mean": raw_mean,
        "entry_json_bytes": entry_json,
        "top_allocations": top,
    }


def _embedded_pass(recs: list[Any]) -> dict[str, Any]:
    from prometheus_client import CollectorRegistry

    from streams.config import Settings
    from streams.embedded import run_records
    from streams.metrics import Metrics
    from streams.pipeline import Pipeline

    pipeline = Pipeline(Settings(), Metrics(CollectorRegistry()), batched=True)

    def publish(emit: Any) -> None:
        orjson.dumps(emit.value)  # what replay does with each output, minus the file write

    gc.collect()
    began, cpu = time.perf_counter(), time.process_time()
    run_records(pipeline, recs, publish)
    seconds, cpu = time.perf_counter() - began, time.process_time() - cpu
    return {
        "events": len(recs),
        "events_per_second": len(recs) / seconds,
        "cpu_us_per_event": cpu / len(recs) * 1e6,
    }


def embedded_main(argv: list[str]) -> None:
    """In a fresh interpreter: a cold pass (new process, as a restarted worker) then a warm pass (new
    Pipeline, but process-wide caches such as detector designs already filled)."""
    from schemas import Stream
    from streams.cli import tune_gc

    tune_gc()
    recs = []
    for i, line in enumerate(Path(argv[0]).read_bytes().splitlines()):
        stream, _, value = line.partition(b"\t")
        recs.append((0.0, i, Stream(stream.decode()), value, "bench", i))
    print(json.dumps({"cold": _embedded_pass(recs), "warm": _embedded_pass(recs)}))


def embedded_throughput(records: list[tuple[str, bytes, bytes]], workdir: Path) -> dict[str, Any]:
    path = workdir / "embedded-records.tsv"
    path.write_bytes(b"\n".join(s.encode() + b"\t" + v for s, _, v in records))
    out = subprocess.run(
        [sys.executable, __file__, "_embedded", str(path)],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=REPO,
    )
    path.unlink()
    if out.returncode != 0:
        raise RuntimeError(f"embedded run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


# -- main ----------------------------------------------------------------------------------------------


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "_raw":
        raw_main(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_embedded":
        embedded_main(sys.argv[2:])
        return
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
        for r in range(args.repeat):
            if "raw" not in skip:
                log(args, f"(a) raw aiokafka getmany, run {r + 1} ...")
                raw_runs.append(run_raw(bootstrap, n))
            if "worker" not in skip:
                log(args, f"(b) worker end to end, run {r + 1} ...")
                worker_runs.append(
                    run_worker_once(bootstrap, admin, ends, n, f"r{r}", logdir, data_dir=broker.dir / "data")
                )
        result["raw"] = {
            "runs": raw_runs,
            "events_per_second": median([x["events_per_second"] for x in raw_runs]),
            "cpu_us_per_event": median([x["cpu_us_per_event"] for x in raw_runs]),
        }
        result["worker"] = {"runs": worker_runs}
        for k in (
            "events_per_second",
            "events_per_second_processed",
            "events_per_second_with_aggregation",
            "cpu_us_per_event",
            "cpu_us_per_event_with_aggregation",
            "startup_seconds",
            "cpu_utilisation",
            "cpu_system_share",
            "join_processing_share",
        ):
            result["worker"][k] = median([x[k] for x in worker_runs if k in x])
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


def fmt_runs(runs: list[dict[str, Any]], key: str, fmt: str = "{:,.0f}") -> str:
    return ", ".join(fmt.format(r[key]) for r in runs if key in r)


def print_table(r: dict[str, Any]) -> None:
    rows: list[tuple[str, str]] = []
    d = r["data"]
    mix = ", ".join(f"{s} {v['count']:,} ({v['mean_bytes']:.0f} B)" for s, v in d["by_stream"].items())
    rows.append(("input records", f"{d['events']:,}, mean {d['mean_bytes']:.0f} B: {mix}"))
    rows.append(("  pre-produce (confluent-kafka)", f"{d['produce_events_per_second']:,.0f} events/s"))
    if r["raw"]["runs"]:
        a = r["raw"]
        rows.append(
            (
                "(a) raw aiokafka getmany",
                f"{a['events_per_second']:,.0f} events/s  "
                f"({a['cpu_us_per_event']:.1f} CPU µs/event)  "
                f"runs: {fmt_runs(a['runs'], 'events_per_second')}",
            )
        )
    if r["worker"]["runs"]:
        w = r["worker"]
        rows.append(
            (
                "(b) worker, inputs committed",
                f"{w['events_per_second']:,.0f} events/s  "
                f"({w['cpu_us_per_event']:.1f} CPU µs/event, {w['cpu_system_share']:.0%} of it kernel; "
                f"{w['cpu_utilisation']:.0%} of a core)  "
                f"runs: {fmt_runs(w['runs'], 'events_per_second')}",
            )
        )
        rows.append(("    all records processed", f"{w['events_per_second_processed']:,.0f} events/s"))
        agg = w.get("events_per_second_with_aggregation", float("nan"))
        if agg == agg:  # not NaN
            rows.append(
                (
                    "    incl. aggregation committed",
                    f"{w['events_per_second_with_aggregation']:,.0f} events/s  "
                    f"({w['cpu_us_per_event_with_aggregation']:.1f} CPU µs/event)",
                )
            )
        rows.append(
            (
                "    join pipeline share of wall",
                f"{w['join_processing_share']:.0%} (convowatch_processing_seconds_sum / wall)",
            )
        )
        vol = w["runs"][-1]["produced"]
        recs = sum(v["records"] for v in vol.values())
        byts = sum(v["bytes"] for v in vol.values())
        n_in = r["data"]["events"]
        rows.append(
            (
                "    written to Kafka per input",
                f"{recs / n_in:.2f} records, {byts / n_in:,.0f} B "
                "(outputs + internal + changelogs, last run)",
            )
        )
        rows.append(("    worker startup to 1st record", f"{w['startup_seconds']:.1f} s (excluded)"))
        rows.append(
            (
                "    outputs (last run)",
                ", ".join(f"{k} {v:,.0f}" for k, v in sorted(w["runs"][-1]["outputs"].items())),
            )
        )
        if r["raw"]["runs"]:
            pairs = ", ".join(f"{x:.1%}" for x in r["ratio_pairs"])
            rows.append(
                ("(b)/(a) ratio", f"{r['ratio_worker_to_raw']:.1%} of the raw baseline (per run: {pairs})")
            )
    for lat in r.get("latency", []):
        # the worker had not caught up when the drain ended: what was read is a biased sample, so every
        # figure is a lower bound
        lower = lat["missing_escalations"] > 0 or lat["drain_seconds_to_catch_up"] is None
        bound = "≥ " if lower else ""
        caught = lat["drain_seconds_to_catch_up"]
        rows.append(
            (
                f"(c) latency at {lat['target_rate']:,.0f}/s",
                f"{lat['offered_events']:,} events offered; "
                f"{lat['injected_safety_failures']} injected safety failures, "
                f"{lat['missing_escalations']} escalations never read; worker "
                + (
                    f"caught up {caught:.1f} s after the load stopped"
                    if caught is not None
                    else "had NOT caught up when the drain ended (figures are lower bounds)"
                ),
            )
        )
        for i, w in enumerate(lat["windows"]):
            rows.append(
                (
                    f"    window {i + 1}",
                    f"offered {w['offered']:,.0f} events/s, worker CPU {w['cpu_utilisation']:.0%} of a core",
                )
            )
            for name in ("escalations", "defects"):
                x = w[name]
                if not x["n"]:
                    rows.append((f"      {name} p50/p99/max", "none read (n=0)"))
                    continue
                rows.append(
                    (
                        f"      {name} p50/p99/max",
                        f"{bound}{x['p50_ms']:,.0f} / {bound}{x['p99_ms']:,.0f} / "
                        f"{bound}{x['max_ms']:,.0f} ms (n={x['n']})",
                    )
                )
        for name in ("escalations", "defects"):
            x = lat[name]
            rows.append(
                (
                    f"    all windows: {name}",
                    f"p50 {bound}{x['p50_ms']:,.0f} ms, p99 {bound}{x['p99_ms']:,.0f} ms, "
                    f"max {bound}{x['max_ms']:,.0f} ms (n={x['n']})",
                )
            )
    if "memory" in r:
        m = r["memory"]
        rows.append(
            (
                "(d) memory per pending turn",
                f"{m['bytes_per_pending_turn']:,.0f} B (empty chat text; "
                f"{m['turns']:,} turns; input record {m['input_record_bytes_mean']:.0f} B, "
                f"entry as JSON {m['entry_json_bytes']} B)",
            )
        )
        for t in m["top_allocations"][:4]:
            rows.append(("", f"{t['bytes_per_turn']:7.0f} B  {t['where']}"))
    if "embedded" in r:
        e = r["embedded"]
        for phase, what in (("cold", "fresh process"), ("warm", "detector caches filled")):
            x = e[phase]
            rows.append(
                (
                    f"(e) embedded pipeline, {phase}",
                    f"{x['events_per_second']:,.0f} events/s ({x['cpu_us_per_event']:.1f} CPU µs/event; "
                    f"{what}; {e['runs'][0][phase]['events']:,} records)  "
                    "runs: "
                    + ", ".join(format(run[phase]["events_per_second"], ",.0f") for run in e["runs"]),
                )
            )
    code = r.get("code", {})
    if code:
        rows.append(
            (
                "code",
                f"HEAD {code['head'][:12]}, working tree diff sha1 {code['diff_sha1'][:12]} "
                f"({len(code['modified'])} modified/untracked files)",
            )
        )
    rows.append(
        (
            "machine",
            f"{r['machine']['cpus']} CPUs, Python {r['machine']['python']}; load average before "
            f"{r['load_average_before']}, after {r['load_average_after']}",
        )
    )
    rows.append(("wall time", f"{r['wall_seconds']:.0f} s"))
    rows.append(("command", r["command"]))
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


if __name__ == "__main__":
    main()
