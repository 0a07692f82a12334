"""The embedded transport: the same :class:`Pipeline`, driven in-process from files or a generator."""

from __future__ import annotations

import heapq
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from schemas import Stream
from streams.emit import Emit
from streams.exceptions import ConvowatchError
from streams.output_files import cannot_write, make_output_directory, write_output
from streams.pipeline import Pipeline

OUTPUT_FILES = {
    "defects": "defects.jsonl",
    "escalations": "escalations.jsonl",
    "deadletter": "deadletter.jsonl",
    "review_requests": "review_requests.jsonl",
}

#: (event time, sequence, stream, raw bytes, source name, line number)
Record = tuple[float, int, Stream, bytes, str, int]


def event_time_of(raw: bytes) -> float:
    """Best-effort event time for ordering; unreadable records sort first (the pipeline dead-letters them)."""
    try:
        ts = orjson.loads(raw).get("ts")
        when = datetime.fromisoformat(ts.upper()) if isinstance(ts, str) else None  # "t" and "z" are valid
    except (orjson.JSONDecodeError, AttributeError, ValueError, TypeError, OverflowError):
        return float("-inf")
    if when is None or when.tzinfo is None:  # naive: rejected, and never read in this host's time zone
        return float("-inf")
    return when.timestamp()


def read_jsonl(path: Path, stream: Stream) -> Iterator[Record]:
    """Records of one JSONL file, one per non-blank line, tagged with their event time."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise ConvowatchError(f"cannot read {stream.value} file {path}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            raw = line.rstrip(b"\r\n")
            if raw.strip():
                yield (event_time_of(raw), number, stream, raw, str(path), number)


def merge_by_event_time(sources: Iterable[Iterator[Record]]) -> Iterator[Record]:
    """Merge per-stream record iterators by event time (each file is expected roughly in time order;
    the join accepts any order, so an unsorted file only changes when things are emitted, not what)."""
    return heapq.merge(*sources, key=lambda r: (r[0], r[1]))


class JsonlSink:
    """Writes each published record as one JSON line to ``<out_dir>/<topic>.jsonl``."""

    def __init__(self, out_dir: Path, stack: ExitStack) -> None:
        make_output_directory(out_dir)
        self.files: dict[str, IO[bytes]] = {}
        for topic, name in OUTPUT_FILES.items():
            try:
                self.files[topic] = stack.enter_context((out_dir / name).open("wb"))
            except OSError as exc:
                raise cannot_write(out_dir / name, exc) from None
        self.counts = dict.fromkeys(OUTPUT_FILES, 0)

    def __call__(self, emit: Emit) -> None:
        handle = self.files.get(emit.topic)
        if handle is None:  # defects.<category> copies: the same records are in defects.jsonl
            return
        handle.write(orjson.dumps(emit.value) + b"\n")
        self.counts[emit.topic] += 1


class Progress:
    """Prints a progress line to stderr at most every ``interval`` seconds."""

    def __init__(self, enabled: bool, interval: float = 1.0, stream: IO[str] | None = None) -> None:
        self.enabled = enabled
        self.interval = interval
        self.stream = sys.stderr if stream is None else stream  # sys.stderr now, not at import
        self.started = self.last = time.monotonic()

    def __call__(self, done: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if self.enabled and (final or now - self.last >= self.interval):
            self.last = now
            rate = done / max(now - self.started, 1e-9)
            end = "\n" if final else "\r"
            print(f"  processed {done:,} records ({rate:,.0f}/s)", end=end, file=self.stream, flush=True)


#: Records per observation of ``convowatch_processing_seconds``, like the Kafka transport's batches.
BATCH_RECORDS = 1024


def run_records(
    pipeline: Pipeline,
    records: Iterable[Record],
    publish: Callable[[Emit], None],
    progress: Callable[..., None] | None = None,
) -> int:
    """Feed records through the pipeline; publish what it emits; flush the join at the end.

    ``convowatch_processing_seconds`` observes the pipeline's work per :data:`BATCH_RECORDS` records (the
    end of input closes the last batch): not the waits for records (the demo's pacing) nor publishing, as
    the Kafka transport leaves out its waits for the broker."""
    metrics = pipeline.metrics
    outputs: dict[str, Any] = {}  # label children of convowatch_outputs_total by topic

    def send(emits: list[Emit]) -> None:
        for emit in emits:
            counter = outputs.get(emit.topic)
            if counter is None:
                counter = outputs[emit.topic] = metrics.outputs.labels(emit.topic)
            counter.inc()
            publish(emit)

    done = 0
    spent = 0.0  # in the pipeline since the last batch ended
    for _, _, stream, raw, source, number in records:
        began = time.perf_counter()
        emits = pipeline.process(stream, raw, source_topic=source, offset=number)
        spent += time.perf_counter() - began
        send(emits)
        done += 1
        if done % BATCH_RECORDS == 0:
            began = time.perf_counter()
            pipeline.flush()
            metrics.processing_seconds.observe(spent + time.perf_counter() - began)
            spent = 0.0
            if progress is not None:
                progress(done)
    began = time.perf_counter()
    emits = pipeline.finish()
    metrics.processing_seconds.observe(spent + time.perf_counter() - began)
    send(emits)
    if progress is not None:
        progress(done, final=True)
    return done


def replay(
    pipeline: Pipeline,
    out_dir: Path,
    chats: Path | None = None,
    verdicts: Path | None = None,
    labels: Path | None = None,
    signals: Path | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Replay JSONL files merged by event time; write outputs and ``report.json`` into ``out_dir``."""
    inputs = [
        (p, s)
        for p, s in (
            (chats, Stream.CHAT_TURNS),
            (verdicts, Stream.JUDGE_VERDICTS),
            (labels, Stream.HUMAN_LABELS),
            (signals, Stream.SIGNALS),
        )
        if p is not None
    ]
    if not inputs:
        raise ConvowatchError(
            "nothing to replay: give at least one of --chats, --verdicts, --labels, --signals"
        )
    for path, stream in inputs:
        if not Path(path).is_file():
            raise ConvowatchError(f"{stream.value} file not found: {path}")
    with ExitStack() as stack:
        sink = JsonlSink(out_dir, stack)
        records = merge_by_event_time(read_jsonl(Path(p), s) for p, s in inputs)
        run_records(pipeline, records, sink, Progress(show_progress))
    report = pipeline.report()
    report["outputs"] = sink.counts
    write_output(out_dir / "report.json", orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    return report
