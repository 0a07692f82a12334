"""A self-contained demo: generated traffic through the embedded pipeline, live escalations and /metrics.

Event time runs ``speedup`` times faster than wall time (60x by default: a 30 s demo covers 30 minutes of
traffic), so a safety regression that starts after the shopper-v42 rollout shows up within the run.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from prometheus_client import CollectorRegistry, make_wsgi_app

from streams.alerting import build_alertmanager_sink, publish_escalation
from streams.config import Settings
from streams.embedded import JsonlSink, Record, run_records
from streams.emit import Emit
from streams.exceptions import ConfigError
from streams.generator import Incident, TrafficGenerator, to_records
from streams.health import serve_app, server_url
from streams.metrics import Metrics
from streams.output_files import write_output
from streams.pipeline import Pipeline

DEFAULT_SPEEDUP = 60.0
#: Where, as shares of the run's event time, the rollout starts and ends and the incident begins.
ROLLOUT_START, ROLLOUT_RAMP, INCIDENT_START = 0.1, 0.4, 0.35
INCIDENT_FAIL_RATE = 0.05
#: Escalations printed one per line; the rest are counted in the status line (a demo, not a log).
MAX_PRINTED_ESCALATIONS = 30


class _Console:
    """Escalation lines plus one status line: redrawn in place on a terminal, printed every few seconds
    otherwise."""

    def __init__(self, stream: IO[str], interval: float = 1.0) -> None:
        self.stream = stream
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.interval = interval if self.tty else max(interval, 5.0)
        self.last = time.monotonic()
        self.status_width = 0

    def line(self, text: str) -> None:
        self._clear()
        print(text, file=self.stream, flush=True)

    def status(self, text: str, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self.last < self.interval:
            return
        self.last = now
        if self.tty and not final:
            self._clear()
            self.stream.write(text)
            self.stream.flush()
            self.status_width = len(text)
        else:
            self.line(text)

    def _clear(self) -> None:
        if self.status_width:
            self.stream.write("\r" + " " * self.status_width + "\r")
            self.status_width = 0


def _serve_metrics(settings: Settings, port: int, registry: CollectorRegistry) -> tuple[Any, str | None]:
    """Serve /metrics on ``port``, or on a free port if that one cannot be bound. Returns (server, fallback
    note); raises :class:`ConfigError` (naming the address) when no port can be bound on the host."""
    app = make_wsgi_app(registry)
    try:
        return serve_app(app, settings.metrics_host, port), None
    except ConfigError as exc:
        if port == 0:
            raise
        unavailable = exc
    try:
        server = serve_app(app, settings.metrics_host, 0)
    except ConfigError:  # the host, not the port: say what failed first
        raise unavailable from None
    return server, f"{unavailable}; using free port {server.server_port}"


def _paced(
    records: Iterable[Record], speedup: float, deadline: float, state: dict[str, Any], tick: Any
) -> Iterator[Record]:
    """Release each record when its event time is due on the wall clock; stop at ``deadline`` (monotonic)."""
    began = time.monotonic()
    first: float | None = None
    for record in records:
        if first is None:
            first = record[0]
        due = began + (record[0] - first) / speedup
        while (now := time.monotonic()) < due:
            if now >= deadline:
                state["truncated"] = True
                return
            tick()
            time.sleep(min(due - now, 0.1, max(deadline - now, 0.0)))
        if now >= deadline:
            state["truncated"] = True
            return
        state["event_time"] = record[0]
        tick()
        yield record


def run_demo(
    settings: Settings,
    *,
    duration: float = 30.0,
    rate: float = 200.0,
    seed: int = 7,
    out_dir: Path = Path("convowatch-out"),
    metrics_port: int | None = None,
    speedup: float | None = None,
    stream: IO[str] | None = None,
) -> dict[str, Any]:
    """Run ``duration`` wall seconds of generated traffic through the embedded pipeline; return the report.

    ``rate`` is chat turns per wall second; event time runs ``speedup`` times faster (default 60x), so the
    generator produces ``rate / speedup`` turns per event second over ``duration * speedup`` event seconds.
    Outputs go to ``out_dir`` (``defects.jsonl``, ``escalations.jsonl``, ``deadletter.jsonl``,
    ``report.json``); metrics are served on ``metrics_port`` (default ``settings.metrics_port``; a taken port
    falls back to a free one) while it runs.
    """
    if not duration > 0 or not rate > 0:
        raise ValueError("duration and rate must be positive")
    speedup = DEFAULT_SPEEDUP if speedup is None else speedup
    if not speedup > 0:
        raise ValueError("speedup must be positive")
    event_duration = duration * speedup
    # event time ends about now, so the demo's metrics look live to Prometheus' staleness alerts
    start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(seconds=event_duration)
    generator = TrafficGenerator(
        start=start,
        seed=seed,
        rate=rate / speedup,
        incident=Incident(
            start_after_s=INCIDENT_START * event_duration,
            model_version="shopper-v42",
            journey="shopper",
            dimension="safety",
            fail_rate=INCIDENT_FAIL_RATE,
        ),
        rollout_start_s=ROLLOUT_START * event_duration,
        rollout_ramp_s=ROLLOUT_RAMP * event_duration,
    )
    registry = CollectorRegistry()
    pipeline = Pipeline(settings, Metrics(registry, label_max_values=settings.label_max_values), batched=True)
    pipeline.metrics.worker_role.labels("all").set(1)  # both stages, in process (alerts on missing stages)
    console = _Console(sys.stdout if stream is None else stream)  # sys.stdout now, not at import
    port = settings.metrics_port if metrics_port is None else metrics_port
    server, note = _serve_metrics(settings, port, registry)
    metrics_url = server_url(settings.metrics_host, server.server_port, "/metrics")
    if note:
        console.line(f"convowatch demo: {note}")
    console.line(
        f"convowatch demo: {duration:g} s at {rate:g} turns/wall-s, event time x{speedup:g} "
        f"({event_duration / 60:.0f} min of traffic), seed {seed}"
    )
    console.line(f"convowatch demo: metrics at {metrics_url}")
    console.line(
        f"convowatch demo: shopper-v42 rolls out from +{ROLLOUT_START * event_duration:.0f} s; "
        f"a safety regression starts at +{INCIDENT_START * event_duration:.0f} s event time"
    )

    alerts = build_alertmanager_sink(settings, pipeline.metrics, generator_url=metrics_url)
    if alerts is not None:
        console.line("convowatch demo: escalations also go to Alertmanager")
    to_alertmanager = publish_escalation(alerts)
    defects: Counter[str] = Counter()
    severities: Counter[str] = Counter()
    state: dict[str, Any] = {"truncated": False, "event_time": None}
    started = time.monotonic()

    def status(*_: Any, final: bool = False) -> None:
        c = pipeline.counts
        clock = time.strftime("%H:%M:%S", time.gmtime(state["event_time"])) if state["event_time"] else "--"
        console.status(
            f"  [{time.monotonic() - started:5.1f}s] event {clock}Z  turns {c['chat_turns']:,}  "
            f"verdicts {c['judge_verdicts']:,}  labels {c['human_labels']:,}  "
            f"defects {sum(defects.values()):,}  escalations {sum(severities.values()):,}",
            final=final,
        )

    try:
        with ExitStack() as stack:
            sink = JsonlSink(out_dir, stack)

            def publish(emit: Emit) -> None:
                sink(emit)
                value = emit.value
                if emit.topic == "defects":
                    defects[value["category"]] += 1
                elif emit.topic == "escalations":
                    to_alertmanager(value)
                if emit.topic == "escalations" and value["revision"] == 1:
                    severities[value["severity"]] += 1
                    shown = sum(severities.values())
                    if shown > MAX_PRINTED_ESCALATIONS:
                        return
                    if shown == MAX_PRINTED_ESCALATIONS:
                        console.line(
                            "  ! ... further escalations are counted below and written to escalations.jsonl"
                        )
                        return
                    turn = value["turn_ids"][0]
                    # the summary repeats the turn id: keep what follows it
                    summary = value["summary"].removeprefix(f"High-risk failure on turn {turn}").lstrip(": ")
                    summary = summary if len(summary) <= 100 else summary[:97] + "..."
                    console.line(
                        f"  ! {value['event_time'][11:19]}Z {value['severity']:<8} {value['kind']} "
                        f"{turn}: {summary}"
                    )

            deadline = started + duration + max(2.0, 0.25 * duration)
            records = _paced(to_records(generator.records(event_duration)), speedup, deadline, state, status)
            run_records(pipeline, records, publish, status)
    finally:
        server.shutdown()
        server.server_close()
        if alerts is not None:
            alerts.flush(2.0)
            alerts.close()

    report = pipeline.report()
    report["outputs"] = sink.counts
    report["defects_by_category"] = dict(sorted(defects.items()))
    report["escalations_by_severity"] = dict(sorted(severities.items()))
    report["demo"] = {
        "duration_s": duration,
        "rate": rate,
        "turns_per_event_second": rate / speedup,
        "speedup": speedup,
        "seed": seed,
        "event_duration_s": event_duration,
        "wall_seconds": round(time.monotonic() - started, 3),
        "truncated": state["truncated"],
        "metrics_url": metrics_url,
        "incident": {
            "journey": "shopper",
            "model_version": "shopper-v42",
            "dimension": "safety",
            "start_after_s": INCIDENT_START * event_duration,
            "fail_rate": INCIDENT_FAIL_RATE,
        },
    }
    write_output(out_dir / "report.json", orjson.dumps(report, option=orjson.OPT_INDENT_2) + b"\n")
    _summary(console, report, out_dir)
    return report


def _summary(console: _Console, report: dict[str, Any], out_dir: Path) -> None:
    demo = report["demo"]
    if demo["truncated"]:
        console.line("convowatch demo: the pipeline fell behind; stopped at the deadline")
    minutes = demo["event_duration_s"] / 60
    console.line(f"Summary ({demo['wall_seconds']:.1f} s wall, {minutes:.0f} min event time)")
    console.line("  events:      " + "  ".join(f"{k} {v:,}" for k, v in report["events"].items()))
    by_category = ", ".join(f"{k} {v:,}" for k, v in report["defects_by_category"].items())
    console.line(f"  defects:     {sum(report['defects_by_category'].values()):,} ({by_category or 'none'})")
    escalations = report["escalations_by_severity"]
    by_severity = ", ".join(f"{k} {v:,}" for k, v in escalations.items())
    total = sum(escalations.values())
    console.line(f"  escalations: {total:,}" + (f" ({by_severity})" if escalations else ""))
    rows = report["agreement"]
    console.line(f"  agreement:   {len(rows)} judge/dimension rows" + (":" if rows else ""))
    for row in rows:
        pa, kappa = row["percent_agreement"], row["cohen_kappa"]
        console.line(
            f"    {row['judge_id']:<10} {row['dimension']:<19} n={row['n']:<5,} "
            f"agreement {'-' if pa is None else f'{pa:.1%}':>6}  "
            f"kappa {'-' if kappa is None else f'{kappa:.2f}':>5}"
        )
    console.line(f"  outputs in {out_dir}/ (defects.jsonl, escalations.jsonl, deadletter.jsonl, report.json)")
