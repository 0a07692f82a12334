"""The ``convowatch`` command line."""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import SettingsError

from schemas import Stream
from streams.config import Settings
from streams.config_validation import MAX_SECONDS
from streams.exceptions import ConvowatchError
from streams.output_files import cannot_write, make_output_directory


def _settings(args: argparse.Namespace, **flags: Any) -> Settings:
    """The settings, with the values of command-line ``flags`` (``None``: not given) and ``--broker``."""
    overrides = {k: v for k, v in flags.items() if v is not None}
    if getattr(args, "broker", None):
        overrides["broker"] = args.broker
    try:
        return Settings(**overrides)
    except SettingsError as exc:  # a JSON-valued variable that is not JSON; the message names the field
        field = str(exc).split('"')[1] if '"' in str(exc) else "?"
        message = f"invalid setting {field} (CONVOWATCH_{field.upper()}): not valid JSON"
        raise ConvowatchError(message) from None
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        field, *key = (str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")  # a check of streams/config_validation.py
        if field in overrides:  # given on the command line, not in the environment
            raise ConvowatchError(f"invalid --{field.replace('_', '-')}: {message}") from None
        at = f" at {'.'.join(key)}" if key else ""
        raise ConvowatchError(
            f"invalid setting {field} (CONVOWATCH_{field.upper()}){at}: {message}"
        ) from None


def _cmd_demo(args: argparse.Namespace) -> None:
    from streams.demo import run_demo

    settings = _settings(args, metrics_port=args.metrics_port)
    run_demo(settings, duration=args.duration, rate=args.rate, seed=args.seed, out_dir=args.out)


def _cmd_replay(args: argparse.Namespace) -> None:
    from streams.embedded import replay
    from streams.pipeline import Pipeline

    report = replay(
        Pipeline(_settings(args), batched=True),
        args.out,
        chats=args.chats,
        verdicts=args.verdicts,
        labels=args.labels,
        signals=args.signals,
        show_progress=not args.quiet,
    )
    summary = {
        "events": report["events"],
        "outputs": report["outputs"],
        "agreement": [
            {k: row[k] for k in ("judge_id", "dimension", "n", "percent_agreement", "cohen_kappa")}
            for row in report["agreement"]
        ],
    }
    print(json.dumps(summary, indent=2))
    print(f"wrote {args.out}/report.json", file=sys.stderr)


def _cmd_worker(args: argparse.Namespace) -> None:
    from streams.worker import run_worker

    run_worker(_settings(args, metrics_port=args.metrics_port, role=args.role), loglevel=args.loglevel)


def _cmd_produce(args: argparse.Namespace) -> None:
    from streams import producer

    settings = _settings(args)
    files = {
        s: p
        for s, p in (
            (Stream.CHAT_TURNS, args.chats),
            (Stream.JUDGE_VERDICTS, args.verdicts),
            (Stream.HUMAN_LABELS, args.labels),
            (Stream.SIGNALS, args.signals),
        )
        if p is not None
    }
    if args.generate:
        from streams.generator import TrafficGenerator, to_records

        start = args.start or datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=args.duration)
        generator = TrafficGenerator(seed=args.seed, rate=args.rate, start=start)
        items = to_records(generator.records(args.duration))
        sent = producer.produce_records(settings, ((r[2], r[3]) for r in items))
    elif files:
        sent = producer.produce_files(settings, files)
    else:
        raise ConvowatchError(
            "nothing to produce: give --chats/--verdicts/--labels/--signals files or --generate"
        )
    print(json.dumps({"sent": sent}))


def _cmd_topics(args: argparse.Namespace) -> None:
    from streams.admin import create_topics

    for name, outcome in create_topics(_settings(args, partitions=args.partitions)).items():
        print(f"{outcome:8} {name}")


def _cmd_schemas(args: argparse.Namespace) -> None:
    from schemas.export import write_json_schemas

    try:
        written = write_json_schemas(make_output_directory(args.out))
    except OSError as exc:
        raise cannot_write(Path(exc.filename or args.out), exc) from None
    for path in written:
        print(path)


def _cmd_report(args: argparse.Namespace) -> None:
    from streams.report import TimeRange, audit, write_report
    from streams.report_sources import directory_inputs, file_items, topic_items

    window = TimeRange(args.since, args.until)
    settings = _settings(args)
    files = {
        s: p
        for s, p in (
            (Stream.CHAT_TURNS, args.chats),
            (Stream.JUDGE_VERDICTS, args.verdicts),
            (Stream.HUMAN_LABELS, args.labels),
            (Stream.SIGNALS, args.signals),
        )
        if p is not None
    }
    if sum((args.input is not None, bool(files), args.from_topics)) != 1:
        raise ConvowatchError(
            "give exactly one source: --input DIR, --chats/--verdicts/--labels/--signals or --from-topics"
        )
    if args.from_topics:
        items = topic_items(settings, window.since - timedelta(seconds=args.lookback))
        source = f"topics {settings.topic_prefix}* on {settings.broker}"
    else:
        inputs = directory_inputs(args.input) if args.input is not None else files
        items = file_items(inputs)
        source = "files " + ", ".join(str(p) for p in inputs.values())
    data = audit(settings, window, items, source)
    out = write_report(data, args.out)
    print(json.dumps({"turns": data["turns"], "events": data["events"], "out": str(out)}))


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _non_negative_seconds(text: str) -> float:
    value = _number(text)
    if not 0 <= value < MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"seconds must be 0 or more (and finite), not {text}")
    return value


def _positive_seconds(text: str) -> float:
    value = _number(text)
    if not 0 < value < MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"seconds must be more than 0 (and under ten years), not {text}")
    return value


def _positive_rate(text: str) -> float:
    value = _number(text)
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"the rate must be more than 0 (and finite), not {text}")
    return value


def _aware_datetime(text: str) -> datetime:
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (e.g. 2026-11-02T08:00:00Z)")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="convowatch",
        description="Real-time quality monitor for conversational AI. Settings also come from CONVOWATCH_* "
        "environment variables (see README).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="embedded demo with generated traffic and an injected incident")
    demo.add_argument(
        "--duration", type=_positive_seconds, default=30.0, help="wall-clock seconds to run (default 30)"
    )
    demo.add_argument(
        "--rate",
        type=_positive_rate,
        default=200.0,
        help="turns per wall-clock second; event time runs 60x faster (default 200)",
    )
    demo.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    demo.add_argument("--out", type=Path, default=Path("convowatch-out"), help="output directory")
    demo.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Prometheus port (default CONVOWATCH_METRICS_PORT, 9108)",
    )
    demo.set_defaults(func=_cmd_demo)

    replay = sub.add_parser("replay", help="embedded replay of JSONL files, merged by event time")
    replay.add_argument("--chats", type=Path, help="chat turns JSONL")
    replay.add_argument("--verdicts", type=Path, help="judge verdicts JSONL")
    replay.add_argument("--labels", type=Path, help="human labels JSONL")
    replay.add_argument("--signals", type=Path, help="conversation signals JSONL (business outcomes)")
    replay.add_argument("--out", type=Path, required=True, help="output directory")
    replay.add_argument("--quiet", action="store_true", help="no progress line")
    replay.set_defaults(func=_cmd_replay)

    worker = sub.add_parser("worker", help="the Faust worker on Kafka")
    worker.add_argument("--broker", help="bootstrap servers (default CONVOWATCH_BROKER or localhost:9092)")
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        help="Prometheus port (default CONVOWATCH_METRICS_PORT, 9108)",
    )
    worker.add_argument(
        "--role",
        choices=["all", "join", "aggregate"],
        default=None,
        help="all (default, CONVOWATCH_ROLE), join (escalation path) or aggregate (detector views)",
    )
    worker.add_argument("--loglevel", default="warning", choices=["debug", "info", "warning", "error"])
    worker.set_defaults(func=_cmd_worker)

    produce = sub.add_parser("produce", help="send JSONL files or generated traffic to the input topics")
    produce.add_argument("--broker", help="bootstrap servers")
    produce.add_argument("--chats", type=Path)
    produce.add_argument("--verdicts", type=Path)
    produce.add_argument("--labels", type=Path)
    produce.add_argument("--signals", type=Path, help="conversation signals JSONL, keyed by conversation_id")
    produce.add_argument("--generate", action="store_true", help="send generated traffic instead of files")
    produce.add_argument(
        "--duration", type=_positive_seconds, default=60.0, help="event-time seconds to generate"
    )
    produce.add_argument(
        "--rate", type=_positive_rate, default=200.0, help="generated turns per event-time second"
    )
    produce.add_argument("--seed", type=int, default=7)
    produce.add_argument(
        "--start",
        type=_aware_datetime,
        default=None,
        help="event time of the first generated record, RFC 3339 (default: --duration before now)",
    )
    produce.set_defaults(func=_cmd_produce)

    topics = sub.add_parser("topics", help="topic administration")
    topics_sub = topics.add_subparsers(dest="topics_command", required=True, metavar="ACTION")
    create = topics_sub.add_parser("create", help="create every convowatch topic that does not exist")
    create.add_argument("--broker", help="bootstrap servers")
    create.add_argument(
        "--partitions", type=int, default=None, help="partitions per topic (default CONVOWATCH_PARTITIONS, 4)"
    )
    create.set_defaults(func=_cmd_topics)

    schemas = sub.add_parser("schemas", help="export the event contract as JSON Schema")
    schemas.add_argument("--out", type=Path, required=True, help="directory to write into")
    schemas.set_defaults(func=_cmd_schemas)

    report = sub.add_parser("report", help="self-contained HTML audit of an event-time range")
    report.add_argument("--since", type=_aware_datetime, required=True, help="range start, RFC 3339")
    report.add_argument("--until", type=_aware_datetime, required=True, help="range end (excluded)")
    report.add_argument(
        "--input", type=Path, help="directory of chat_turns.jsonl, judge_verdicts.jsonl, ... (replay's files)"
    )
    report.add_argument("--chats", type=Path, help="chat turns JSONL")
    report.add_argument("--verdicts", type=Path, help="judge verdicts JSONL")
    report.add_argument("--labels", type=Path, help="human labels JSONL")
    report.add_argument("--signals", type=Path, help="conversation signals JSONL")
    report.add_argument("--from-topics", action="store_true", help="read the input topics on Kafka")
    report.add_argument("--broker", help="bootstrap servers (with --from-topics)")
    report.add_argument(
        "--lookback",
        type=_non_negative_seconds,
        default=3600.0,
        help="with --from-topics: also read this many seconds before --since, so verdicts and labels in "
        "the range meet their turns from before it (default 3600)",
    )
    report.add_argument("--out", type=Path, required=True, help="HTML file to write")
    report.set_defaults(func=_cmd_report)
    return parser


def tune_gc() -> None:
    """Collect young objects rarely: with Python's default thresholds (700 allocations), collections took
    about half the processing time when the join held its state as dicts (the aggregation's detectors are
    long-lived objects too). The join's state is JSON bytes now, which no collection scans."""
    gc.set_threshold(100_000, 50, 100)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """``CONVOWATCH_*`` variables that are no setting (a typo is otherwise silently ignored); the test
    suite's own ``CONVOWATCH_TEST_*`` excepted."""
    known = {f"CONVOWATCH_{name.upper()}" for name in Settings.model_fields}
    return sorted(
        name
        for name in environ
        if name.startswith("CONVOWATCH_") and name not in known and not name.startswith("CONVOWATCH_TEST_")
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    tune_gc()
    if unknown := unknown_variables(os.environ):  # names only: a value may be a secret
        print(f"convowatch: warning: ignoring {', '.join(unknown)}: no such setting", file=sys.stderr)
    try:
        args.func(args)
    except ConvowatchError as exc:
        print(f"convowatch: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
