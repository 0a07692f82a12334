"""Where does a saturated ``convowatch worker`` spend its time? py-spy on a real worker, summarised.

Starts a private broker, pre-produces ``--events`` generator records (as ``bench/throughput.py`` does), starts
a worker, and once it has processed its first record samples it with py-spy (``--idle --threads``, raw
collapsed stacks) for ``--duration`` seconds. Prints, per thread, the share of samples that were busy, then
for the busy samples of the event-loop thread: the share by component (the innermost frame that belongs to a
known component decides) and the top functions by own time and by inclusive time.

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile_worker.py [--events 200000] [--duration 30] [--out /tmp/worker.spy]
    .venv/bin/python bench/profile_worker.py --analyse /tmp/worker.spy     # re-read a recorded profile
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from common import REPO

#: (component, test on the whole stack, outermost first): the first rule that matches a sample decides
RULES: list[tuple[str, Callable[[str], bool]]] = [
    ("parse/validate (pydantic, schemas/)", lambda s: "pydantic" in s or "(schemas/" in s),
    ("metrics (prometheus_client)", lambda s: "prometheus_client/" in s),
    ("detectors: threshold design (scipy/numpy)", lambda s: "(scipy/" in s or "(numpy/" in s),
    ("detectors (detectors/)", lambda s: "(detectors/" in s),
    ("send changelog records (TableStore.put -> faust -> aiokafka)", lambda s: "send_changelog" in s),
    (
        "send outputs (Topic.send -> faust -> aiokafka)",
        lambda s: (
            "_publish (" in s
            and ("(faust/" in s.split("_publish (", 1)[1] or "(aiokafka/" in s.split("_publish (", 1)[1])
        ),
    ),
    ("serialise outputs (orjson.dumps etc. in _publish)", lambda s: "_publish (" in s),
    (
        "join + policy (join.py, policy.py, expiry.py)",
        lambda s: re.search(r"streams/(join|policy|expiry|emit)\.py", s) is not None,
    ),
    ("aggregate + views", lambda s: re.search(r"streams/(aggregate\.py|views/)", s) is not None),
    ("state write-behind (state.py)", lambda s: "streams/state.py" in s),
    (
        "convowatch glue (app.py agents, pipeline.py)",
        lambda s: (
            "(streams/" in s
            and "_execute_actor" in s
            and s.rstrip().rsplit(";", 1)[-1].find("(streams/") >= 0
        ),
    ),
    ("faust stream iteration / take_events / acks (in agents)", lambda s: "_execute_actor" in s),
    (
        "aiokafka producer sender task (produce requests, socket writes)",
        lambda s: "(aiokafka/producer/" in s or "Sender." in s,
    ),
    (
        "faust fetcher + conductor (consumer -> stream queues)",
        lambda s: "_fetcher" in s or "conductor" in s or "_drain_messages" in s,
    ),
    ("faust producer buffer", lambda s: "ProducerBuffer" in s),
    ("aiokafka consumer (fetch, decode)", lambda s: "(aiokafka/consumer" in s),
    ("faust/mode other (commit, monitor, timers)", lambda s: "(faust/" in s or "(mode/" in s),
    ("aiokafka other", lambda s: "(aiokafka/" in s),
    ("asyncio event loop (scheduling, select)", lambda s: True),
]


def parse_raw(path: Path) -> list[tuple[str, list[str], int]]:
    samples = []
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frames = stack.split(";")
        samples.append((re.sub(r"\(\d+\)", "", frames[0]).strip(), frames[1:], int(count)))
    return samples


def inner(frames: list[str]) -> list[str]:
    """The frames below the event loop's ``_run_once`` (the task or callback that was running)."""
    for i in range(len(frames) - 1, -1, -1):
        if "BaseEventLoop._run_once" in frames[i]:
            return frames[i + 1 :]
    return frames


def classify(frames: list[str]) -> str:
    stack = ";".join(inner(frames))
    for name, test in RULES:
        if test(stack):
            return name
    return "other"


def short(frame: str) -> str:
    return frame.replace(str(REPO) + "/", "").replace(".venv/lib/python3.11/site-packages/", "")


def analyse(path: Path, busy_path: Path | None = None, top: int = 25, cpu_us: float | None = None) -> dict:
    """Print the summary; ``cpu_us`` (worker CPU µs per event, measured without the profiler) turns shares
    into µs per event."""
    everything = parse_raw(path)
    busy = parse_raw(busy_path) if busy_path else everything
    seen: Counter[str] = Counter()
    active: Counter[str] = Counter()
    for thread, _, count in everything:
        seen[thread] += count
    for thread, _, count in busy:
        active[thread] += count
    print(f"\nsamples: {sum(seen.values()):,} (all threads, idle included), {sum(active.values()):,} busy")
    print("threads: share of their samples that were busy (not waiting in select/recv/sleep)")
    for thread, count in seen.most_common():
        if active.get(thread, 0) or count > 50:
            print(f"  {active.get(thread, 0) / count:6.1%} of {count:6,}  {thread}")
    main = [(f, c) for t, f, c in busy if "MainThread" in t]
    n_main = sum(c for _, c in main)
    comp: Counter[str] = Counter()
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for frames, count in main:
        comp[classify(frames)] += count
        own[short(frames[-1]) if frames else "?"] += count
        for frame in {re.sub(r":\d+\)", ")", f) for f in frames}:
            incl[short(frame)] += count
    unit = f", µs/event at {cpu_us:.0f} CPU µs/event" if cpu_us else ""
    print(
        f"\nevent-loop thread (MainThread), {n_main:,} busy samples, by component "
        f"(first matching rule){unit}:"
    )
    for name, count in comp.most_common():
        extra = f"  {count / n_main * cpu_us:6.1f} µs" if cpu_us else ""
        print(f"  {count / n_main:6.1%}{extra}  {name}")
    print(f"\ntop {top} functions by own time (innermost frame, with line):")
    for frame, count in own.most_common(top):
        print(f"  {count / n_main:6.1%}  {frame}")
    print("\ntop functions by inclusive time (>= 2%, outer run-loop frames omitted):")
    for frame, count in incl.most_common(80):
        if count / n_main < 0.02:
            break
        if count / n_main > 0.97:
            continue
        print(f"  {count / n_main:6.1%}  {frame}")
    return {"components": {k: v / n_main for k, v in comp.items()}, "main_busy_samples": n_main}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of sampling")
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="keep the raw profiles here (and .busy)")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too; slower)")
    parser.add_argument(
        "--cpu-us",
        type=float,
        default=None,
        help="worker CPU µs/event measured without the profiler (bench/throughput.py): "
        "shares are also shown as µs/event",
    )
    parser.add_argument("--analyse", type=Path, default=None, help="only summarise an earlier --out file")
    args = parser.parse_args()
    if args.analyse:
        busy = args.analyse.with_suffix(args.analyse.suffix + ".busy")
        analyse(args.analyse, busy if busy.exists() else None, cpu_us=args.cpu_us)
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")

    from confluent_kafka.admin import AdminClient
    from throughput import (
        INPUT_PREFIX,
        QUIET,
        PARTITIONS,
        end_offsets,
        generate,
        input_names,
        produce_all,
        run_worker_once,
    )

    from tests.support.broker import KafkaBroker
    from tests.support.worker import run_cli

    out = args.out or Path(tempfile.mkdtemp(prefix="convowatch-spy-")) / "worker.spy"
    out.parent.mkdir(parents=True, exist_ok=True)
    busy_out = out.with_suffix(out.suffix + ".busy")
    records = generate(args.events, args.seed, 500)
    spies: list[subprocess.Popen[bytes]] = []

    def profile(pid: int) -> None:
        common = [
            spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(args.duration)),
            "--rate",
            str(args.rate),
            "--format",
            "raw",
            "--threads",
            "--nonblocking",
        ]
        if args.native:
            common.append("--native")
        spies.append(
            subprocess.Popen(
                [*common, "--idle", "-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )
        spies.append(
            subprocess.Popen(
                [*common, "-o", str(busy_out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )
        )

    with KafkaBroker(heap="1g") as broker:
        env = {"CONVOWATCH_TOPIC_PREFIX": INPUT_PREFIX, "CONVOWATCH_APP_ID": "bench-spy-setup"}
        created = run_cli(
            "topics", "create", "--broker", broker.bootstrap, "--partitions", str(PARTITIONS), env=env
        )
        assert created.returncode == 0, created.stderr
        produce_all(broker.bootstrap, records, INPUT_PREFIX, "none")
        admin = AdminClient({"bootstrap.servers": broker.bootstrap, "logger": QUIET})
        ends = end_offsets(admin, input_names(INPUT_PREFIX))
        began = time.monotonic()
        result = run_worker_once(
            broker.bootstrap, admin, ends, len(records), "spy", out.parent, profile=profile
        )
        for p in spies:
            p.wait(args.duration + 60)
    print(
        f"worker: {result['events_per_second']:,.0f} events/s to inputs committed, "
        f"{result['cpu_us_per_event']:.0f} CPU µs/event, {result['cpu_utilisation']:.0%} of a core "
        f"(profiled for {min(args.duration, time.monotonic() - began):.0f} s, py-spy adds some overhead)"
    )
    analyse(out, busy_out if busy_out.exists() else None, cpu_us=args.cpu_us)


if __name__ == "__main__":
    main()
