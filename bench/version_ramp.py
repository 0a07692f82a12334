"""Model-version tests under a canary ramp while the defect rate follows the time of day.

Each run streams three days of judged turns of one journey through ``detectors.msprt.VersionComparison``
(the detector the version views run): the treatment's share of turns ramps from 5% to 50% between 04:00
and 16:00 of the first day and stays there, and every turn's defect rate follows the time of day (2% at
04:00, 4% at 16:00).
Pooled over time, the treatment's turns come from later, busier hours than the control's, and a
difference that is only the time of day is read as a regression. The same streams go through the test
twice in one run: pooled (``stratum_seconds=0``, the test before 2026-11-25) and within hourly strata
(the default), so the two rates are compared on the same data.

A/A runs (both versions at the same rate) measure the share of runs that ever rejected, checked after every
turn; A/B runs (the treatment 1.5 points worse at every hour) the share that caught the regression and the
median turns of the treatment until then.

The human-calibrated comparison (``detectors.calibrated_comparison.CalibratedVersionComparison``, what
``streams/views/version_calibrated.py`` runs) gets the same kind of streams with a judge's verdict on every
turn (it flags 90% of defects and 2% of good turns, as in ``bench/version_calibrated.py``) and a human
label on 5% of turns, drawn uniformly, at the turn's time: pooled and within hourly strata (its judged
turns; the rectifier is pooled over the test). Fewer runs by default: each turn costs more.

    python bench/version_ramp.py                 # 100 + 40 judge-only, 40 + 20 calibrated runs, ~20 min
    python bench/version_ramp.py --runs 20 --detect-runs 10 --calibrated-runs 10 --calibrated-detect-runs 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from bench.common import emit
from detectors.calibrated_comparison import CalibratedVersionComparison
from detectors.msprt import VersionComparison

DAY = 86_400.0
DAYS = 3
TURNS_PER_SECOND = 1.0  # about 259,000 turns a run: a busy journey
RAMP_START, RAMP_SECONDS = 4 * 3600.0, 12 * 3600.0  # the canary ramps up from 04:00 to 16:00 of day one
STRATA = {"pooled": 0.0, "hourly strata": 3600.0}
SENSITIVITY, FALSE_FLAGS, LABEL_SHARE = 0.9, 0.02, 0.05  # the judge, and the humans' sample


def stream(rng: np.random.Generator, lift: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(event times, treated, defect) of one run."""
    n = rng.poisson(TURNS_PER_SECOND * DAYS * DAY)
    ts = np.sort(rng.uniform(0.0, DAYS * DAY, n))
    ts[0] = 0.0  # the control version is seen first: it is the control
    share = 0.05 + 0.45 * np.clip((ts - RAMP_START) / RAMP_SECONDS, 0.0, 1.0)
    treated = rng.random(n) < share
    treated[0] = False
    rate = 0.03 - 0.01 * np.cos(2 * math.pi * (ts - 4 * 3600.0) / DAY)  # 2% at 04:00, 4% at 16:00
    defect = rng.random(n) < rate + np.where(treated, lift, 0.0)
    return ts, treated, defect


def first_worse(ts: np.ndarray, treated: np.ndarray, defect: np.ndarray, stratum_seconds: float) -> int:
    """Treatment turns until the test first rejected, ``worse`` or ``better`` (-1: never; an A/A rejection
    of either sign is a false one, as in ``bench/version_test.py``)."""
    test = VersionComparison(horizon_seconds=3600.0, stratum_seconds=stratum_seconds)
    seen = 0
    for t, is_treated, is_defect in zip(ts.tolist(), treated.tolist(), defect.tolist(), strict=True):
        seen += is_treated
        test.update("v2" if is_treated else "v1", is_defect, t)
        if test.events and any(what in ("worse", "better") for _, _, what in test.events):
            return seen
    return -1


def judged(
    rng: np.random.Generator, defect: np.ndarray, sensitivity: float = SENSITIVITY
) -> tuple[np.ndarray, np.ndarray]:
    """(the judge flags it, a human labels it) of each turn; the judge flags ``sensitivity`` of defects."""
    n = len(defect)
    flagged = np.where(defect, rng.random(n) < sensitivity, rng.random(n) < FALSE_FLAGS)
    return flagged, rng.random(n) < LABEL_SHARE


def first_worse_calibrated(
    ts: np.ndarray,
    treated: np.ndarray,
    defect: np.ndarray,
    flagged: np.ndarray,
    labelled: np.ndarray,
    stratum_seconds: float,
) -> int:
    """:func:`first_worse` of the human-calibrated comparison (one dimension; a label right after its
    verdict)."""
    test = CalibratedVersionComparison(horizon_seconds=3600.0, stratum_seconds=stratum_seconds)
    seen = 0
    columns = (ts, treated, defect, flagged, labelled)
    rows = zip(*(column.tolist() for column in columns), strict=True)
    for t, is_treated, is_defect, flag, label in rows:
        seen += is_treated
        version = "v2" if is_treated else "v1"
        test.update(version, {"safety": flag}, t)
        if any(what in ("worse", "better") for *_, what in test.events):
            return seen
        if label:
            test.add_label(version, "safety", flag, is_defect, t)
            if any(what in ("worse", "better") for *_, what in test.events):
                return seen
    return -1


def run(runs: int, lift: float, seed: int, sensitivity: float | None = None) -> dict[str, Any]:
    """``runs`` runs of the judge-only test, or with a judge ``sensitivity`` of the calibrated one."""
    rng = np.random.default_rng(seed)
    found: dict[str, list[int]] = {name: [] for name in STRATA}
    for _ in range(runs):
        data = stream(rng, lift)
        # the same verdicts and labels for both
        verdicts = None if sensitivity is None else judged(rng, data[2], sensitivity)
        for name, seconds in STRATA.items():
            if verdicts is not None:
                until = first_worse_calibrated(*data, *verdicts, stratum_seconds=seconds)
            else:
                until = first_worse(*data, stratum_seconds=seconds)
            found[name].append(until)
    out = {}
    for name, turns in found.items():
        hits = [t for t in turns if t >= 0]
        share = len(hits) / runs
        out[name] = {
            "runs": runs,
            "rejected": len(hits),
            "share": share,
            "standard_error": math.sqrt(share * (1 - share) / runs),
            "median_treatment_turns": statistics.median(hits) if hits else None,
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100, help="A/A runs")
    parser.add_argument("--detect-runs", type=int, default=40, help="A/B runs (treatment 1.5 points worse)")
    parser.add_argument("--calibrated-runs", type=int, default=40, help="A/A runs, human-calibrated")
    parser.add_argument("--calibrated-detect-runs", type=int, default=20, help="A/B runs, human-calibrated")
    parser.add_argument(
        "--sensitivity", type=float, default=SENSITIVITY, help="share of defects the judge flags (calibrated)"
    )
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    sections = {  # name: (runs, lift, seed, judge sensitivity; None: the judge-only test)
        "aa": (args.runs, 0.0, args.seed, None),
        "ab_lift_0.015": (args.detect_runs, 0.015, args.seed + 1, None),
        "calibrated_aa": (args.calibrated_runs, 0.0, args.seed + 2, args.sensitivity),
        "calibrated_ab_lift_0.015": (args.calibrated_detect_runs, 0.015, args.seed + 3, args.sensitivity),
    }
    result: dict[str, Any] = {name: run(*how) for name, how in sections.items() if how[0] > 0}
    result |= {
        "judge_sensitivity": args.sensitivity,
        "alpha": 0.05,
        "command": (
            f"bench/version_ramp.py --runs {args.runs} --detect-runs {args.detect_runs} "
            f"--calibrated-runs {args.calibrated_runs} "
            f"--calibrated-detect-runs {args.calibrated_detect_runs} --sensitivity {args.sensitivity}"
        ),
    }
    table = []
    for test, prefix in (("judge-only", ""), ("human-calibrated", "calibrated_")):
        for name in STRATA:
            parts = []
            if f"{prefix}aa" in result:
                aa = result[f"{prefix}aa"][name]
                parts.append(
                    f"A/A rejected {aa['rejected']}/{aa['runs']} "
                    f"({aa['share']:.1%} ± {aa['standard_error']:.1%})"
                )
            if f"{prefix}ab_lift_0.015" in result:
                ab = result[f"{prefix}ab_lift_0.015"][name]
                parts.append(
                    f"A/B caught {ab['rejected']}/{ab['runs']}, "
                    f"median {ab['median_treatment_turns']} treatment turns"
                )
            if parts:
                table.append((f"{test}, {name}", "; ".join(parts)))
    emit(result, args.json, table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
