"""How many vendor_sla episodes do vendors that meet their SLA get, and how soon do those that miss it breach?

Each run is one vendor labelling for ``--days`` of label time under the default SLA file (targets 0.8
consensus and 0.9 gold accuracy, a 24 h window in 1 h buckets re-judged every 300 s), through
``VendorScorecard``, ``VendorSla.judge`` and ``SlaStatus`` as ``streams/views/vendors.py`` judges them. The
same seeded streams are judged by the estimate alone (``confidence_level: 0.5``, the rule before
2026-11-26) and by the one-sided 95% upper bound with hysteresis (the default).

    python bench/vendor_sla_episodes.py                # 5 seeds of 14 days per scenario, human table
    python bench/vendor_sla_episodes.py --seeds 10 --json

Columns: episodes (opened breaches, mean per run, and their range), hours to the first breach (median over
the runs that breached), and the share of the time breached (mean). About 4 s per run of 14 days.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from detectors.sla_status import SlaStatus
from detectors.vendor_scorecard import VendorScorecard
from streams.vendor_sla import VendorSla

HOUR = 3600.0
RULES = {"estimate": 0.5, "bound 95%": 0.95}


@dataclass(frozen=True)
class Scenario:
    name: str
    sla: str  # consensus_agreement or gold_accuracy
    per_hour: float  # label records an hour
    meets: bool
    record: Callable[[random.Random], dict[str, tuple[int, int]]]  # one label record's comparisons


def _consensus(rate: float) -> Callable[[random.Random], dict[str, tuple[int, int]]]:
    return lambda rng: {"consensus": (int(rng.random() < rate), 1)}


def _gold(rate: float) -> Callable[[random.Random], dict[str, tuple[int, int]]]:
    return lambda rng: {"gold": (int(rng.random() < rate), 1)}


def _gold_turns(misread: float) -> Callable[[random.Random], dict[str, tuple[int, int]]]:
    """A golden turn of 4 dimensions: misread with probability ``misread``, and then each dimension wrong
    with probability 0.35 (accuracy ``1 - 0.35 misread`` by dimension, errors together by turn)."""

    def record(rng: random.Random) -> dict[str, tuple[int, int]]:
        wrong = sum(rng.random() < 0.35 for _ in range(4)) if rng.random() < misread else 0
        return {"gold": (4 - wrong, 4)}

    return record


SCENARIOS = [
    Scenario("consensus 0.84, 10/h", "consensus_agreement", 10, True, _consensus(0.84)),
    Scenario("consensus 0.88, 2/h", "consensus_agreement", 2, True, _consensus(0.88)),
    Scenario("gold 0.93, 10 turns/h of 1 dim", "gold_accuracy", 10, True, _gold(0.93)),
    Scenario("gold 0.95, 2 turns/h of 1 dim", "gold_accuracy", 2, True, _gold(0.95)),
    Scenario("gold 0.93, 2.5 turns/h of 4 dims", "gold_accuracy", 2.5, True, _gold_turns(0.2)),
    Scenario("consensus 0.74, 10/h", "consensus_agreement", 10, False, _consensus(0.74)),
    Scenario("consensus 0.70, 2/h", "consensus_agreement", 2, False, _consensus(0.70)),
    Scenario("gold 0.86, 2.5 turns/h of 4 dims", "gold_accuracy", 2.5, False, _gold_turns(0.4)),
]


def one_run(scenario: Scenario, level: float, seed: int, days: float) -> dict[str, Any]:
    """Episodes, first breach (hours) and hours breached of one vendor's seeded stream."""
    sla = VendorSla.model_validate({"defaults": {"confidence_level": level}})
    rng = random.Random(seed)
    card = VendorScorecard(sla.window_seconds, sla.bucket_seconds, sla.turnaround_bounds)
    status = SlaStatus(republish_seconds=sla.republish_seconds)
    ts, evaluated, end = 0.0, -math.inf, days * 24 * HOUR
    episodes, first, opened, breached_hours = 0, None, None, 0.0
    while True:
        ts += rng.expovariate(scenario.per_hour / HOUR)
        if ts >= end:
            break
        card.update(ts, "vendor", "a1", 600.0, **scenario.record(rng))
        if ts < evaluated + sla.evaluate_every_seconds:
            continue
        evaluated = ts
        verdict = next(v for v in sla.judge("vendor", card.scorecard("vendor")) if v.sla == scenario.sla)
        judged = (False, True) if verdict.breached is None else (verdict.breached, verdict.met)
        status.update(ts, scenario.sla, *judged)  # as the view does
        if status.change == "firing":
            episodes += 1
            first = ts / HOUR if first is None else first
            opened = ts
        elif status.change == "resolved" and opened is not None:
            breached_hours += (ts - opened) / HOUR
            opened = None
    if opened is not None:
        breached_hours += (end - opened) / HOUR
    return {"episodes": episodes, "first_breach_hours": first, "breached_share": breached_hours / (days * 24)}


def run_scenario(scenario: Scenario, seeds: int, days: float) -> dict[str, Any]:
    result: dict[str, Any] = {"scenario": scenario.name, "meets_target": scenario.meets}
    for rule, level in RULES.items():
        runs = [one_run(scenario, level, seed, days) for seed in range(seeds)]
        firsts = [r["first_breach_hours"] for r in runs if r["first_breach_hours"] is not None]
        result[rule] = {
            "episodes": [r["episodes"] for r in runs],
            "episodes_mean": statistics.fmean(r["episodes"] for r in runs),
            "first_breach_hours_median": statistics.median(firsts) if firsts else None,
            "runs_breached": len(firsts),
            "breached_share_mean": statistics.fmean(r["breached_share"] for r in runs),
        }
    return result


def table(results: list[dict[str, Any]]) -> str:
    head = "".join(f" | {rule:<32}" for rule in RULES)
    sub = " | episodes       first h  breached" * len(RULES)
    lines = [f"{'scenario':<34} {'meets':<5}{head}", f"{'':<40}{sub}"]
    for r in results:
        cells = []
        for rule in RULES:
            x = r[rule]
            span = f"({min(x['episodes'])}-{max(x['episodes'])})"
            first = x["first_breach_hours_median"]
            shown = "-" if first is None else f"{first:.1f}"
            cells.append(f" | {x['episodes_mean']:4.1f} {span:<9} {shown:>7} {x['breached_share_mean']:9.0%}")
        lines.append(f"{r['scenario']:<34} {'yes' if r['meets_target'] else 'no':<5}" + "".join(cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="runs (seeds 0..n-1) per scenario (default 5)")
    parser.add_argument("--days", type=float, default=14, help="days of label time per run (default 14)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = [run_scenario(s, args.seeds, args.days) for s in SCENARIOS]
    elapsed = time.perf_counter() - started
    if args.json:
        print(json.dumps({"seeds": args.seeds, "days": args.days, "scenarios": results}, indent=2))
    else:
        print(
            f"vendor_sla episodes under the default SLA file, {args.seeds} seeded runs of {args.days:g} days "
            f"per scenario ({elapsed:.0f} s); first h: median hours to the first breach"
        )
        print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
