"""(d) and (e) of ``bench/throughput.py``, in-process, no broker: memory per pending (unjoined) turn under
tracemalloc, and the embedded pipeline's throughput (``run_records``, all views on) in a fresh interpreter
(this file as a script): a cold pass, then a warm one."""

from __future__ import annotations

import gc
import json
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson

from common import REPO

from throughput_inputs import PARTITIONS


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
    sample = data[next(iter(data))]  # the JSON bytes the join keeps, as its changelog record
    entry_json = len(sample) if isinstance(sample, bytes) else len(orjson.dumps(sample))
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
        [sys.executable, __file__, str(path)],
        capture_output=True,
        text=True,
        timeout=3600,
        cwd=REPO,
    )
    path.unlink()
    if out.returncode != 0:
        raise RuntimeError(f"embedded run failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    embedded_main(sys.argv[1:])
