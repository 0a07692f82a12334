"""Late human labels against the join's size cap: how many meet their turn, with and without review keeps.

A busy join worker reaches its entry cap (``CONVOWATCH_JOIN_MAX_ENTRIES``) long before its TTL, so a turn
stays only as long as the cap's window (cap / turns per second); vendors label hours later. Turns the review
sampler sends for labelling go back to the join, which keeps them past the cap
(:meth:`streams.join.TurnJoiner.keep_for_review`). This runs the embedded pipeline (every view on) over
generated traffic twice in one process: once as shipped, once with the join ignoring the review keeps (the
code before them), and counts, per label, whether its turn was still held when the label came:

- labels of turns sent for review (``convowatch.review.requests``), made 1 to 24 hours (uniform, event time)
  after the request;
- a control: labels of a uniform sample of turns (chosen by hash, not requested), with the same delays.

    .venv/bin/python bench/late_labels.py                 # 60,000 turns, 1 a second, cap 10,000
    .venv/bin/python bench/late_labels.py --turns 20000 --json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import heapq
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import orjson
from prometheus_client import CollectorRegistry

from bench.common import machine
from schemas import Stream
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline

START = datetime(2026, 11, 2, tzinfo=UTC).timestamp()
HOUR = 3600.0


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def turn_records(i: int, ts: float, rng: random.Random) -> list[tuple[Stream, dict[str, Any]]]:
    """A turn and its judge verdict: 1% fail safety (high-risk: always sent for review)."""
    turn_id = f"t-{i:07d}"
    safety = "fail" if rng.random() < 0.01 else "pass"
    return [
        (
            Stream.CHAT_TURNS,
            {
                "turn_id": turn_id,
                "conversation_id": f"c-{i // 4}",
                "ts": iso(ts),
                "journey": rng.choice(["shopper", "driver_support"]),
                "channel": "chat",
                "model_version": "v1",
                "intent": "order_status",
            },
        ),
        (
            Stream.JUDGE_VERDICTS,
            {
                "turn_id": turn_id,
                "ts": iso(ts + 2),
                "judge_id": "judge-a",
                "judge_version": "1",
                "verdicts": [
                    {"dimension": "safety", "label": safety, "confidence": rng.uniform(0.5, 1.0)},
                    {"dimension": "relevance", "label": "pass", "confidence": rng.uniform(0.5, 1.0)},
                ],
            },
        ),
    ]


def label(turn_id: str, ts: float) -> dict[str, Any]:
    return {
        "turn_id": turn_id,
        "ts": iso(ts),
        "annotator_id": "ann-1",
        "vendor_id": "vendor-a",
        "verdicts": [{"dimension": "safety", "label": "pass"}],
    }


def control(turn_id: str, share: float) -> bool:
    """A uniform sample of turns, labelled whether or not they were requested (a team's own sample)."""
    digest = hashlib.blake2b(turn_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest) / 2**64 < share


def run(turns: int, rate: float, cap: int, seed: int, control_share: float, keeps: bool) -> dict[str, Any]:
    settings = Settings(join_max_entries=cap, evict_every=1_000)
    pipeline = Pipeline(settings, Metrics(CollectorRegistry()))
    if not keeps:  # the join as before the review keeps: requests never reach it, escalations keep nothing
        pipeline.joiner.keep_for_review = lambda turn_id: False  # type: ignore[method-assign]
        pipeline.joiner._keep_escalated = lambda turn_id, entry: None  # type: ignore[method-assign]
    rng = random.Random(seed)
    due: list[tuple[float, str, str]] = []  # (label time, turn id, population)
    requested: set[str] = set()  # a request replaced by a later one is labelled once
    met = {"requested": 0, "control": 0}
    labels = {"requested": 0, "control": 0}
    offset = 0
    peak_pending = 0
    began = time.perf_counter()

    def feed(stream: Stream, record: dict[str, Any]) -> list[Any]:
        nonlocal offset
        offset += 1
        return pipeline.process(stream, orjson.dumps(record), source_topic=stream.value, offset=offset)

    def labels_due(until: float) -> None:
        while due and due[0][0] <= until:
            ts, turn_id, population = heapq.heappop(due)
            entry = pipeline.joiner.state.get(turn_id)
            labels[population] += 1
            met[population] += entry is not None and entry["turn"] is not None
            feed(Stream.HUMAN_LABELS, label(turn_id, ts))

    for i in range(turns):
        ts = START + i / rate
        labels_due(ts)
        for stream, record in turn_records(i, ts, rng):
            for emit in feed(stream, record):
                if emit.topic == "review_requests" and emit.value["turn_id"] not in requested:
                    requested.add(emit.value["turn_id"])
                    heapq.heappush(
                        due, (ts + rng.uniform(HOUR, 24 * HOUR), emit.value["turn_id"], "requested")
                    )
        turn_id = f"t-{i:07d}"
        if control(turn_id, control_share):
            heapq.heappush(due, (ts + rng.uniform(HOUR, 24 * HOUR), turn_id, "control"))
        peak_pending = max(peak_pending, len(pipeline.joiner.state))
    labels_due(float("inf"))
    seconds = time.perf_counter() - began
    return {
        "review_keeps": keeps,
        "labels_of_requested_turns": labels["requested"],
        "requested_met_their_turn": met["requested"],
        "requested_met_share": round(met["requested"] / max(labels["requested"], 1), 4),
        "labels_of_control_turns": labels["control"],
        "control_met_their_turn": met["control"],
        "control_met_share": round(met["control"] / max(labels["control"], 1), 4),
        "peak_pending": peak_pending,
        "kept_for_review_at_end": len(pipeline.joiner.kept_for_review),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--turns", type=int, default=60_000)
    parser.add_argument("--rate", type=float, default=1.0, help="turns per second of event time")
    parser.add_argument("--max-entries", type=int, default=10_000, help="the join's cap")
    parser.add_argument("--control-share", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    window_hours = args.max_entries / args.rate / HOUR  # a turn and its verdict share one entry
    rows = [
        run(args.turns, args.rate, args.max_entries, args.seed, args.control_share, keeps)
        for keeps in (False, True)
    ]
    result = {
        "turns": args.turns,
        "turns_per_second": args.rate,
        "max_entries": args.max_entries,
        "cap_window_hours": round(window_hours, 2),
        "label_delay_hours": [1, 24],
        "runs": rows,
    }
    if args.json:
        print(json.dumps(result | {"machine": machine()}, indent=2))
        return
    print(
        f"{args.turns:,} turns at {args.rate:g}/s of event time, join cap {args.max_entries:,} "
        f"(about {window_hours:.1f} h of turns); labels 1-24 h after the turn"
    )
    for row in rows:
        name = "with review keeps   " if row["review_keeps"] else "without (before)    "
        print(
            f"  {name} requested turns: {row['requested_met_their_turn']:,} of "
            f"{row['labels_of_requested_turns']:,} labels met their turn ({row['requested_met_share']:.1%}); "
            f"control sample: {row['control_met_their_turn']:,} of {row['labels_of_control_turns']:,} "
            f"({row['control_met_share']:.1%}); peak pending {row['peak_pending']:,}, kept for review at the "
            f"end {row['kept_for_review_at_end']:,}; {row['seconds']} s"
        )


if __name__ == "__main__":
    main()
