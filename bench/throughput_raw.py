"""(a) of ``bench/throughput.py``: the raw aiokafka baseline, an aiokafka consumer doing nothing but
``getmany(max_records=...)`` over all input partitions and counting. :func:`run_raw` runs it in a fresh
interpreter (this file as a script)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from typing import Any

from common import REPO

from throughput_inputs import INPUT_PREFIX, PARTITIONS, input_names


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


if __name__ == "__main__":
    raw_main(sys.argv[1:])
