"""(b) of ``bench/throughput.py``: a real ``convowatch worker`` end to end, from its first record
processed until every input (and then the internal observations topic) is committed; and the process
measurements the latency phase shares (CPU seconds from /proc, the worker's own metrics)."""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path
from typing import Any

import common  # noqa: F401  # puts the repository on sys.path

from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from throughput_inputs import INPUT_PREFIX, committed, end_offsets, input_names, reached

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu_seconds(pid: int, system_only: bool = False) -> float:
    """user + system (or system only) CPU seconds of a process (all threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (0 if system_only else int(fields[11])) / CLK_TCK + int(fields[12]) / CLK_TCK


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
    aggregation: bool = True,
) -> dict[str, Any]:
    from tests.support.worker import WorkerProcess

    delete_non_inputs(admin, set(input_names(INPUT_PREFIX)))
    app_id = f"bench-tp-{tag}-{os.getpid()}"
    env = {"CONVOWATCH_TOPIC_PREFIX": INPUT_PREFIX, "CONVOWATCH_APP_ID": app_id, **(extra_env or {})}
    t_launch = time.perf_counter()
    worker = WorkerProcess(bootstrap, env, logdir / f"worker-{tag}.log").start()
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": app_id, "enable.auto.commit": False})
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
            if t_in is not None and reached(committed(reader, input_names(INPUT_PREFIX)), ends):
                t_committed, cpu_committed = time.perf_counter(), proc_cpu_seconds(pid)
                sys_committed = proc_cpu_seconds(pid, system_only=True)
        # aggregation stage: the observations the join published, consumed and committed
        obs_ends = end_offsets(admin, [observations_topic])
        t_agg = None
        if aggregation:  # unless the worker has no aggregation stage
            deadline = time.monotonic() + max(300.0, 3 * (t_committed - t_first))
            while t_agg is None and time.monotonic() < deadline:
                if reached(committed(reader, [observations_topic]), obs_ends):
                    t_agg, cpu_agg = time.perf_counter(), proc_cpu_seconds(pid)
                else:
                    time.sleep(0.25)
        samples = worker.scrape()
    finally:
        reader.close()
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
