"""``convowatch report``: the figures of an event-time range ``[since, until)`` for an HTML audit.

Records come from JSONL files (what ``convowatch replay`` reads) or from the input topics, and go
through the embedded :class:`~streams.pipeline.Pipeline` with a fresh metrics registry. The join sees
every record read, so a label stamped after ``until`` still meets its turn; only observations, defects
and escalations whose event time (the turn's) is in the range reach the aggregates and this report.
Figures come from ``Pipeline.report()``; agreement per time bucket, failing segments and label latency
are counted here from the same in-range observations. Chat text is never read into the report.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors import AgreementTracker, wilson_interval
from schemas import Stream
from streams.config import Settings
from streams.emit import iso
from streams.exceptions import ConvowatchError
from streams.labels import UNKNOWN
from streams.metrics import Metrics
from streams.output_files import cannot_write, make_output_directory, write_output
from streams.pipeline import Pipeline
from streams.report_sources import Item
from streams.views.gold import ALL as ALL_DIMENSIONS

SEGMENTS = ("journey", "intent", "model_version", "channel", "modality")
TOP_SEGMENTS = 15
BUCKETS = (300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
MAX_BUCKETS = 60


@dataclass(frozen=True)
class TimeRange:
    """``[since, until)`` in event time; both ends timezone-aware."""

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        for name, value in (("since", self.since), ("until", self.until)):
            if value.tzinfo is None or value.utcoffset() is None:
                raise ConvowatchError(
                    f"--{name} {value.isoformat()} has no UTC offset; give e.g. 2026-11-02T08:00:00Z"
                )
        if self.since >= self.until:
            raise ConvowatchError(
                f"--since ({self.since.isoformat()}) must be before --until ({self.until.isoformat()})"
            )

    @property
    def start(self) -> float:
        return self.since.timestamp()

    @property
    def end(self) -> float:
        return self.until.timestamp()

    def __contains__(self, ts: object) -> bool:
        return isinstance(ts, float | int) and self.start <= ts < self.end

    @property
    def bucket_seconds(self) -> int:
        """Trend buckets: the shortest of 5 and 15 minutes, 1 and 6 hours, a day or a week that cuts the
        range into at most :data:`MAX_BUCKETS`."""
        length = self.end - self.start
        return next((b for b in BUCKETS if length / b <= MAX_BUCKETS), BUCKETS[-1])


def _ts(value: Any) -> float | None:
    """An ISO timestamp (as published records carry) or Unix seconds, as Unix seconds."""
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            return None
    return float(value) if isinstance(value, int | float) else None


def audit(settings: Settings, window: TimeRange, items: Iterable[Item], source: str) -> dict[str, Any]:
    """The report's data: ``items`` through a fresh embedded pipeline, kept to ``window``."""
    metrics = Metrics(label_max_values=settings.label_max_values)
    collector = AuditCollector(Pipeline(settings, metrics, batched=True), window)
    collector.feed(items)
    collector.finish()
    return collector.build(source)


def write_report(data: dict[str, Any], out: Path) -> Path:
    """Render ``data`` to ``out`` (written whole: a reader never sees half a page)."""
    from streams.report_html import render

    make_output_directory(out.parent)
    partial = out.with_name(f".{out.name}.partial")
    write_output(partial, render(data).encode("utf-8"))
    try:
        partial.replace(out)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise cannot_write(out, exc) from None
    return out


class AuditCollector:
    """Feeds items through ``pipeline``; aggregates only what happened in ``window``."""

    def __init__(self, pipeline: Pipeline, window: TimeRange) -> None:
        self.pipeline = pipeline
        self.window = window
        self.bucket = window.bucket_seconds
        self.records_read = 0
        self.events: Counter[str] = Counter()  # valid records with their own event time in range
        self.dead: Counter[str] = Counter()  # reason -> dead letters dated in range
        self.dead_undated = 0
        self.turns = 0
        self.segment_turns: Counter[tuple[str, str]] = Counter()
        self.defects = 0
        self.defects_without_turn = 0  # of turns never received: no segment, not among the turns counted
        self.divergences = 0
        self._defective: set[tuple[str, str]] = set()
        self.category_turns: Counter[str] = Counter()
        self.segment_defective: Counter[tuple[str, str, str]] = Counter()
        self.trends: dict[tuple[str, str], dict[int, AgreementTracker]] = {}
        self.latencies: dict[str, list[float]] = {}
        self.annotators: dict[str, set[str]] = {}
        self.gold_labels: Counter[str] = Counter()
        self.escalations: dict[str, tuple[str, str]] = {}

    def feed(self, items: Iterable[Item]) -> None:
        for ts, _, stream, raw, source, partition, offset in items:
            emits = self.pipeline.ingest(stream, raw, source_topic=source, partition=partition, offset=offset)
            dead = False
            for emit in emits:
                if emit.topic == "deadletter":
                    dead = True
                    if ts == float("-inf"):
                        self.dead_undated += 1
                    elif ts in self.window:
                        self.dead[emit.value["reason"]] += 1
                else:
                    self._route(emit.topic, emit.value)
            if not dead and ts in self.window:
                self.events[stream.value] += 1
            self.records_read += 1
            if self.records_read % 1024 == 0:
                self.pipeline.flush()

    def finish(self) -> None:
        """End of input: evict every pending turn (as :meth:`Pipeline.finish`, through the range filter)."""
        pipeline = self.pipeline
        pipeline.flush()
        pipeline.joiner.watermark = float("inf")
        for emit in pipeline.joiner.evict():
            self._route(emit.topic, emit.value)
        pipeline.flush()

    def _route(self, topic: str, value: dict[str, Any], in_range: bool = False) -> None:
        """``in_range``: emitted by the aggregation of an in-range observation, so about in-range turns
        whatever its own time (a vendor SLA breach is dated by the labels, which may come after the range)."""
        if topic == "observations":
            if value.get("ts") in self.window:  # every kind carries the event time of what it is about
                self._observe(value)
                for emit in self.pipeline.aggregate_in_process(value):
                    self._route(emit.topic, emit.value, in_range=True)
        elif topic == "defects":
            if _ts(value["ts"]) in self.window:
                self._defect(value)
        elif topic == "escalations":
            if in_range or _ts(value["event_time"]) in self.window:
                self.escalations[value["escalation_id"]] = (value["kind"], value["severity"])
        elif topic == "divergences" and _ts(value["ts"]) in self.window:
            self.divergences += 1

    def _observe(self, obs: dict[str, Any]) -> None:
        kind = obs["kind"]
        if kind == "turn":
            self.turns += 1
            segment = obs["segment"] or {}
            for name in SEGMENTS:
                self.segment_turns[(name, segment.get(name) or UNKNOWN)] += 1
        elif kind == "pair":
            bucket = int((obs["ts"] - self.window.start) // self.bucket)
            trackers = self.trends.setdefault((obs["judge_id"], obs["dimension"]), {})
            trackers.setdefault(bucket, AgreementTracker()).update(obs["judge_label"], obs["human_label"])
        elif kind == "labelled" and not obs.get("update"):  # once per annotator and turn
            vendor = obs["vendor_id"]
            self.latencies.setdefault(vendor, []).append(max(obs["label_ts"] - obs["ts"], 0.0))
            self.annotators.setdefault(vendor, set()).add(obs["annotator_id"])
            self.gold_labels[vendor] += bool(obs["is_gold"])

    def _defect(self, defect: dict[str, Any]) -> None:
        self.defects += 1
        if defect["turn"] is None:  # published at eviction for a turn that never arrived
            self.defects_without_turn += 1
            return
        category = defect["category"]
        if (defect["turn_id"], category) in self._defective:
            return
        self._defective.add((defect["turn_id"], category))
        self.category_turns[category] += 1
        segment = defect["segment"] or {}
        for name in SEGMENTS:
            self.segment_defective[(name, segment.get(name) or UNKNOWN, category)] += 1

    # -- the report's data ---------------------------------------------------------------------------

    def build(self, source: str) -> dict[str, Any]:
        report = self.pipeline.report()
        kinds = Counter(self.escalations.values())
        return {
            "since": iso(self.window.start),
            "until": iso(self.window.end),
            "source": source,
            "generated_at": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "records_read": self.records_read,
            "events": {s.value: self.events[s.value] for s in Stream},
            "turns": self.turns,
            "dead_letters": {
                "in_range": sum(self.dead.values()),
                "undated": self.dead_undated,
                "by_reason": dict(sorted(self.dead.items())),
            },
            "defects": self.defects,
            "defects_without_turn": self.defects_without_turn,
            "defective_turns": dict(sorted(self.category_turns.items())),
            "divergences": self.divergences,
            "escalations": [{"kind": k, "severity": s, "count": n} for (k, s), n in sorted(kinds.items())],
            "bucket_seconds": self.bucket,
            "buckets": self._bucket_starts(),
            "agreement": report.get("agreement", []),
            "trends": self._trends(),
            "defect_rates": report.get("defect_rates", []),
            "top_segments": self._top_segments(),
            "vendors": self._vendors(report),
            "gold_items": _gold_items(report.get("gold", {})),
            "vendor_view": report.get("vendors"),
            "versions": report.get("versions", []),
        }

    def _bucket_starts(self) -> list[str]:
        count = math.ceil((self.window.end - self.window.start) / self.bucket)
        return [iso(self.window.start + i * self.bucket) for i in range(count)]

    def _trends(self) -> list[dict[str, Any]]:
        out = []
        for (judge_id, dimension), buckets in sorted(self.trends.items()):
            points = [
                {
                    "bucket": i,
                    "n": t.n,
                    "percent_agreement": _finite(t.percent_agreement),
                    "cohen_kappa": _finite(t.cohen_kappa),
                }
                for i, t in sorted(buckets.items())
            ]
            out.append({"judge_id": judge_id, "dimension": dimension, "points": points})
        return out

    def _top_segments(self) -> list[dict[str, Any]]:
        """Segment values whose share of turns with a defect of a category most surely exceeds that
        category's share over all turns: ranked by the lower bound of the Wilson interval over the
        overall share (a handful of unlucky turns does not outrank a large segment's steady excess)."""
        rows: list[dict[str, Any]] = []
        for (name, value, category), count in self.segment_defective.items():
            turns = self.segment_turns.get((name, value), 0)
            overall = self.category_turns[category] / self.turns if self.turns else None
            low, high = wilson_interval(count, turns) if turns else (math.nan, math.nan)
            rows.append(
                {
                    "segment": name,
                    "segment_value": value,
                    "category": category,
                    "defective_turns": count,
                    "turns": turns,
                    "rate": count / turns if turns else None,
                    "interval": [low, high] if turns else None,
                    "overall_rate": overall,
                    "excess": low / overall if turns and overall else None,
                }
            )
        rows.sort(key=lambda r: (-(r["excess"] if r["excess"] is not None else -1.0), -r["defective_turns"]))
        return rows[:TOP_SEGMENTS]

    def _vendors(self, report: dict[str, Any]) -> list[dict[str, Any]]:
        # the gold view's "*" row is every dimension of the vendor's scored labels: its per-dimension rows
        # are the same labels again (pooling both counted each twice)
        gold_rows = [r for r in report.get("gold", {}).get("vendors", []) if r["dimension"] == ALL_DIMENSIONS]
        gold = _pool(gold_rows, "vendor_id", "n", "accuracy")
        consensus = _pool(
            [v for row in report.get("raters", []) for v in row["vendors"]], "vendor_id", "n", "agreement"
        )
        judges: dict[str, list[dict[str, Any]]] = {}
        for row in report.get("agreement_segments", []):
            if row["segment"] == "vendor":
                judges.setdefault(row["judge_id"], []).append({**row, "vendor_id": row["segment_value"]})
        by_judge = {j: _pool(rows, "vendor_id", "n", "percent_agreement") for j, rows in judges.items()}
        names = set(self.latencies) | set(gold) | set(consensus)
        for pooled in by_judge.values():
            names |= set(pooled)
        out = []
        for vendor in sorted(names):
            latencies = sorted(self.latencies.get(vendor, []))
            out.append(
                {
                    "vendor_id": vendor,
                    "labels": len(latencies),
                    "annotators": len(self.annotators.get(vendor, ())),
                    "gold_labels": self.gold_labels[vendor],
                    "latency_median_seconds": _quantile(latencies, 0.5),
                    "latency_p90_seconds": _quantile(latencies, 0.9),
                    "gold_accuracy": gold.get(vendor),
                    "consensus_agreement": consensus.get(vendor),
                    "judge_agreement": {
                        j: pooled[vendor] for j, pooled in by_judge.items() if vendor in pooled
                    },
                }
            )
        return out


def _gold_items(gold: dict[str, Any]) -> dict[str, Any]:
    """The golden items raters miss most (the gold view's ``items``), how many are suspect, and the turns
    with a suspect item."""
    return {
        "items_scored": gold.get("items_scored", 0),
        "items_suspect": gold.get("items_suspect", 0),
        "items": gold.get("items", []),
        "suspect_turns": gold.get("suspect_turns", []),
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _quantile(values: list[float], q: float) -> float | None:
    """Nearest-rank quantile of sorted ``values``."""
    return values[max(math.ceil(q * len(values)) - 1, 0)] if values else None


def _pool(rows: Iterable[dict[str, Any]], by: str, n_key: str, rate_key: str) -> dict[str, dict[str, Any]]:
    """Rows per dimension pooled per ``by``: total ``n``, successes, rate and Wilson interval."""
    totals: dict[str, list[float]] = {}
    for row in rows:
        n, rate = row.get(n_key) or 0, row.get(rate_key)
        if n and rate is not None:
            entry = totals.setdefault(row[by], [0, 0])
            entry[0] += n
            entry[1] += round(rate * n)
    pooled = {}
    for name, (n, hits) in totals.items():
        low, high = wilson_interval(hits, n)
        pooled[name] = {"n": int(n), "rate": hits / n, "interval": [low, high]}
    return pooled
