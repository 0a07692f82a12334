"""(c) of ``bench/throughput.py``: end-to-end latency at a fixed offered load. A fresh worker on topics
of its own is offered turns + verdicts (+ ~10% labels, later) at a rate; a reader measures produce time to
record readable with ``read_committed`` on ``escalations`` (``high_risk_failure``) and ``defects``."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import orjson

from common import percentile, quiet_gc, role_workers, start_reader

from confluent_kafka import Consumer, Producer

from throughput_inputs import PARTITIONS, QUIET, input_names
from throughput_worker import proc_cpu_seconds, records_in, scrape_sum


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
    roles: str = "all",
) -> dict[str, Any]:
    """Offer load to a fresh worker (``roles`` "all") or to a join and an aggregate worker ("split")."""
    from tests.support.worker import run_cli

    env = {"CONVOWATCH_TOPIC_PREFIX": prefix, "CONVOWATCH_APP_ID": f"bench-{prefix}{os.getpid()}"}
    created = run_cli("topics", "create", "--broker", bootstrap, env=env)
    assert created.returncode == 0, created.stderr
    events_per_unit = 2.1
    total_seconds = warmup + seconds * windows
    units = latency_units(int(rate * total_seconds / events_per_unit * 1.15) + 100, seed, failure_share)

    with role_workers(bootstrap, env, roles, logdir, prefix=f"worker-{prefix}") as workers:
        worker = workers[0]  # the one that reads the inputs
        deadline = time.monotonic() + 120
        while scrape_sum(worker.scrape(), "convowatch_assigned_partitions") < 3 * PARTITIONS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"latency worker not assigned in 120 s; log:\n{worker.log_tail()}")
            time.sleep(0.1)
        quiet_gc()
        pids = [w.proc.pid for w in workers]
        result = _offer(bootstrap, prefix, worker, pids, units, rate, seconds, windows, warmup, label_delay)
        return result | {"roles": roles}


def _offer(
    bootstrap: str,
    prefix: str,
    worker: Any,
    pids: list[int],
    units: list[Any],
    rate: float,
    seconds: float,
    windows: int,
    warmup: float,
    label_delay: float,
) -> dict[str, Any]:

    def cpu_seconds() -> float:  # of every worker process
        return sum(proc_cpu_seconds(pid) for pid in pids)

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

    reader = start_reader(consume, ready, producer, timeout=60, settle=1.5)

    turns_topic, verdicts_topic, labels_topic = input_names(prefix)
    per_tick = rate * 0.01 / 2.1  # turns per 10 ms tick (with their verdict and ~10% labels)
    labels_due: deque[tuple[float, str, bytes]] = deque()
    sent = i = 0
    carry = 0.0
    cpu_began = cpu_seconds()
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
                cpu_now = cpu_seconds()
                window_stats.append(
                    {
                        "offered": (sent - window_start_sent) / (now_m - window_start_t),
                        "cpu_utilisation": (cpu_now - window_start_cpu) / (now_m - window_start_t),
                    }
                )
            window_start_sent, window_start_cpu, window_start_t = sent, cpu_seconds(), now_m
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
                "cpu_utilisation": (cpu_seconds() - window_start_cpu) / (end_m - window_start_t),
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

    # escalations of injected failures only: their failing verdict is what triggers them (a generated label
    # may fail a turn too, 2 s later: timed from the verdict, that escalation would count the label delay)
    esc_lat: dict[int, list[float]] = {}
    for seen, value in seen_esc.values():
        turn_id = value["turn_ids"][0]
        if turn_id in verdict_sent and turn_id in expected_esc:
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
