"""Review sampling: is the inverse-probability-weighted, human-calibrated defect rate unbiased, and how much
narrower is its interval than with uniform sampling at the same budget?

Each run streams judged turns (1,000 an hour for 5 hours) through ``detectors.ReviewSampler`` (budget
``--budget`` reviews an hour). A quarter of the turns are ones the judge is unsure about (confidence
0.5-0.7): their defect rate is higher and the judge is wrong on 30% of them, against 2% elsewhere; 1% are
high-risk. Requested turns get their human label and go to ``detectors.PredictionPoweredRate`` with
``weight = 1 / pi``; every turn's judge verdict goes in as the prediction. The same stream is also sampled
uniformly with ``pi = budget * hours / turns`` (the same expected number of reviews). Reported: the mean
error against each run's true defect rate (bias), the spread of the estimate, the mean 95% interval width
and its coverage.

    python bench/review_sampling.py              # 500 runs, ~1 min
    python bench/review_sampling.py --runs 1000 --json

Exit status 1 when the prioritised estimate's bias exceeds 3 Monte Carlo standard errors.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.common import emit
from detectors.ppi import PredictionPoweredRate
from detectors.review_sampler import ReviewSampler, uniform_draw

TURNS_PER_HOUR = 1_000
HOURS = 5


def _turns(rng: random.Random) -> list[tuple[bool, float, bool, bool]]:
    """(high_risk, judge confidence, judge says fail, human truth: defect) per turn."""
    out = []
    for _ in range(TURNS_PER_HOUR * HOURS):
        high_risk = rng.random() < 0.01
        unsure = rng.random() < 0.25
        y = rng.random() < (0.30 if high_risk else 0.15 if unsure else 0.04)
        confidence = rng.uniform(0.5, 0.7) if unsure else rng.uniform(0.9, 1.0)
        wrong = rng.random() < (0.30 if unsure else 0.02)
        out.append((high_risk, confidence, y != wrong, y))
    return out


def one_run(seed: int, budget: float) -> dict[str, Any]:
    rng = random.Random(seed)
    turns = _turns(rng)
    sampler = ReviewSampler(budget_per_hour=budget, seed=seed)
    prioritised, uniform = PredictionPoweredRate(), PredictionPoweredRate()
    pi_uniform = budget * HOURS / len(turns)
    requests = 0
    min_pi = 1.0
    for i, (high_risk, confidence, f, y) in enumerate(turns):
        turn_id = f"r{seed}-t{i}"
        sampler.update(turn_id, ts=i * 3600.0 / TURNS_PER_HOUR, high_risk=high_risk, confidence=confidence)
        min_pi = min(min_pi, sampler.inclusion_probability)
        prioritised.update(f, y if sampler.requested else None, weight=sampler.weight)
        requests += sampler.requested
        # an independent draw for the uniform design (not the sampler's, which would correlate them)
        chosen = uniform_draw(seed + 1_000_003, turn_id) < pi_uniform
        uniform.update(f, y if chosen else None, weight=1.0 / pi_uniform)
    truth = sum(t[3] for t in turns) / len(turns)
    out: dict[str, Any] = {"truth": truth, "requests": requests, "min_pi": min_pi}
    for name, est in (("prioritised", prioritised), ("uniform", uniform)):
        low, high = est.interval
        out[name] = {
            "estimate": est.estimate,
            "width": high - low,
            "covered": low <= truth <= high,
            "labels": est.n_labelled,
            "human_only": est.human_estimate,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--budget", type=float, default=60.0, help="reviews an hour")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    runs = [one_run(args.seed + r, args.budget) for r in range(args.runs)]
    seconds = time.perf_counter() - started
    summary: dict[str, Any] = {
        "runs": args.runs,
        "turns_per_run": TURNS_PER_HOUR * HOURS,
        "budget_per_hour": args.budget,
        "truth_mean": statistics.fmean(r["truth"] for r in runs),
        "requests_per_hour_mean": statistics.fmean(r["requests"] for r in runs) / HOURS,
        "min_inclusion_probability": min(r["min_pi"] for r in runs),
        "seconds": seconds,
    }
    for name in ("prioritised", "uniform"):
        errors = [r[name]["estimate"] - r["truth"] for r in runs]
        human_errors = [r[name]["human_only"] - r["truth"] for r in runs]
        summary[name] = {
            "labels_mean": statistics.fmean(r[name]["labels"] for r in runs),
            "bias": statistics.fmean(errors),
            "bias_se": statistics.stdev(errors) / math.sqrt(len(errors)),
            "rmse": math.sqrt(statistics.fmean(e * e for e in errors)),
            "interval_width_mean": statistics.fmean(r[name]["width"] for r in runs),
            "coverage": statistics.fmean(float(r[name]["covered"]) for r in runs),
            "human_only_bias": statistics.fmean(human_errors),
            "human_only_rmse": math.sqrt(statistics.fmean(e * e for e in human_errors)),
        }
    p, u = summary["prioritised"], summary["uniform"]
    summary["width_ratio"] = p["interval_width_mean"] / u["interval_width_mean"]
    table = [
        (
            "setting",
            f"{args.runs} runs x {TURNS_PER_HOUR * HOURS} judged turns ({HOURS} h), "
            f"budget {args.budget:g}/h, "
            f"true rate {summary['truth_mean']:.4f}",
        ),
        (
            "requests",
            f"{summary['requests_per_hour_mean']:.1f}/h (budget {args.budget:g}); min inclusion probability "
            f"{summary['min_inclusion_probability']:.4f}",
        ),
        ("", "labels   bias (+-se)           rmse     95% width  coverage   human-only IPW bias / rmse"),
    ]
    for name, s in (("prioritised (1/pi)", p), ("uniform", u)):
        table.append(
            (
                name,
                f"{s['labels_mean']:6.1f}   {s['bias']:+.5f} (+-{s['bias_se']:.5f})  {s['rmse']:.5f}  "
                f"{s['interval_width_mean']:.5f}    {s['coverage']:.3f}      "
                f"{s['human_only_bias']:+.5f} / {s['human_only_rmse']:.5f}",
            )
        )
    table += [
        ("width ratio", f"{summary['width_ratio']:.3f} (prioritised / uniform)"),
        ("wall time", f"{seconds:.1f} s"),
    ]
    emit(summary, args.json, table)
    return 1 if abs(p["bias"]) > 3 * p["bias_se"] else 0


if __name__ == "__main__":
    sys.exit(main())
