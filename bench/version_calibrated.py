"""Human-calibrated version comparison: is the type-I error held with a biased judge and few labels, checked
after every turn, and how long does a regression take to detect, even one the judge cannot see?

Each run streams turns split between a control and a treatment version. Every turn has a human truth
(defect with its version's rate) and a judge verdict from a *biased* judge: it flags 90% of the usual
defects and 2% of good turns (so it reports ~4.6% where humans see 3%), the same in both arms. A share
``--label-share`` (5%) of turns, drawn uniformly, also carries its human label. The test is
``detectors.calibrated_comparison.CalibratedComparison`` (PPI estimate per arm, normal-mixture SPRT on the
difference), checked after every turn; for contrast the judge-only ``MixtureSPRT`` on the same verdicts.

- A/A (humans 3% in both arms): the share of runs that ever rejected (type-I error);
- regressions (humans 3% -> 6% in the treatment): the judge catches 50% of the treatment's new defects
  ("judge sees half"), or none of them ("judge blind"): turns and labels per arm to the first ``worse``.

The simulation is vectorised with numpy (the detector's formulas with weight 1); a few runs are replayed
through the detector itself and must decide at the same turn.

    python bench/version_calibrated.py                 # ~2 min on 2 cores
    python bench/version_calibrated.py --runs 200 --json

Exit status 1 when an A/A type-I error exceeds alpha by more than 2 Monte Carlo standard errors, or the
cross-check fails.
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
from detectors.calibrated_comparison import PSEUDO, CalibratedComparison

SENSITIVITY, FALSE_FLAGS = 0.9, 0.02  # the judge on the usual defects, and on good turns


@dataclass(frozen=True)
class Scenario:
    name: str
    control_rate: float  # human defect rate
    treatment_rate: float
    treatment_share: float
    events: int
    new_kind_seen: float = 0.5  # the judge's sensitivity to the treatment's extra defects
    runs_factor: float = 1.0


AA = [
    Scenario("A/A 3% (judge 4.6%), 50/50, 100k/arm", 0.03, 0.03, 0.5, 200_000),
    Scenario("A/A 3% (judge 4.6%), 10% canary, 20k treatment", 0.03, 0.03, 0.1, 200_000),
]
AB = [
    Scenario("3% -> 6%, judge sees half, 50/50", 0.03, 0.06, 0.5, 200_000),
    Scenario("3% -> 6%, judge blind, 50/50", 0.03, 0.06, 0.5, 200_000, new_kind_seen=0.0),
    Scenario("3% -> 6%, judge sees half, 10% canary", 0.03, 0.06, 0.1, 400_000, runs_factor=0.5),
]


def _streams(rng: np.random.Generator, sc: Scenario, runs: int, label_share: float) -> dict[str, np.ndarray]:
    shape = (runs, sc.events)
    treated = rng.random(shape) < sc.treatment_share
    usual = rng.random(shape) < sc.control_rate
    extra = (
        treated & ~usual & (rng.random(shape) < (sc.treatment_rate - sc.control_rate) / (1 - sc.control_rate))
    )
    u = rng.random(shape)
    f = np.where(usual, u < SENSITIVITY, np.where(extra, u < sc.new_kind_seen, u < FALSE_FLAGS))
    labelled = rng.random(shape) < label_share
    return {"treated": treated, "y": usual | extra, "f": f, "labelled": labelled}


def _judge_var(n: np.ndarray, s: np.ndarray) -> np.ndarray:
    q = (s + PSEUDO) / (n + 2 * PSEUDO)
    return q * (1 - q)  # f is 0/1: sum f^2 = sum f


def _rect_var(n: np.ndarray, r: np.ndarray, rr: np.ndarray) -> np.ndarray:
    """Variance of the mean rectifier with weight 1 (``_rectifier_variance`` of the detector)."""
    n_s = n + 2 * PSEUDO
    mean = r / n_s
    spread = np.maximum(rr + 2 * PSEUDO - 2 * mean * r + mean * mean * n_s, 0.0)
    return n_s / np.maximum(n_s - 1, 1e-12) * spread / (n_s * n_s)


def _first_rejections(
    s: dict[str, np.ndarray], alpha: float, tau2: float, min_samples: int, min_labels: int
) -> dict[str, np.ndarray]:
    t, f, lab = s["treated"], s["f"].astype(np.float64), s["labelled"]
    r = np.where(lab, s["y"].astype(np.float64) - f, 0.0)
    c = ~t
    cum = {
        name: (
            np.cumsum(x & c if x.dtype == bool else np.where(c, x, 0.0), axis=1),
            np.cumsum(x & t if x.dtype == bool else np.where(t, x, 0.0), axis=1),
        )
        for name, x in (("n", np.ones_like(t)), ("l", lab), ("f", f), ("r", r), ("rr", np.abs(r)))
    }
    (n_c, n_t), (l_c, l_t), (f_c, f_t), (r_c, r_t), (rr_c, rr_t) = (
        cum[k] for k in ("n", "l", "f", "r", "rr")
    )
    valid = (np.minimum(n_c, n_t) >= min_samples) & (np.minimum(l_c, l_t) >= min_labels)
    nc, nt, lc, lt = (np.maximum(x, 1) for x in (n_c, n_t, l_c, l_t))
    d = (f_t / nt + r_t / lt) - (f_c / nc + r_c / lc)
    unpooled = (
        _judge_var(n_c, f_c) / nc
        + _judge_var(n_t, f_t) / nt
        + _rect_var(l_c, r_c, rr_c)
        + _rect_var(l_t, r_t, rr_t)
    )
    l_all = l_c + l_t
    pooled = _judge_var(n_c + n_t, f_c + f_t) * (1 / nc + 1 / nt) + _rect_var(
        l_all, r_c + r_t, rr_c + rr_t
    ) * l_all * (1 / lc + 1 / lt)
    s2 = np.maximum(unpooled, pooled)
    log_lr = 0.5 * np.log(s2 / (s2 + tau2)) + tau2 * d * d / (2 * s2 * (s2 + tau2))
    # the judge-only mSPRT (detectors.msprt.MixtureSPRT) on the same verdicts, for contrast
    x_c, x_t = f_c, f_t
    q_c, q_t, q = (x_c + 1) / (nc + 2), (x_t + 1) / (nt + 2), (x_c + x_t + 1) / (n_c + n_t + 2)
    j2 = np.maximum(q_c * (1 - q_c) / nc + q_t * (1 - q_t) / nt, q * (1 - q) * (1 / nc + 1 / nt))
    dj = x_t / nt - x_c / nc
    judge_lr = 0.5 * np.log(j2 / (j2 + tau2)) + tau2 * dj * dj / (2 * j2 * (j2 + tau2))
    judge_valid = np.minimum(n_c, n_t) >= min_samples
    out: dict[str, np.ndarray] = {}
    threshold = math.log(1 / alpha)
    for name, reject, diff in (
        ("calibrated", valid & (log_lr >= threshold), d),
        ("judge_only", judge_valid & (judge_lr >= threshold), dj),
    ):
        hit = reject.any(axis=1)
        first = np.where(hit, reject.argmax(axis=1), -1)
        rows, idx = np.arange(len(first)), np.maximum(first, 0)
        out[name] = first
        out[f"{name}_n_t"] = np.where(hit, n_t[rows, idx], -1)
        out[f"{name}_l_t"] = np.where(hit, l_t[rows, idx], -1)
        out[f"{name}_worse"] = np.where(hit, diff[rows, idx] > 0, False)
    return out


def _cross_check(
    s: dict[str, np.ndarray], found: dict[str, np.ndarray], r: int, args: Any, name: str
) -> None:
    test = CalibratedComparison(args.alpha, args.tau2, args.min_samples, args.min_labels)
    at = -1
    rows = zip(
        s["treated"][r].tolist(),
        s["f"][r].tolist(),
        s["y"][r].tolist(),
        s["labelled"][r].tolist(),
        strict=True,
    )
    for i, (t, f, y, labelled) in enumerate(rows):
        arm = "treatment" if t else "control"
        test.update(arm, f, y) if labelled else test.update(arm, f)
        if test.decided_now:
            at = i
            break
    if at != int(found["calibrated"][r]):
        raise SystemExit(
            f"cross-check failed in {name}: detector {at}, vectorised {int(found['calibrated'][r])}"
        )


def run(sc: Scenario, runs: int, seed: int, args: Any) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // sc.events)
    parts, done, checked = [], 0, 0
    while done < runs:
        size = min(chunk, runs - done)
        s = _streams(rng, sc, size, args.label_share)
        with np.errstate(divide="ignore", invalid="ignore"):  # arms without labels yet: masked anyway
            found = _first_rejections(s, args.alpha, args.tau2, args.min_samples, args.min_labels)
        for r in range(min(2 - checked, size)):  # the detector must decide where the formula does
            _cross_check(s, found, r, args, sc.name)
            checked += 1
        parts.append(found)
        done += size
    res = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    out: dict[str, Any] = {"scenario": sc.name, "runs": runs, "events_per_run": sc.events}
    for name in ("calibrated", "judge_only"):
        hit = res[name] >= 0
        rate = float(hit.mean())
        out[name] = {"reject_rate": rate, "reject_rate_se": math.sqrt(rate * (1 - rate) / runs)}
        if sc.treatment_rate != sc.control_rate:
            out[name]["wrong_sign"] = int((hit & ~res[f"{name}_worse"]).sum())
            if hit.any():
                n_t, l_t = res[f"{name}_n_t"][hit], res[f"{name}_l_t"][hit]
                out[name].update(
                    {
                        "treatment_turns_median": float(np.median(n_t)),
                        "treatment_turns_p90": float(np.percentile(n_t, 90)),
                        "treatment_labels_median": float(np.median(l_t)),
                    }
                )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=400, help="A/A runs per scenario")
    parser.add_argument("--detect-runs", type=int, default=200, help="runs per regression scenario")
    parser.add_argument("--seed", type=int, default=2025)
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--tau2", type=float, default=1e-4)
    parser.add_argument("--min-samples", type=int, default=100)
    parser.add_argument("--min-labels", type=int, default=30)
    parser.add_argument("--label-share", type=float, default=0.05)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    results = []
    for i, sc in enumerate(AA + AB):
        runs = max(1, round((args.runs if sc in AA else args.detect_runs) * sc.runs_factor))
        results.append(run(sc, runs, args.seed + i, args))
    seconds = time.perf_counter() - started
    table = [
        (
            "settings",
            f"alpha={args.alpha} tau2={args.tau2} min_samples={args.min_samples} "
            f"min_labels={args.min_labels} labels={args.label_share:.0%} of turns; "
            f"judge flags {SENSITIVITY:.0%} of defects, "
            f"{FALSE_FLAGS:.0%} of good turns; checked every turn",
        ),
        ("", ""),
        ("type-I error (A/A)", "runs   calibrated ever rejected   (judge-only)"),
    ]
    failed = False
    for r in results[: len(AA)]:
        m = r["calibrated"]
        table.append(
            (
                f"  {r['scenario']}",
                f"{r['runs']:>4}   {m['reject_rate']:.4f} (+-{m['reject_rate_se']:.4f})     "
                f"({r['judge_only']['reject_rate']:.4f})",
            )
        )
        failed |= m["reject_rate"] > args.alpha + 2 * m["reject_rate_se"]
    table += [
        ("", ""),
        (
            "regression detection",
            "runs  power  treatment turns / labels to 'worse' (median, p90 turns)   judge-only",
        ),
    ]
    nan = math.nan
    for r in results[len(AA) :]:
        m, j = r["calibrated"], r["judge_only"]
        table.append(
            (
                f"  {r['scenario']}",
                f"{r['runs']:>4}  {m['reject_rate']:.3f}  {m.get('treatment_turns_median', nan):>7.0f} / "
                f"{m.get('treatment_labels_median', nan):>5.0f}  "
                f"(p90 {m.get('treatment_turns_p90', nan):.0f})"
                f"  wrong sign {m['wrong_sign']}   power {j['reject_rate']:.3f}, median "
                f"{j.get('treatment_turns_median', math.nan):.0f} turns",
            )
        )
    table.append(("wall time", f"{seconds:.1f} s"))
    emit({**vars(args), "results": results, "seconds": seconds}, args.json, table)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
