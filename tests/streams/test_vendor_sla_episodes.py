"""Vendor SLAs judged by a confidence bound, with hysteresis: seeded simulations of vendors that meet their
target and of vendors that do not, over 14 days of the default SLA file (a 24 h window in 1 h buckets,
re-judged every 300 s of label time), judged as ``streams/views/vendors.py`` does.

Judged by the estimate alone (``confidence_level: 0.5``, the rule before 2026-11-26), a vendor that meets
its target opened breaches, and escalations, from sampling noise alone: a consensus agreement of 0.84
against 0.8 at 10 items an hour, about every other day.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry

from detectors.label_tally import LabelTally, Scorecard, clusters
from detectors.sla_status import SlaStatus
from streams.aggregate import Aggregator
from streams.metrics import Metrics
from streams.vendor_sla import VendorSla
from streams.views.vendors import VendorsView

START = 1_793_606_400.0  # 2026-11-02T08:00:00Z
HOUR = 3600.0
DAYS = 14
Counts = dict[str, tuple[int, int]]


def _episodes(
    level: float, stream: Iterator[tuple[float, Counts]], sla_name: str, by_record: bool = True
) -> list[tuple[float, float]]:
    """(opened, closed) hours of the breaches of ``sla_name`` of one vendor labelling ``stream`` ((label
    time, comparisons of one label record) in time order), judged at ``confidence_level`` ``level`` every
    ``evaluate_every_seconds`` over the window (gold comparisons as independent unless ``by_record``)."""
    sla = VendorSla.model_validate({"defaults": {"confidence_level": level}})
    status = SlaStatus(republish_seconds=sla.republish_seconds)
    buckets: dict[int, LabelTally] = {}
    episodes: list[tuple[float, float]] = []
    evaluated = -math.inf
    for ts, counts in stream:
        start = int(ts // sla.bucket_seconds) * sla.bucket_seconds
        buckets.setdefault(start, LabelTally()).update("v", "a", 600.0, **counts)
        for old in [b for b in buckets if b <= start - sla.window_seconds]:
            del buckets[old]
        if ts < evaluated + sla.evaluate_every_seconds:
            continue
        evaluated = ts
        window = LabelTally()
        for tally in buckets.values():
            window.merge(tally)
        row = window.row("v")
        card = Scorecard(
            labels=row["labels"],
            covered_seconds=float(sla.window_seconds),
            full_window=True,
            bounds=window.bounds,
            histogram=tuple(row["turnaround"]),
            gold=tuple(row["gold"]),
            judge=tuple(row["judge"]),
            consensus=tuple(row["consensus"]),
            gold_clusters=tuple(clusters(row, "gold")) if by_record else None,
        )
        verdict = next(v for v in sla.judge("v", card) if v.sla == sla_name)
        judged = (False, True) if verdict.breached is None else (verdict.breached, verdict.met)
        status.update(ts, sla_name, *judged)
        if status.change == "firing":
            episodes.append((ts / HOUR, math.inf))
        elif status.change == "resolved":
            episodes[-1] = (episodes[-1][0], ts / HOUR)
    return episodes


def _poisson(
    rng: random.Random, per_hour: float, item: Callable[[], Counts]
) -> Iterator[tuple[float, Counts]]:
    ts = 0.0
    while ts < DAYS * 24 * HOUR:
        ts += rng.expovariate(per_hour / HOUR)
        yield ts, item()


def _consensus(seed: int, rate: float) -> Iterator[tuple[float, Counts]]:
    """10 consensus comparisons an hour, agreeing with probability ``rate``."""
    rng = random.Random(seed)
    return _poisson(rng, 10, lambda: {"consensus": (int(rng.random() < rate), 1)})


def _open_hours(episodes: list[tuple[float, float]], since: float) -> float:
    return sum(min(closed, DAYS * 24) - max(opened, since) for opened, closed in episodes if closed > since)


def test_a_vendor_that_meets_its_target_no_longer_breaches_from_noise_and_one_that_misses_still_does():
    seeds, estimate, bound = range(4), 0.5, 0.95
    meets = {
        level: [_episodes(level, _consensus(s, 0.84), "consensus_agreement") for s in seeds]
        for level in (estimate, bound)
    }
    misses = {
        level: [_episodes(level, _consensus(s, 0.74), "consensus_agreement") for s in seeds]
        for level in (estimate, bound)
    }
    # 0.84 against 0.8: the estimate dips under the target every few days (29 times in 4 x 14 days)
    assert sum(len(runs) for runs in meets[estimate]) >= 4 * DAYS / 3
    assert sum(len(runs) for runs in meets[bound]) <= sum(len(runs) for runs in meets[estimate]) / 10
    # 0.74 against 0.8: breached within two days (within the hour the estimate was, in 3 streams out of 4),
    # and then for nearly all the rest of the 14 days
    prompt = 0
    for before, after in zip(misses[estimate], misses[bound], strict=True):
        first = after[0][0]
        assert before[0][0] <= first < 48
        prompt += first - before[0][0] < 1
        assert _open_hours(after, first) > 0.9 * (DAYS * 24 - first)
        assert len(after) <= len(before)
    assert prompt >= 3


def _gold_windows(seed: int, n: int, by_record: bool) -> float:
    """The share of ``n`` independent 24 h windows in which a vendor whose gold accuracy is exactly its
    target (0.9) is judged breached: 15 golden turns of 4 dimensions a window, one in 7.5 misread (each of
    its dimensions wrong with probability 0.75), the others right; its comparisons counted by label record
    (``by_record``) or as if independent."""
    sla, rng, breached = VendorSla(), random.Random(seed), 0
    for _ in range(n):
        tally = LabelTally()
        for _ in range(15):
            wrong = sum(rng.random() < 0.75 for _ in range(4)) if rng.random() < 2 / 15 else 0
            tally.update("v", "a", 600.0, gold=(4 - wrong, 4))
        row = tally.row("v")
        card = Scorecard(
            labels=row["labels"],
            covered_seconds=86400.0,
            full_window=True,
            bounds=tally.bounds,
            histogram=tuple(row["turnaround"]),
            gold=tuple(row["gold"]),
            judge=(0, 0),
            consensus=(0, 0),
            gold_clusters=tuple(clusters(row, "gold")) if by_record else None,
        )
        breached += next(v for v in sla.judge("v", card) if v.sla == "gold_accuracy").breached is True
    return breached / n


def test_gold_items_of_one_turn_count_as_one_label_record_so_the_bound_holds_its_confidence():
    # one-sided 95%: judged breached in 5% of the windows of a vendor on its target, give or take sampling
    # (1,500 windows: standard error 0.6 points); taken as independent, the dimensions of a misread turn
    # made the bound too narrow, and the vendor breached in about one window in five
    assert _gold_windows(3, 1_500, by_record=True) < 0.075
    assert _gold_windows(3, 1_500, by_record=False) > 0.14


def test_the_escalation_opens_on_the_bound_closes_on_the_estimate_and_says_both():
    """Gold labels, one dimension each, against 0.9: 20 right then 3 wrong (estimate 0.87, bound 0.95: the
    estimate alone opened a breach), then wrong until the bound is under 0.9 (20 of 26: a breach), then
    right: in between (42 of 48: 0.875, bound 0.93) it stays open, until the estimate is back on the target
    (54 of 60: resolved)."""
    golden = {f"g{i}": {"safety": "pass"} for i in range(200)}
    metrics = Metrics(CollectorRegistry())
    sla = VendorSla.model_validate(
        {"evaluate_every_seconds": 1, "defaults": {"max_turnaround_seconds": None}}
    )
    view = VendorsView(metrics, sla, golden)
    aggregator = Aggregator(metrics, views=[view])
    labels = ["pass"] * 20 + ["fail"] * 6 + ["pass"] * 40
    seen: dict[int, dict[str, Any]] = {}
    for i, label in enumerate(labels):
        observation = {
            "kind": "labelled",
            "src": ["human_labels:0", i, 1],
            "turn_id": f"g{i}",
            "ts": START + 60.0 * i - 30,
            "label_ts": START + 60.0 * i,
            "vendor_id": "vendor-a",
            "annotator_id": "a1",
            "labels": {"safety": label},
            "judges": {},
        }
        # the join's gold_label comes first (streams/join_gold.py), the labelled observation after it
        gold = {
            k: observation[k] for k in ("turn_id", "ts", "label_ts", "annotator_id", "vendor_id", "labels")
        }
        for value in ({**gold, "kind": "gold_label", "src": ["human_labels:0", i, 0]}, observation):
            for emit in aggregator.apply(value):
                if emit.topic == "escalations" and emit.value["evidence"]["sla"] == "gold_accuracy":
                    seen[i] = emit.value
        if i == 47:
            (row,) = view.report(aggregator)["vendors"]["vendors"]
            (gold,) = [v for v in row["slas"] if v["sla"] == "gold_accuracy"]
            assert gold["value"] == 42 / 48 < 0.9 < gold["upper_bound"]
            assert (gold["within_target"], gold["breached"], gold["escalated"]) == (False, False, True)
    assert [(i, value["status"]) for i, value in seen.items()] == [(25, "firing"), (59, "resolved")]
    firing, resolved = seen[25]["evidence"], seen[59]["evidence"]
    assert (firing["value"], firing["samples"], firing["confidence_level"]) == (20 / 26, 26, 0.95)
    assert firing["value"] < firing["upper_bound"] < 0.9 == firing["target"]
    assert firing["effective_samples"] <= firing["records"] == 26  # one comparison to a label
    summary = "gold accuracy 76.9% over 26 items, at most 87.7% at 95% confidence (target at least 90%)"
    assert seen[25]["summary"] == f"Vendor SLA breach: vendor-a {summary}"
    assert resolved["value"] == 54 / 60 < resolved["upper_bound"]
