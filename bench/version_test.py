"""Model-version comparison: is the always-valid test's false-positive rate held under continuous monitoring,
and how many turns does it need to catch a regression?

Each run streams judged turns split between a control and a treatment version (50/50, or a 10% canary),
each turn a defect with its version's rate, and checks ``detectors.msprt.MixtureSPRT``'s decision after
*every* turn. A/A runs (equal rates) measure the type-I error: the share of runs that ever rejected. For
contrast, the same streams are checked with a naive z-test (``|lift| / se > 1.96``) after every turn. A/B
runs measure the turns per arm to the first "worse" decision. The outcome scenarios are the same test on an
outcome rate (escalations to an agent, ``streams/views/version_outcomes.py``); human-calibrated defect
rates are measured by ``bench/version_calibrated.py``. The simulation is vectorised with numpy
(the same formulas as the detector); a few runs are replayed through ``MixtureSPRT`` itself and must give
the same decision at the same turn.

    python bench/version_test.py                    # 2,000 A/A runs, ~1 min on 2 cores
    python bench/version_test.py --runs 500 --json

Exit status 1 when a scenario's always-valid type-I error exceeds alpha by more than 2 Monte Carlo
standard errors, or the cross-check fails.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.common import emit
from detectors.agreement_stats import z_value
from detectors.msprt import MixtureSPRT


@dataclass(frozen=True)
class Scenario:
    name: str
    control_rate: float
    treatment_rate: float
    treatment_share: float  # share of turns served by the treatment
    events: int  # turns per run (both arms)
    runs_factor: float = 1.0  # runs relative to --runs (A/A) or --detect-runs (A/B)


AA = [
    Scenario("A/A 3%, 50/50, 20k/arm", 0.03, 0.03, 0.5, 40_000),
    Scenario("A/A 3%, 10% canary, 10k treatment", 0.03, 0.03, 0.1, 100_000, runs_factor=0.25),
    # outcome rates (streams/views/version_outcomes.py): the same test on escalations to an agent
    Scenario("outcome A/A: escalated 8%, 50/50", 0.08, 0.08, 0.5, 40_000, runs_factor=0.5),
]
AB = [
    Scenario("3% -> 4%, 50/50", 0.03, 0.04, 0.5, 40_000),
    Scenario("3% -> 6%, 50/50", 0.03, 0.06, 0.5, 40_000),
    Scenario("3% -> 6%, 10% canary", 0.03, 0.06, 0.1, 100_000, runs_factor=0.5),
    Scenario("outcome: escalated 8% -> 10%, 50/50", 0.08, 0.10, 0.5, 40_000, runs_factor=0.5),
]


def _streams(rng: np.random.Generator, sc: Scenario, runs: int) -> tuple[np.ndarray, np.ndarray]:
    treated = rng.random((runs, sc.events)) < sc.treatment_share
    defect = rng.random((runs, sc.events)) < np.where(treated, sc.treatment_rate, sc.control_rate)
    return treated, defect


def _first_rejections(
    treated: np.ndarray, defect: np.ndarray, alpha: float, tau2: float, min_samples: int
) -> dict[str, np.ndarray]:
    """Per run: index of the first turn where each test rejects (-1 = never), and the counts there."""
    n = np.arange(1, treated.shape[1] + 1)
    n_t = np.cumsum(treated, axis=1)
    n_c = n - n_t
    x_t = np.cumsum(defect & treated, axis=1)
    x_c = np.cumsum(defect & ~treated, axis=1)
    valid = (n_c >= min_samples) & (n_t >= min_samples)
    nc, nt = np.maximum(n_c, 1), np.maximum(n_t, 1)
    q_c, q_t, q = (x_c + 1) / (n_c + 2), (x_t + 1) / (n_t + 2), (x_c + x_t + 1) / (n + 2)
    s2 = np.maximum(q_c * (1 - q_c) / nc + q_t * (1 - q_t) / nt, q * (1 - q) * (1 / nc + 1 / nt))
    d = x_t / nt - x_c / nc
    log_lr = 0.5 * np.log(s2 / (s2 + tau2)) + tau2 * d * d / (2 * s2 * (s2 + tau2))
    out = {}
    for name, reject in (
        ("msprt", valid & (log_lr >= math.log(1 / alpha))),
        ("naive", valid & (np.abs(d) >= z_value(1 - alpha) * np.sqrt(s2))),
    ):
        hit = reject.any(axis=1)
        first = np.where(hit, reject.argmax(axis=1), -1)
        rows = np.arange(len(first))
        idx = np.maximum(first, 0)
        out[name] = first
        out[f"{name}_n_t"] = np.where(hit, n_t[rows, idx], -1)
        out[f"{name}_n_c"] = np.where(hit, n_c[rows, idx], -1)
        out[f"{name}_worse"] = np.where(hit, d[rows, idx] > 0, False)
    return out


def run(sc: Scenario, runs: int, seed: int, alpha: float, tau2: float, min_samples: int) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    chunk = max(1, 4_000_000 // sc.events)
    parts: list[dict[str, np.ndarray]] = []
    checked = 0
    done = 0
    while done < runs:
        size = min(chunk, runs - done)
        treated, defect = _streams(rng, sc, size)
        found = _first_rejections(treated, defect, alpha, tau2, min_samples)
        if checked < 3:  # the detector itself must decide at the same turn as the vectorised formula
            for r in range(min(3 - checked, size)):
                checked += 1
                test = MixtureSPRT(alpha=alpha, tau2=tau2, min_samples=min_samples)
                at = -1
                for i, (t, x) in enumerate(zip(treated[r].tolist(), defect[r].tolist(), strict=True)):
                    test.update("treatment" if t else "control", x)
                    if test.decided_now:
                        at = i
                        break
                if at != int(found["msprt"][r]):
                    raise SystemExit(
                        f"cross-check failed in {sc.name}: detector {at}, vectorised {int(found['msprt'][r])}"
                    )
        parts.append(found)
        done += size
    res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out: dict[str, Any] = {"scenario": sc.name, "runs": runs, "events_per_run": sc.events}
    for name in ("msprt", "naive"):
        hit = res[name] >= 0
        rate = float(hit.mean())
        out[name] = {
            "reject_rate": rate,
            "reject_rate_se": math.sqrt(rate * (1 - rate) / runs),
            "wrong_sign": int((hit & ~res[f"{name}_worse"]).sum())
            if sc.treatment_rate > sc.control_rate
            else 0,
        }
        if sc.treatment_rate != sc.control_rate and hit.any():
            n_t = res[f"{name}_n_t"][hit]
            n_c = res[f"{name}_n_c"][hit]
            out[name].update(
                {
                    "treatment_turns_mean": float(n_t.mean()),
                    "treatment_turns_median": float(np.median(n_t)),
                    "treatment_turns_p90": float(np.percentile(n_t, 90)),
                    "control_turns_median": float(np.median(n_c)),
                }
            )
    if sc.treatment_rate != sc.control_rate:  # fixed-horizon reference: turns per arm for 80% power at alpha
        v = sc.control_rate * (1 - sc.control_rate) + sc.treatment_rate * (1 - sc.treatment_rate)
        z = z_value(1 - alpha) + z_value(0.6)  # two-sided alpha, power 0.8
        out["fixed_horizon_turns_per_arm_80pct_power"] = math.ceil(
            z * z * v / (sc.treatment_rate - sc.control_rate) ** 2
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=2000, help="A/A runs (the canary scenario runs a quarter)"
    )
    parser.add_argument("--detect-runs", type=int, default=1000, help="A/B runs per regression scenario")
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--tau2", type=float, default=1e-4)
    parser.add_argument("--min-samples", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = []
    for i, sc in enumerate(AA + AB):
        runs = max(1, round((args.runs if sc in AA else args.detect_runs) * sc.runs_factor))
        results.append(run(sc, runs, args.seed + i, args.alpha, args.tau2, args.min_samples))
    seconds = time.perf_counter() - started
    table = [
        (
            "settings",
            f"alpha={args.alpha} tau2={args.tau2} min_samples/arm={args.min_samples}, check every turn",
        ),
        ("", ""),
        ("type-I error (A/A)", "runs    mSPRT ever rejected      naive z-test ever rejected"),
    ]
    failed = False
    for r in results[: len(AA)]:
        m, z = r["msprt"], r["naive"]
        table.append(
            (
                f"  {r['scenario']}",
                f"{r['runs']:>5}    {m['reject_rate']:.4f} (+-{m['reject_rate_se']:.4f})     "
                f"{z['reject_rate']:.4f}",
            )
        )
        failed |= m["reject_rate"] > args.alpha + 2 * m["reject_rate_se"]
    table += [
        ("", ""),
        (
            "regression detection",
            "runs  power   treatment turns to 'worse': mean / median / p90"
            "   (fixed-horizon n/arm, 80% power)",
        ),
    ]
    for r in results[len(AA) :]:
        m = r["msprt"]
        table.append(
            (
                f"  {r['scenario']}",
                f"{r['runs']:>4}  {m['reject_rate']:.3f}   {m.get('treatment_turns_mean', math.nan):>7.0f} / "
                f"{m.get('treatment_turns_median', math.nan):>6.0f} / "
                f"{m.get('treatment_turns_p90', math.nan):>6.0f}"
                f"   wrong sign {m['wrong_sign']}   ({r['fixed_horizon_turns_per_arm_80pct_power']})",
            )
        )
    table.append(("wall time", f"{seconds:.1f} s"))
    emit(
        {
            "alpha": args.alpha,
            "tau2": args.tau2,
            "min_samples": args.min_samples,
            "results": results,
            "seconds": seconds,
        },
        args.json,
        table,
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
