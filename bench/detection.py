"""How soon does each detector find a rise of a 2% defect rate, at the same measured false-alarm rate?

Streams of Bernoulli events (1 = defective turn) at a 2% baseline change to 3%, 4%, 6% or 10% after a
uniformly random 5,000-20,000 in-control events, all the baseline a learning detector gets. Methods:

(a) oracle ``BernoulliCUSUM`` knowing p0 and p1 (one chart per shift); threshold for ARL0 = 10^6 from
    the exact Markov chain (``detectors.arl``). ARL0 and steady-state delay are COMPUTED; the
    computation is checked against simulation at ARL0 = 10^4 and the delays are also measured.
(b) ``DefectRateSpike(arl0=1e6)`` learning its baseline; false-alarm rate and delays MEASURED.
(c) river ``ADWIN(clock=1, grace_period=2000)``: delta bisected until its MEASURED rate of upward false
    alarms matches (b)'s (direction of a detection: mean of the kept window vs the dropped part).
(d) river ``PageHinkley(alpha=1, mode="up", min_instances=2000)``: for each delta of a grid, the
    threshold whose MEASURED rate matches (b)'s, then the delta with the lowest mean delay ratio. It is
    simulated by a numpy replica of river's update (same float operations), checked alarm for alarm.

False alarms: every method gets the same 2,000-event warm-up; a false alarm is the first alarm at or
after event 2,000 of an in-control stream (exposure = events from 2,000 to it, or to the end).
Delay = alarm index - change index + 1, over streams without an alarm before the change; a stream
without detection within the horizon counts as the horizon (the mean is then a lower bound, marked >=).

Run from the repository root: ``.venv/bin/python bench/detection.py [--quick] [--json] [--workers 2]``.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import machine
from detectors.arl import arl as lattice_arl
from detectors.arl import llr_chart_arl, llr_steady_state_delay, llr_threshold_for_arl
from detectors.bernoulli_cusum import BernoulliCUSUM
from detectors.defect_rate_spike import DefectRateSpike, _chart

P0 = 0.02
SHIFTS = (0.03, 0.04, 0.06, 0.10)
KNOWN_ORACLE_DELAY = {0.03: 2779, 0.04: 930, 0.06: 319, 0.10: 114}  # /work/shared/KNOWN.md
ARL0 = 1e6
WARMUP = 2000
CHANGE = (5_000, 20_000)
WARM_CHANGE = (100_000, 115_000)
EARLY = 20_000  # "young baseline" part of an in-control stream


@dataclass(frozen=True)
class Scale:
    incontrol_streams: int
    incontrol_length: int
    delay_streams: int
    warm_streams: int
    horizon: int  # post-change events simulated before a stream counts as undetected
    verify_events: int  # per oracle/lattice check at ARL0 = 1e4
    adwin_tune_streams: int
    adwin_steps: int
    ph_deltas: tuple[float, ...]
    resolution: int  # lattice denominator of the exact oracle computation (detectors.arl.lattice)


FULL = Scale(1000, 200_000, 2000, 300, 50_000, 10_000_000, 200, 5, (0.002, 0.003, 0.004, 0.006, 0.008), 16)
QUICK = Scale(60, 100_000, 150, 30, 30_000, 2_000_000, 40, 3, (0.004, 0.008), 4)


# -- streams (common random numbers: every method sees the same events) ---------------------------


def incontrol_stream(seed: int, s: int, length: int) -> np.ndarray:
    return np.random.default_rng([seed, 0, s]).random(length) < P0


def change_index(seed: int, family: int, s: int, change: tuple[int, int]) -> int:
    return int(np.random.default_rng([seed, family, s]).integers(change[0], change[1] + 1))


def change_stream(seed: int, family: int, s: int, p1: float, change: tuple[int, int], horizon: int):
    """(change index, events): rate P0 before the change, p1 from it on, for ``horizon`` events after."""
    rng = np.random.default_rng([seed, family, s])
    tau = int(rng.integers(change[0], change[1] + 1))  # drawn first: change_index() repeats it
    u = rng.random(tau + horizon)
    x = u < P0
    x[tau:] = u[tau:] < p1
    return tau, x


# -- per-stream jobs (run in worker processes) ----------------------------------------------------


def _first_alarm(detector: Any, xs: list[Any], start: int = 0) -> int:
    for i, x in enumerate(xs):
        detector.update(x)
        if detector.drift_detected and i >= start:
            return i
    return -1


def _drs_incontrol(job: tuple[int, int, int]) -> int:
    seed, s, length = job
    return _first_alarm(DefectRateSpike(arl0=ARL0), incontrol_stream(seed, s, length).tolist())


def _drs_delays(job: tuple[int, int, int, tuple[int, int], int]) -> list[tuple[int, int, int]]:
    seed, family, s, change, horizon = job
    out = []
    for p1 in SHIFTS:
        tau, x = change_stream(seed, family, s, p1, change, horizon)
        d = DefectRateSpike(arl0=ARL0)
        i = _first_alarm(d, x.tolist())
        out.append((tau, i, d.onset if i >= 0 and d.onset is not None else -1))
    return out


def _oracle_delays(job: tuple[int, int, dict[float, float], int]) -> list[tuple[int, int, int]]:
    seed, s, thresholds, horizon = job
    out = []
    for p1 in SHIFTS:
        tau, x = change_stream(seed, 1, s, p1, CHANGE, horizon)
        c = BernoulliCUSUM(P0, p1, thresholds[p1])
        i = _first_alarm(c, x.tolist(), start=WARMUP)
        out.append((tau, i, -1))
    return out


def _oracle_renewal(job: tuple[int, float, float, float, int]) -> tuple[int, int]:
    """Alarms of one chart on a long stream at rate p (it restarts after each alarm): (events, alarms)."""
    seed, p1, h, p, events = job
    x = (np.random.default_rng([seed, 7, int(p1 * 1e4), int(p * 1e4)]).random(events) < p).tolist()
    c = BernoulliCUSUM(P0, p1, h)
    alarms = 0
    for v in x:
        if c.update(v).drift_detected:
            alarms += 1
    return events, alarms


def _adwin_first_up(xs: list[bool], delta: float, start: int) -> int:
    from river.drift import ADWIN

    a = ADWIN(delta=delta, clock=1, grace_period=WARMUP)
    total = n = 0
    for i, x in enumerate(xs):
        a.update(x)
        total += x
        n += 1
        if a.drift_detected:
            kept_n, kept = a.width, a.total
            if n > kept_n and kept / kept_n > (total - kept) / (n - kept_n) and i >= start:
                return i
            total = n = 0  # river restarts ADWIN on the next update
    return -1


def _adwin_incontrol(job: tuple[int, int, int, float]) -> int:
    seed, s, length, delta = job
    return _adwin_first_up(incontrol_stream(seed, s, length).tolist(), delta, WARMUP)


def _adwin_delays(job: tuple[int, int, float, int]) -> list[tuple[int, int, int]]:
    seed, s, delta, horizon = job
    out = []
    for p1 in SHIFTS:
        tau, x = change_stream(seed, 1, s, p1, CHANGE, horizon)
        out.append((tau, _adwin_first_up(x.tolist(), delta, WARMUP), -1))
    return out


# -- PageHinkley: numpy replica of river 0.26.1 drift.PageHinkley(alpha=1, mode="up") ---------------


def _ph_run(rows: np.ndarray, delta: float, grid: np.ndarray, min_inst: int) -> np.ndarray:
    """First index at which each stream (column) exceeds each threshold of ``grid``; -1 if never.

    Per event, as river: ``n += 1.0; mean += (1.0 / n) * (x - mean); s = (1 * s + (x - mean)) - delta;
    min = min(min, s)``; alarm when ``n >= min_instances`` and ``s - min > threshold``.
    """
    t_len, n_streams = rows.shape
    mean = np.zeros(n_streams)
    s = np.zeros(n_streams)
    low = np.full(n_streams, np.inf)
    level = np.zeros(n_streams, dtype=np.int64)
    first = np.full((n_streams, len(grid)), -1, dtype=np.int64)
    done = len(grid)
    for t in range(t_len):
        x = rows[t].astype(np.float64)
        n = t + 1.0
        mean += (1.0 / n) * (x - mean)
        s = (s + (x - mean)) - delta
        np.minimum(low, s, out=low)
        if n >= min_inst:
            new = np.searchsorted(grid, s - low, side="left")  # thresholds strictly below the statistic
            for j in np.nonzero(new > level)[0]:
                first[j, level[j] : new[j]] = t
                level[j] = new[j]
            if done == 1 and (level >= 1).all():
                break
    return first


def _ph_job(job: tuple[int, int, list[int], int, float, list[float], int]) -> np.ndarray:
    kind, seed, streams, length, delta, grid, p_index = job
    if kind == 0:
        rows = np.stack([incontrol_stream(seed, s, length) for s in streams], axis=1)
    else:
        p1 = SHIFTS[p_index]
        xs = [change_stream(seed, 1, s, p1, CHANGE, length)[1] for s in streams]
        width = max(len(x) for x in xs)
        rows = np.zeros((width, len(xs)), dtype=bool)
        for k, x in enumerate(xs):
            rows[: len(x), k] = x
    return _ph_run(rows, delta, np.asarray(grid), WARMUP)


def _ph_check_against_river(seed: int) -> tuple[int, int]:
    """First alarms of the replica and of river itself: (streams x settings checked, mismatches)."""
    from river.drift import PageHinkley

    checked = mismatches = 0
    streams = [incontrol_stream(seed + 1, s, 30_000) for s in range(6)]
    for delta, lam in ((0.005, 3.0), (0.005, 6.0), (0.002, 12.0)):
        replica = _ph_run(np.stack(streams, axis=1), delta, np.array([lam]), WARMUP)[:, 0]
        for k, x in enumerate(streams):
            ph = PageHinkley(min_instances=WARMUP, delta=delta, threshold=lam, alpha=1, mode="up")
            mismatches += _first_alarm(ph, [int(v) for v in x]) != replica[k]
            checked += 1
    return checked, mismatches


# -- statistics --------------------------------------------------------------------------------------


def _poisson_ci(count: int) -> tuple[float, float]:
    from scipy.stats import chi2

    lo = 0.0 if count == 0 else chi2.ppf(0.025, 2 * count) / 2
    return lo, chi2.ppf(0.975, 2 * count + 2) / 2


def false_alarm_summary(first: list[int], length: int) -> dict[str, Any]:
    """Events per false alarm from first-alarm indices (-1: none) of in-control streams."""
    exposure = sum((i + 1 if i >= 0 else length) - WARMUP for i in first)
    alarms = sum(1 for i in first if i >= 0)
    early_exp = sum(min(i + 1 if i >= 0 else length, EARLY) - WARMUP for i in first)
    early = sum(1 for i in first if 0 <= i < EARLY)
    lo, hi = _poisson_ci(alarms)
    return {
        "events": exposure,
        "false_alarms": alarms,
        "events_per_false_alarm": exposure / alarms if alarms else math.inf,
        "ci95": [exposure / hi, exposure / lo if lo else math.inf],
        "early_events": early_exp,
        "early_false_alarms": early,
        "early_events_per_false_alarm": early_exp / early if early else math.inf,
    }


def delay_summary(rows: list[tuple[int, int, int]], horizon: int) -> dict[str, Any]:
    """rows: (change index, first alarm index or -1, onset or -1) per stream."""
    false_before = sum(1 for tau, i, _ in rows if 0 <= i < tau)
    kept = [(tau, i, on) for tau, i, on in rows if not 0 <= i < tau]
    delays = np.array([i - tau + 1 if i >= 0 else horizon for tau, i, _ in kept], dtype=float)
    taus = np.array([tau for tau, _, _ in kept])
    undetected = int(sum(1 for _, i, _ in kept if i < 0))
    onset_err = [on - tau for tau, i, on in kept if i >= 0 and on >= 0]
    young = delays[taus < 10_000]
    old = delays[taus >= 15_000]
    return {
        "streams": len(rows),
        "false_alarm_before_change": false_before,
        "undetected_within_horizon": undetected,
        "mean": float(delays.mean()) if len(delays) else math.nan,
        "se": float(delays.std(ddof=1) / math.sqrt(len(delays))) if len(delays) > 1 else math.nan,
        "median": float(np.median(delays)) if len(delays) else math.nan,
        "mean_change_before_10k": float(young.mean()) if len(young) else math.nan,
        "mean_change_after_15k": float(old.mean()) if len(old) else math.nan,
        "onset_error_median": float(np.median(onset_err)) if onset_err else math.nan,
    }


# -- sections ---------------------------------------------------------------------------------------


def _chunks(items: list[int], n: int) -> list[list[int]]:
    return [items[k::n] for k in range(n)]


def oracle_section(scale: Scale, seed: int, pool: Any) -> dict[str, Any]:
    """Thresholds, exact ARL0 and delays of the oracle; the Markov chain checked by simulation at 1e4."""
    out: dict[str, Any] = {}
    for p1 in SHIFTS:
        res = scale.resolution
        h = llr_threshold_for_arl(P0, p1, ARL0, res)
        h4 = llr_threshold_for_arl(P0, p1, 1e4, res)
        parts = 10
        jobs = [(seed + k, p1, h4, P0, scale.verify_events // parts) for k in range(parts)]
        jobs += [(seed + k, p1, h4, p1, scale.verify_events // (10 * parts)) for k in range(parts)]
        sims = pool.map(_oracle_renewal, jobs)
        sim_in = [sum(e for e, _ in sims[:parts]), sum(a for _, a in sims[:parts])]
        sim_out = [sum(e for e, _ in sims[parts:]), sum(a for _, a in sims[parts:])]
        out[str(p1)] = {
            "threshold_nats": h,
            "exact_arl0": llr_chart_arl(P0, p1, h, P0, res),
            "exact_zero_state_delay": llr_chart_arl(P0, p1, h, p1, res),
            "exact_steady_state_delay": llr_steady_state_delay(P0, p1, h, res),
            "known_md_delay": KNOWN_ORACLE_DELAY[p1],
            "check_1e4": {
                "threshold_nats": h4,
                "exact_arl0": llr_chart_arl(P0, p1, h4, P0, res),
                "simulated_arl0": sim_in[0] / sim_in[1],
                "simulated_arl0_se": sim_in[0] / sim_in[1] / math.sqrt(sim_in[1]),
                "simulated_alarms": sim_in[1],
                "exact_arl1": llr_chart_arl(P0, p1, h4, p1, res),
                "simulated_arl1": sim_out[0] / sim_out[1],
                "simulated_arl1_se": sim_out[0] / sim_out[1] / math.sqrt(sim_out[1]),
            },
        }
    return out


def _lattice_renewal(job: tuple[int, int, int, int, float, int, int]) -> tuple[int, int]:
    seed, up, down, thr, p, streams, steps = job
    rng = np.random.default_rng([seed, 8, up, thr])
    s = np.zeros(streams, dtype=np.int64)
    alarms = 0
    for _ in range(steps):
        x = rng.random(streams) < p
        s = np.where(x, s + up, np.maximum(s - down, 0))
        hit = s >= thr
        alarms += int(hit.sum())
        s[hit] = 0
    return streams * steps, alarms


def lattice_section(scale: Scale, seed: int, pool: Any) -> list[dict[str, Any]]:
    """DefectRateSpike's lattice charts at a 2% design rate, ARL0 = 1e4: exact vs simulated."""
    d = DefectRateSpike()
    q = math.ceil(math.log(P0) / 0.005)
    out = []
    for ratio in d._ratios:
        up, down, thr, unit = _chart(q, ratio, 1e4)
        p = math.exp(q * 0.005)
        streams = 20  # few streams, each much longer than the ARL: the renewal estimate is then unbiased
        steps = scale.verify_events // (2 * streams)
        jobs = [(seed + k, up, down, thr, p, streams, steps) for k in range(2)]
        sims = pool.map(_lattice_renewal, jobs)
        events, alarms = sum(e for e, _ in sims), sum(a for _, a in sims)
        out.append(
            {
                "ratio": ratio,
                "up": up,
                "down": down,
                "threshold_units": thr,
                "threshold_nats": thr * unit,
                "exact_arl0": lattice_arl(up, down, thr, p),
                "simulated_arl0": events / alarms,
                "simulated_arl0_se": events / alarms / math.sqrt(alarms),
            }
        )
    return out


def _split_delays(results: list[list[tuple[int, int, int]]], horizon: int) -> dict[str, Any]:
    return {str(p1): delay_summary([r[k] for r in results], horizon) for k, p1 in enumerate(SHIFTS)}


def drs_section(scale: Scale, seed: int, pool: Any) -> dict[str, Any]:
    length = scale.incontrol_length
    first = pool.map(_drs_incontrol, [(seed, s, length) for s in range(scale.incontrol_streams)], chunksize=4)
    delays = pool.map(_drs_delays, [(seed, 1, s, CHANGE, scale.horizon) for s in range(scale.delay_streams)])
    warm = pool.map(
        _drs_delays, [(seed, 2, s, WARM_CHANGE, scale.horizon) for s in range(scale.warm_streams)]
    )
    return {
        "false_alarms": false_alarm_summary(first, length),
        "delays": _split_delays(delays, scale.horizon),
        "warm_baseline_delays": _split_delays(warm, scale.horizon),
    }


def oracle_delay_section(
    scale: Scale, seed: int, pool: Any, thresholds: dict[float, float]
) -> dict[str, Any]:
    jobs = [(seed, s, thresholds, scale.horizon) for s in range(scale.delay_streams)]
    return _split_delays(pool.map(_oracle_delays, jobs), scale.horizon)


def adwin_section(scale: Scale, seed: int, pool: Any, target: float) -> dict[str, Any]:
    """Bisect log(delta) on a subset of the in-control streams until the measured events per upward
    false alarm matches ``target``; then measure on all of them and, if still more than 15% off, take
    one secant step (log-log slope from the bisection) and keep the delta that lands closer."""
    length = scale.incontrol_length
    lo, hi = math.log(1e-3), math.log(0.5)
    tried = []
    for _ in range(scale.adwin_steps):
        delta = math.exp((lo + hi) / 2)
        jobs = [(seed, s, length, delta) for s in range(scale.adwin_tune_streams)]
        rate = false_alarm_summary(pool.map(_adwin_incontrol, jobs, chunksize=2), length)
        tried.append({"delta": delta, "events_per_false_alarm": rate["events_per_false_alarm"]})
        if rate["events_per_false_alarm"] > target:
            lo = math.log(delta)
        else:
            hi = math.log(delta)

    def measure(delta: float) -> dict[str, Any]:
        jobs = [(seed, s, length, delta) for s in range(scale.incontrol_streams)]
        return false_alarm_summary(pool.map(_adwin_incontrol, jobs, chunksize=2), length)

    delta = math.exp((lo + hi) / 2)
    fa = measure(delta)
    finals = [{"delta": delta, "events_per_false_alarm": fa["events_per_false_alarm"]}]
    miss = math.log(fa["events_per_false_alarm"] / target)
    finite = [t for t in tried if math.isfinite(t["events_per_false_alarm"])]
    if abs(miss) > math.log(1.15) and len(finite) >= 2:
        xs = np.log([t["delta"] for t in finite])
        ys = np.log([t["events_per_false_alarm"] for t in finite])
        slope = float(np.polyfit(xs, ys, 1)[0])
        if slope < 0:
            delta2 = delta * math.exp(-miss / slope)
            fa2 = measure(delta2)
            finals.append({"delta": delta2, "events_per_false_alarm": fa2["events_per_false_alarm"]})
            if abs(math.log(fa2["events_per_false_alarm"] / target)) < abs(miss):
                delta, fa = delta2, fa2
    delays = pool.map(_adwin_delays, [(seed, s, delta, scale.horizon) for s in range(scale.delay_streams)])
    return {
        "delta": delta,
        "tuning": tried,
        "full_set_measurements": finals,
        "false_alarms": fa,
        "delays": _split_delays(delays, scale.horizon),
    }


PH_GRID = np.geomspace(0.5, 500.0, 1800)


def ph_section(scale: Scale, seed: int, pool: Any, workers: int, target: float) -> dict[str, Any]:
    length = scale.incontrol_length
    streams = _chunks(list(range(scale.incontrol_streams)), workers)
    dstreams = _chunks(list(range(scale.delay_streams)), workers)
    candidates: list[dict[str, Any]] = []
    for delta in scale.ph_deltas:
        jobs = [(0, seed, chunk, length, delta, PH_GRID.tolist(), 0) for chunk in streams]
        first = np.concatenate(pool.map(_ph_job, jobs), axis=0)
        rates = [false_alarm_summary(first[:, g].tolist(), length) for g in range(len(PH_GRID))]
        g = min(range(len(PH_GRID)), key=lambda g: abs(math.log(rates[g]["events_per_false_alarm"] / target)))
        lam = float(PH_GRID[g])
        results: list[list[tuple[int, int, int]]] = [[] for _ in range(scale.delay_streams)]
        for k in range(len(SHIFTS)):
            jobs = [(1, seed, chunk, scale.horizon, delta, [lam], k) for chunk in dstreams]
            alarms = np.concatenate(pool.map(_ph_job, jobs), axis=0)[:, 0]
            for s, i in zip([s for chunk in dstreams for s in chunk], alarms.tolist(), strict=True):
                tau = change_index(seed, 1, s, CHANGE)
                results[s].append((tau, i if i < tau + scale.horizon else -1, -1))
        delays = _split_delays(results, scale.horizon)
        score = float(np.mean([delays[str(p1)]["mean"] / KNOWN_ORACLE_DELAY[p1] for p1 in SHIFTS]))
        candidates.append(
            {"delta": delta, "threshold": lam, "false_alarms": rates[g], "delays": delays, "score": score}
        )
    best = min(candidates, key=lambda c: c["score"])
    return {**best, "candidates": [{k: c[k] for k in ("delta", "threshold", "score")} for c in candidates]}


def update_costs(events: int) -> dict[str, float]:
    """Mean microseconds per update, in this process, on an in-control 2% stream."""
    from river.drift import ADWIN, PageHinkley

    import detectors.defect_rate_spike as drs_module

    xs = (np.random.default_rng(3).random(events) < P0).tolist()
    ints = [int(v) for v in xs]
    out = {}

    def timed(det: Any, data: list[Any]) -> float:
        update = det.update
        t = time.perf_counter()
        for x in data:
            update(x)
        return (time.perf_counter() - t) / len(data) * 1e6

    drs_module._chart.cache_clear()
    out["DefectRateSpike, design cache cold"] = timed(DefectRateSpike(), xs)
    out["DefectRateSpike, design cache warm"] = timed(DefectRateSpike(), xs)
    out["BernoulliCUSUM"] = timed(BernoulliCUSUM(P0, 0.06, 9.47), xs)
    out["river ADWIN(clock=1)"] = timed(ADWIN(delta=0.05, clock=1, grace_period=WARMUP), ints)
    ph = PageHinkley(min_instances=WARMUP, delta=0.005, threshold=50, alpha=1, mode="up")
    out["river PageHinkley"] = timed(ph, ints)
    drs_module._chart.cache_clear()
    d = DefectRateSpike()
    for x in xs[: WARMUP - 1]:
        d.update(x)
    t = time.perf_counter()
    d.update(False)  # the warm-up ends: 4 charts designed from scratch (cache cold)
    out["DefectRateSpike first design, one update, cache cold"] = (time.perf_counter() - t) * 1e6
    return out


# -- report -----------------------------------------------------------------------------------------


def _fmt_delay(summary: dict[str, Any], p1: float) -> str:
    mean, oracle = summary["mean"], KNOWN_ORACLE_DELAY[p1]
    bound = ">=" if summary["undetected_within_horizon"] else ""
    cell = f"{bound}{mean:,.0f} ({mean / oracle:.2f}x)"
    if summary["undetected_within_horizon"]:
        cell += f" [{summary['undetected_within_horizon']} undet.]"
    return cell


def _fmt_rate(fa: dict[str, Any]) -> str:
    lo, hi = fa["ci95"]
    return (
        f"{fa['events_per_false_alarm']:.3g} [{lo:.2g}, {hi:.2g}] "
        f"({fa['events']:.3g} ev, {fa['false_alarms']} FA; <20k: {fa['early_events_per_false_alarm']:.2g})"
    )


def _fa_before(delays: dict[str, Any]) -> str:
    counts = [delays[str(p1)]["false_alarm_before_change"] for p1 in SHIFTS]
    total = sum(delays[str(p1)]["streams"] for p1 in SHIFTS)
    return f"{sum(counts) / total:.1%}"


def report(result: dict[str, Any]) -> list[str]:
    lines = []
    oracle = result["oracle"]
    heads = ["method", "tuning", "events per false alarm [95% CI] (in-control events, FAs)", "FA<chg"]
    heads += [f"delay 2%->{p1:.0%}" for p1 in SHIFTS]
    rows = [
        [
            "(a) oracle CUSUM, exact",
            "h=" + "/".join(f"{oracle[str(p1)]['threshold_nats']:.2f}" for p1 in SHIFTS),
            "computed: " + "/".join(f"{oracle[str(p1)]['exact_arl0']:.4g}" for p1 in SHIFTS),
            "",
        ]
        + [
            f"{oracle[str(p1)]['exact_steady_state_delay']:,.0f} (KNOWN {KNOWN_ORACLE_DELAY[p1]:,})"
            for p1 in SHIFTS
        ],
        ["(a) oracle CUSUM, measured", "same", "computed (see checks)", _fa_before(result["oracle_delays"])]
        + [_fmt_delay(result["oracle_delays"][str(p1)], p1) for p1 in SHIFTS],
    ]
    drs = result["defect_rate_spike"]
    rows.append(
        ["(b) DefectRateSpike", "arl0=1e6", _fmt_rate(drs["false_alarms"]), _fa_before(drs["delays"])]
        + [_fmt_delay(drs["delays"][str(p1)], p1) for p1 in SHIFTS]
    )
    if "adwin" in result:
        ad = result["adwin"]
        rows.append(
            [
                "(c) river ADWIN",
                f"delta={ad['delta']:.3g}",
                _fmt_rate(ad["false_alarms"]),
                _fa_before(ad["delays"]),
            ]
            + [_fmt_delay(ad["delays"][str(p1)], p1) for p1 in SHIFTS]
        )
    if "page_hinkley" in result:
        ph = result["page_hinkley"]
        rows.append(
            [
                "(d) river PageHinkley",
                f"delta={ph['delta']:g} thr={ph['threshold']:.3g}",
                _fmt_rate(ph["false_alarms"]),
                _fa_before(ph["delays"]),
            ]
            + [_fmt_delay(ph["delays"][str(p1)], p1) for p1 in SHIFTS]
        )
    rows.append(
        [
            "(b') DefectRateSpike, warm",
            "change at 100-115k",
            "(as (b))",
            _fa_before(drs["warm_baseline_delays"]),
        ]
        + [_fmt_delay(drs["warm_baseline_delays"][str(p1)], p1) for p1 in SHIFTS]
    )
    widths = [max(len(r[k]) for r in [heads, *rows]) for k in range(len(heads))]
    lines.append(" | ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    lines.append("-+-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    lines.append("")
    lines.append(
        "Delay: mean events from the change to the alarm (ratio to the exact oracle delay), streams with"
    )
    lines.append("no false alarm before the change; change after U(5k, 20k) in-control events unless noted.")
    lines.append("Split by change time (young baseline < 10k / >= 15k), ratio to the oracle:")
    for label, key in (("(b) DefectRateSpike", "delays"),):
        d = drs[key]
        cells = [
            f"{p1:.0%}: {d[str(p1)]['mean_change_before_10k'] / KNOWN_ORACLE_DELAY[p1]:.2f}x"
            f" / {d[str(p1)]['mean_change_after_15k'] / KNOWN_ORACLE_DELAY[p1]:.2f}x"
            for p1 in SHIFTS
        ]
        lines.append(f"  {label}: " + ", ".join(cells))
    lines.append(
        "  onset error (median, events): "
        + ", ".join(f"{p1:.0%}: {drs['delays'][str(p1)]['onset_error_median']:+.0f}" for p1 in SHIFTS)
    )
    lines.append("")
    lines.append("Checks of the exact Markov-chain ARL against simulation (ARL0 = 1e4):")
    for p1 in SHIFTS:
        c = oracle[str(p1)]["check_1e4"]
        lines.append(
            f"  oracle 2%->{p1:.0%}: ARL0 exact {c['exact_arl0']:,.0f}"
            f" vs simulated {c['simulated_arl0']:,.0f}"
            f" ± {c['simulated_arl0_se']:,.0f}; ARL1 exact {c['exact_arl1']:,.1f} vs simulated"
            f" {c['simulated_arl1']:,.1f} ± {c['simulated_arl1_se']:,.1f}"
        )
    for c in result["lattice_checks"]:
        lines.append(
            f"  DefectRateSpike chart x{c['ratio']:.2f} (up {c['up']}, threshold {c['threshold_units']}):"
            f" ARL0 exact {c['exact_arl0']:,.0f} vs simulated {c['simulated_arl0']:,.0f}"
            f" ± {c['simulated_arl0_se']:,.0f}"
        )
    if "page_hinkley" in result:
        ph = result["page_hinkley"]
        lines.append(
            f"  PageHinkley replica vs river: {ph['river_check'][1]} mismatching first alarms"
            f" in {ph['river_check'][0]} stream runs"
        )
        lines.append(
            "  PageHinkley candidates (delta: threshold, mean delay ratio): "
            + ", ".join(f"{c['delta']:g}: {c['threshold']:.3g}, {c['score']:.2f}" for c in ph["candidates"])
        )
    if "adwin" in result:
        lines.append(
            "  ADWIN on all in-control streams (delta: events/FA): "
            + ", ".join(
                f"{t['delta']:.3g}: {t['events_per_false_alarm']:.3g}"
                for t in result["adwin"].get("full_set_measurements", [])
            )
        )
        lines.append(
            "  ADWIN tuning (delta: events/FA on the tuning streams): "
            + ", ".join(
                f"{t['delta']:.3g}: {t['events_per_false_alarm']:.3g}" for t in result["adwin"]["tuning"]
            )
        )
    lines.append("")
    lines.append(
        "Update cost (µs, one core): "
        + ", ".join(f"{k} {v:.2f}" for k, v in result["update_cost_us"].items())
    )
    lines.append(
        f"Runtime: {result['runtime_s']:.0f} s wall, {result.get('cpu_s', math.nan):.0f} s CPU,"
        f" {result['workers']} workers; scale {result['scale']}"
    )
    return lines


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.integer | np.floating):
        return _jsonable(value.item())
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="CI-sized run (about a minute)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--seed", type=int, default=20_240_601)
    parser.add_argument("--skip-river", action="store_true", help="only the oracle and DefectRateSpike")
    parser.add_argument("--render", metavar="FILE", help="print the table of a result saved with --json")
    args = parser.parse_args(argv)
    if args.render:
        import json

        def restore(v: Any) -> Any:  # JSON null stands for an infinite or undefined figure
            if isinstance(v, dict):
                return {k: restore(x) for k, x in v.items()}
            if isinstance(v, list):
                return [restore(x) for x in v]
            return math.inf if v is None else v

        print("\n".join(report(restore(json.loads(Path(args.render).read_text())))))
        return 0
    scale = QUICK if args.quick else FULL
    started = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:6.0f}s] {msg}", file=sys.stderr, flush=True)

    result: dict[str, Any] = {"scale": "quick" if args.quick else "full", "workers": args.workers}
    result["config"] = {**asdict(scale), "p0": P0, "shifts": SHIFTS, "arl0": ARL0, "warmup": WARMUP}
    with Pool(args.workers) as pool:
        log("oracle: exact thresholds, ARL0 and delays; simulation checks at ARL0 = 1e4")
        result["oracle"] = oracle_section(scale, args.seed, pool)
        result["lattice_checks"] = lattice_section(scale, args.seed, pool)
        thresholds = {p1: result["oracle"][str(p1)]["threshold_nats"] for p1 in SHIFTS}
        log("oracle: delays on the shared change streams")
        result["oracle_delays"] = oracle_delay_section(scale, args.seed, pool, thresholds)
        log("DefectRateSpike: in-control false alarms, delays, warm-baseline delays")
        result["defect_rate_spike"] = drs_section(scale, args.seed, pool)
        target = result["defect_rate_spike"]["false_alarms"]["events_per_false_alarm"]
        if not args.skip_river:
            log(f"PageHinkley: thresholds matching {target:.3g} events per false alarm, per delta")
            result["page_hinkley"] = ph_section(scale, args.seed, pool, args.workers, target)
            result["page_hinkley"]["river_check"] = _ph_check_against_river(args.seed)
            log("ADWIN: delta bisection")
            result["adwin"] = adwin_section(scale, args.seed, pool, target)
    log("update costs")
    result["update_cost_us"] = update_costs(200_000 if args.quick else 1_000_000)
    result["machine"] = machine()
    result["runtime_s"] = time.perf_counter() - started
    cpu = os.times()
    result["cpu_s"] = cpu.user + cpu.system + cpu.children_user + cpu.children_system
    if args.json:
        import json

        print(json.dumps(_jsonable(result), indent=2, sort_keys=True))
    else:
        print("\n".join(report(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
