"""Where does a saturated ``convowatch worker`` spend its time? py-spy on a real worker, summarised.

Starts a private broker, pre-produces ``--events`` generator records (as ``bench/throughput.py`` does), starts
a worker, and once it has processed its first record samples it for ``--duration`` seconds with three py-spy
recorders (raw collapsed stacks, ``--threads``): ``--idle`` (everything), default (not idle) and ``--gil``
(only a thread holding the GIL: Python CPU work; a thread descheduled inside a syscall such as a socket send
counts as "busy" but not as holding the GIL, and on a loaded 2-core machine that difference is large).
Prints, per thread, the busy and GIL shares, then for the event-loop thread the share by component (the first
matching rule over the running task's stack) and the top functions by own and by inclusive time.

    .venv/bin/pip install py-spy
    .venv/bin/python bench/profile_worker.py [--events 200000] [--duration 30] [--out /tmp/worker.spy]
    .venv/bin/python bench/profile_worker.py --role join    # the join worker alone (the escalation path)
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

#: a frame of the module that sends a batch's outputs and state
PUBLISH = "(streams/batch_publisher.py"

#: (component, test on the whole stack, outermost first): the first rule that matches a sample decides
RULES: list[tuple[str, Callable[[str], bool]]] = [
    ("parse/validate (pydantic, schemas/)", lambda s: "pydantic" in s or "(schemas/" in s),
    ("metrics (prometheus_client)", lambda s: "prometheus_client/" in s),
    ("detectors: threshold design (scipy/numpy)", lambda s: "(scipy/" in s or "(numpy/" in s),
    ("detectors (detectors/)", lambda s: "(detectors/" in s),
    ("send changelog records (TableStore.put -> faust -> aiokafka)", lambda s: "send_changelog" in s),
    (
        "send outputs (producer.send -> faust -> aiokafka)",
        lambda s: (
            PUBLISH in s and ("(faust/" in s.split(PUBLISH, 1)[1] or "(aiokafka/" in s.split(PUBLISH, 1)[1])
        ),
    ),
    ("serialise outputs (orjson.dumps etc. in streams/batch_publisher.py)", lambda s: PUBLISH in s),
    (
        "join + policy (join.py, policy.py, expiry.py)",
        lambda s: re.search(r"streams/(join|policy|expiry|emit)\.py", s) is not None,
    ),
    ("aggregate + views", lambda s: re.search(r"streams/(aggregate\.py|views/)", s) is not None),
    ("state write-behind (state.py)", lambda s: "streams/state.py" in s),
    (
        "convowatch glue (agents: app.py, join_agent.py, aggregate_agent.py; pipeline.py)",
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
    (
        "faust/mode other (send path with cut stacks, stream draining, commit, timers)",
        lambda s: "(faust/" in s or "(mode/" in s,
    ),
    ("aiokafka other", lambda s: "(aiokafka/" in s),
    ("asyncio event loop (scheduling, select)", lambda s: True),
]


def parse_raw(path: Path) -> list[tuple[str, list[str], int]]:
    samples = []
    # split on "\n" only: frames garbled by non-blocking sampling may hold other line separators
    for line in path.read_text(errors="replace").split("\n"):
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
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


def components(samples: list[tuple[str, list[str], int]]) -> tuple[Counter[str], int]:
    comp: Counter[str] = Counter()
    for thread, frames, count in samples:
        if "MainThread" in thread:
            comp[classify(frames)] += count
    return comp, sum(comp.values())


def analyse(path: Path, busy_path: Path | None = None, top: int = 25, cpu_us: float | None = None) -> dict:
    """Print the summary of ``path`` (``--idle``), ``path.busy`` (not idle) and ``path.gil`` (holding the
    GIL); ``cpu_us`` (worker CPU µs per event, measured without the profiler) turns GIL shares into µs."""
    everything = parse_raw(path)
    busy = parse_raw(busy_path) if busy_path else everything
    gil_path = path.with_suffix(path.suffix + ".gil")
    gil = parse_raw(gil_path) if gil_path.exists() else []
    seen: Counter[str] = Counter()
    active: Counter[str] = Counter()
    holding: Counter[str] = Counter()
    for thread, _, count in everything:
        seen[thread] += count
    for thread, _, count in busy:
        active[thread] += count
    for thread, _, count in gil:
        holding[thread] += count
    print(f"\nsamples: {sum(seen.values()):,} (all threads, idle included)")
    print("threads: share of their samples busy (not in select/recv/sleep) and holding the GIL")
    for thread, count in seen.most_common():
        if active.get(thread, 0) or count > 50:
            print(
                f"  busy {active.get(thread, 0) / count:6.1%}  GIL {holding.get(thread, 0) / count:6.1%}"
                f"  of {count:6,}  {thread}"
            )
    comp_busy, n_busy = components(busy)
    comp_gil, n_gil = components(gil)
    primary, n_primary = (comp_gil, n_gil) if n_gil else (comp_busy, n_busy)
    unit = f"; µs/event at {cpu_us:.0f} CPU µs/event" if cpu_us and n_gil else ""
    print(
        f"\nevent-loop thread (MainThread) by component (first matching rule); busy = {n_busy:,} samples "
        f"(includes time descheduled inside syscalls), GIL = {n_gil:,} samples (Python CPU){unit}:"
    )
    print(f"  {'busy':>6}  {'GIL':>6}{'   µs/ev' if unit else ''}")
    for name, _ in primary.most_common():
        b = comp_busy.get(name, 0) / max(n_busy, 1)
        g = comp_gil.get(name, 0) / max(n_gil, 1)
        extra = f"  {g * cpu_us:6.1f}" if unit and cpu_us else ""
        print(f"  {b:6.1%}  {g:6.1%}{extra}  {name}")
    main = [(f, c) for t, f, c in (gil or busy) if "MainThread" in t]
    own: Counter[str] = Counter()
    incl: Counter[str] = Counter()
    for frames, count in main:
        own[short(frames[-1]) if frames else "?"] += count
        for frame in {re.sub(r":\d+\)", ")", f) for f in frames}:
            incl[short(frame)] += count
    which = "GIL" if gil else "busy"
    print(f"\ntop {top} functions by own time ({which} samples, innermost frame, with line):")
    for frame, count in own.most_common(top):
        print(f"  {count / n_primary:6.1%}  {frame}")
    print(f"\ntop functions by inclusive time ({which} samples, >= 2%, outer run-loop frames omitted):")
    for frame, count in incl.most_common(80):
        if count / n_primary < 0.02:
            break
        if count / n_primary > 0.97:
            continue
        print(f"  {count / n_primary:6.1%}  {frame}")
    return {"components": {k: v / n_primary for k, v in primary.items()}, "main_samples": n_primary}


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
    parser.add_argument(
        "--role",
        choices=["all", "join"],
        default="all",
        help="the worker's CONVOWATCH_ROLE: join profiles the escalation path alone (no aggregation)",
    )
    args = parser.parse_args()
    if args.analyse:
        busy = args.analyse.with_suffix(args.analyse.suffix + ".busy")
        analyse(args.analyse, busy if busy.exists() else None, cpu_us=args.cpu_us)
        return
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy is None:
        raise SystemExit("py-spy not found: .venv/bin/pip install py-spy")

    from confluent_kafka.admin import AdminClient
    from throughput_inputs import (
        INPUT_PREFIX,
        QUIET,
        PARTITIONS,
        end_offsets,
        generate,
        input_names,
        produce_all,
    )
    from throughput_worker import run_worker_once

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
        spies.append(
            subprocess.Popen(
                [*common, "--gil", "-o", str(out) + ".gil"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
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
            broker.bootstrap,
            admin,
            ends,
            len(records),
            "spy",
            out.parent,
            profile=profile,
            extra_env={"CONVOWATCH_ROLE": args.role},
            aggregation=args.role != "join",
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
