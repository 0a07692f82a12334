"""The methods of the detection benchmark, their tuning to a measured false-alarm rate, and checks.

Per-stream jobs run in worker processes (``multiprocessing.Pool.map``); vectorised ones (the oracle
CUSUM, the PageHinkley replica) run many streams at once as columns of a numpy array.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from bench.detection_streams import (
    ARL0,
    KNOWN_ORACLE_DELAY,
    P0,
    SHIFTS,
    WARMUP,
    Regime,
    Scale,
    change_index,
    change_stream,
    delay_summary,
    false_alarm_summary,
    incontrol_stream,
)
from detectors.arl import arl as lattice_arl
from detectors.arl import llr_chart_arl, llr_steady_state_delay, llr_threshold_for_arl
from detectors.bernoulli_cusum import BernoulliCUSUM
from detectors.defect_rate_spike import DefectRateSpike
from detectors.spike_design import _chart

Rows = list[tuple[int, int, int]]  # per stream: (change index, first alarm index or -1, onset or -1)


def first_alarm(detector: Any, xs: list[Any], start: int = 0) -> int:
    for i, x in enumerate(xs):
        detector.update(x)
        if detector.drift_detected and i >= start:
            return i
    return -1


def split_delays(results: list[Rows], horizon: int) -> dict[str, Any]:
    """Per-shift summaries from per-stream lists of rows (one row per shift)."""
    return {
        str(p1): delay_summary([r[k] for r in results], horizon, KNOWN_ORACLE_DELAY[p1])
        for k, p1 in enumerate(SHIFTS)
    }


def chunks(items: list[int], n: int) -> list[list[int]]:
    return [items[k::n] for k in range(n)]


def _matrix(xs: list[np.ndarray]) -> np.ndarray:
    rows = np.zeros((max(len(x) for x in xs), len(xs)), dtype=bool)
    for k, x in enumerate(xs):
        rows[: len(x), k] = x
    return rows


# -- DefectRateSpike ----------------------------------------------------------------------------------


def drs_incontrol(job: tuple[int, Regime, int]) -> int:
    seed, regime, s = job
    return first_alarm(DefectRateSpike(arl0=ARL0), incontrol_stream(seed, regime, s).tolist())


def drs_delays(job: tuple[int, Regime, int, int]) -> Rows:
    seed, regime, s, horizon = job
    out = []
    for p1 in SHIFTS:
        tau, x = change_stream(seed, regime, s, p1, horizon)
        d = DefectRateSpike(arl0=ARL0)
        i = first_alarm(d, x.tolist())
        out.append((tau, i, d.onset if i >= 0 and d.onset is not None else -1))
    return out


# -- oracle CUSUM, vectorised (the same float operations as BernoulliCUSUM.update) ---------------------


def oracle_job(job: tuple[int, Regime, list[int], int, dict[float, float]]) -> list[Rows]:
    """Rows of the oracle chart (restarting after each alarm, as BernoulliCUSUM) for ``streams``."""
    seed, regime, streams, horizon, thresholds = job
    out: list[Rows] = [[] for _ in streams]
    for p1 in SHIFTS:
        pairs = [change_stream(seed, regime, s, p1, horizon) for s in streams]
        rows = _matrix([x for _, x in pairs])
        up, down, h = math.log(p1 / P0), math.log((1.0 - p1) / (1.0 - P0)), thresholds[p1]
        s = np.zeros(len(streams))
        first = np.full(len(streams), -1, dtype=np.int64)
        for t in range(rows.shape[0]):
            s = s + np.where(rows[t], up, down)
            s[s <= 0.0] = 0.0
            hit = s >= h
            if hit.any():
                if t >= WARMUP:
                    first[hit & (first < 0)] = t
                    if (first >= 0).all():
                        break
                s[hit] = 0.0
        for k, (tau, x) in enumerate(pairs):
            i = int(first[k])
            out[k].append((tau, i if i < len(x) else -1, -1))
    return out


# -- river ADWIN ------------------------------------------------------------------------------------


def adwin_first_up(xs: list[bool], delta: float, start: int) -> int:
    """First upward detection at or after ``start`` (the kept window's mean above the dropped part's)."""
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


def adwin_incontrol(job: tuple[int, Regime, int, float]) -> int:
    seed, regime, s, delta = job
    return adwin_first_up(incontrol_stream(seed, regime, s).tolist(), delta, WARMUP)


def adwin_delays(job: tuple[int, Regime, int, float, int]) -> Rows:
    seed, regime, s, delta, horizon = job
    out = []
    for p1 in SHIFTS:
        tau, x = change_stream(seed, regime, s, p1, horizon)
        out.append((tau, adwin_first_up(x.tolist(), delta, WARMUP), -1))
    return out


def tune_adwin(scale: Scale, regime: Regime, seed: int, pool: Any, target: float) -> dict[str, Any]:
    """Bisect log(delta) on a share of the regime's in-control streams until the measured events per
    upward false alarm match ``target``; measure on all of them and, if still more than 15% off, take
    one secant step (log-log slope from the bisection), keeping the delta that lands closer."""
    n_all = scale.incontrol_streams[regime.name]
    n_tune = max(2, round(n_all * scale.adwin_tune_fraction))
    length = regime.incontrol_length

    def measure(delta: float, n: int) -> dict[str, Any]:
        jobs = [(seed, regime, s, delta) for s in range(n)]
        return false_alarm_summary(pool.map(adwin_incontrol, jobs, chunksize=4), length)

    lo, hi = math.log(1e-4), math.log(0.9)
    tried = []
    for _ in range(scale.adwin_steps):
        delta = math.exp((lo + hi) / 2)
        rate = measure(delta, n_tune)["events_per_false_alarm"]
        tried.append({"delta": delta, "events_per_false_alarm": rate})
        lo, hi = (math.log(delta), hi) if rate > target else (lo, math.log(delta))
    delta = math.exp((lo + hi) / 2)
    fa = measure(delta, n_all)
    finals = [{"delta": delta, "events_per_false_alarm": fa["events_per_false_alarm"]}]
    miss = math.log(fa["events_per_false_alarm"] / target)
    finite = [t for t in tried if math.isfinite(t["events_per_false_alarm"])]
    if abs(miss) > math.log(1.15) and len(finite) >= 2:
        xs = np.log([t["delta"] for t in finite])
        ys = np.log([t["events_per_false_alarm"] for t in finite])
        slope = float(np.polyfit(xs, ys, 1)[0])
        if slope < 0:
            delta2 = delta * math.exp(-miss / slope)
            fa2 = measure(delta2, n_all)
            finals.append({"delta": delta2, "events_per_false_alarm": fa2["events_per_false_alarm"]})
            if abs(math.log(fa2["events_per_false_alarm"] / target)) < abs(miss):
                delta, fa = delta2, fa2
    return {"delta": delta, "bisection": tried, "full_set_measurements": finals, "false_alarms": fa}


# -- PageHinkley: numpy replica of river 0.26.1 drift.PageHinkley(alpha=1, mode="up") ---------------

PH_GRID = np.geomspace(0.5, 500.0, 1800)


def ph_run(rows: np.ndarray, delta: float, grid: np.ndarray, min_inst: int) -> np.ndarray:
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
            if len(grid) == 1 and (level >= 1).all():
                break
    return first


def ph_job(job: tuple[int, int, Regime, list[int], int, float, list[float], int]) -> np.ndarray:
    kind, seed, regime, streams, horizon, delta, grid, p_index = job
    if kind == 0:
        rows = np.stack([incontrol_stream(seed, regime, s) for s in streams], axis=1)
    else:
        rows = _matrix([change_stream(seed, regime, s, SHIFTS[p_index], horizon)[1] for s in streams])
    return ph_run(rows, delta, np.asarray(grid), WARMUP)


def ph_check_against_river(seed: int, regime: Regime) -> tuple[int, int]:
    """First alarms of the replica and of river itself: (streams x settings checked, mismatches)."""
    from river.drift import PageHinkley

    checked = mismatches = 0
    streams = [incontrol_stream(seed + 1, regime, s)[:30_000] for s in range(6)]
    for delta, lam in ((0.005, 3.0), (0.005, 6.0), (0.002, 12.0)):
        replica = ph_run(np.stack(streams, axis=1), delta, np.array([lam]), WARMUP)[:, 0]
        for k, x in enumerate(streams):
            ph = PageHinkley(min_instances=WARMUP, delta=delta, threshold=lam, alpha=1, mode="up")
            mismatches += first_alarm(ph, [int(v) for v in x]) != replica[k]
            checked += 1
    return checked, mismatches


def tune_page_hinkley(
    scale: Scale, regime: Regime, seed: int, pool: Any, workers: int, target: float
) -> tuple[dict[str, Any], list[Rows]]:
    """For each delta, the threshold whose measured rate is closest to ``target``; then the delta with
    the lowest mean delay ratio on the delay streams (a choice that favours PageHinkley)."""
    length = regime.incontrol_length
    streams = chunks(list(range(scale.incontrol_streams[regime.name])), workers)
    n_delay = scale.delay_streams[regime.name]
    dstreams = chunks(list(range(n_delay)), workers)
    order = [s for chunk in dstreams for s in chunk]
    candidates: list[dict[str, Any]] = []
    for delta in scale.ph_deltas:
        jobs = [(0, seed, regime, chunk, 0, delta, PH_GRID.tolist(), 0) for chunk in streams]
        first = np.concatenate(pool.map(ph_job, jobs), axis=0)
        rates = [false_alarm_summary(first[:, g].tolist(), length) for g in range(len(PH_GRID))]
        g = min(range(len(PH_GRID)), key=lambda g: abs(math.log(rates[g]["events_per_false_alarm"] / target)))
        lam = float(PH_GRID[g])
        results: list[Rows] = [[] for _ in range(n_delay)]
        for k in range(len(SHIFTS)):
            jobs = [(1, seed, regime, chunk, scale.horizon, delta, [lam], k) for chunk in dstreams]
            alarms = np.concatenate(pool.map(ph_job, jobs), axis=0)[:, 0]
            for s, i in zip(order, alarms.tolist(), strict=True):
                tau = change_index(seed, regime, s)
                results[s].append((tau, i if i < tau + scale.horizon else -1, -1))
        delays = split_delays(results, scale.horizon)
        score = float(np.mean([delays[str(p1)]["ratio"] for p1 in SHIFTS]))
        candidates.append(
            {"delta": delta, "threshold": lam, "false_alarms": rates[g], "score": score, "results": results}
        )
    best = min(candidates, key=lambda c: c["score"])
    summary = {k: best[k] for k in ("delta", "threshold", "false_alarms", "score")}
    summary["candidates"] = [{k: c[k] for k in ("delta", "threshold", "score")} for c in candidates]
    return summary, best["results"]


# -- checks of the exact computations ---------------------------------------------------------------


def _oracle_renewal(job: tuple[int, float, float, float, int]) -> tuple[int, int]:
    """Alarms of one chart on a long stream at rate p (it restarts after each alarm): (events, alarms)."""
    seed, p1, h, p, events = job
    x = (np.random.default_rng([seed, 7, int(p1 * 1e4), int(p * 1e4)]).random(events) < p).tolist()
    c = BernoulliCUSUM(P0, p1, h)
    return events, sum(1 for v in x if c.update(v).drift_detected)


def oracle_section(scale: Scale, seed: int, pool: Any) -> dict[str, Any]:
    """Thresholds, exact ARL0 and delays of the oracle; the Markov chain checked by simulation at 1e4."""
    out: dict[str, Any] = {}
    res, parts = scale.resolution, 10
    for p1 in SHIFTS:
        h = llr_threshold_for_arl(P0, p1, ARL0, res)
        h4 = llr_threshold_for_arl(P0, p1, 1e4, res)
        jobs = [(seed + k, p1, h4, P0, scale.verify_events // parts) for k in range(parts)]
        jobs += [(seed + k, p1, h4, p1, scale.verify_events // (10 * parts)) for k in range(parts)]
        sims = pool.map(_oracle_renewal, jobs)
        ev_in, al_in = sum(e for e, _ in sims[:parts]), sum(a for _, a in sims[:parts])
        ev_out, al_out = sum(e for e, _ in sims[parts:]), sum(a for _, a in sims[parts:])
        out[str(p1)] = {
            "threshold_nats": h,
            "exact_arl0": llr_chart_arl(P0, p1, h, P0, res),
            "exact_zero_state_delay": llr_chart_arl(P0, p1, h, p1, res),
            "exact_steady_state_delay": llr_steady_state_delay(P0, p1, h, res),
            "known_md_delay": KNOWN_ORACLE_DELAY[p1],
            "check_1e4": {
                "exact_arl0": llr_chart_arl(P0, p1, h4, P0, res),
                "simulated_arl0": ev_in / al_in,
                "simulated_arl0_se": ev_in / al_in / math.sqrt(al_in),
                "exact_arl1": llr_chart_arl(P0, p1, h4, p1, res),
                "simulated_arl1": ev_out / al_out,
                "simulated_arl1_se": ev_out / al_out / math.sqrt(al_out),
            },
        }
    return out


def _lattice_renewal(job: tuple[int, int, int, int, float, int, int]) -> tuple[int, int]:
    seed, up, down, thr, p, streams, steps = job
    rng = np.random.default_rng([seed, 8, up, thr])
    s = np.zeros(streams, dtype=np.int64)
    alarms = 0
    for _ in range(steps):
        s = np.where(rng.random(streams) < p, s + up, np.maximum(s - down, 0))
        hit = s >= thr
        alarms += int(hit.sum())
        s[hit] = 0
    return streams * steps, alarms


def lattice_section(scale: Scale, seed: int, pool: Any) -> list[dict[str, Any]]:
    """DefectRateSpike's lattice charts at its 2% design rate, ARL0 = 1e4: exact vs simulated."""
    import detectors.defect_rate_spike as drs_module

    step = drs_module._GRID_STEP
    q = math.ceil(math.log(P0) / step)
    out = []
    for ratio in DefectRateSpike()._ratios:
        up, down, thr, _ = _chart(q, ratio, 1e4)
        p = math.exp(q * step)
        streams = 20  # few streams, each much longer than the ARL: the renewal estimate is then unbiased
        jobs = [(seed + k, up, down, thr, p, streams, scale.verify_events // (2 * streams)) for k in range(2)]
        sims = pool.map(_lattice_renewal, jobs)
        events, alarms = sum(e for e, _ in sims), sum(a for _, a in sims)
        out.append(
            {
                "ratio": ratio,
                "up": up,
                "down": down,
                "threshold_units": thr,
                "exact_arl0": lattice_arl(up, down, thr, p),
                "simulated_arl0": events / alarms,
                "simulated_arl0_se": events / alarms / math.sqrt(alarms),
            }
        )
    return out


def update_costs(events: int) -> dict[str, float]:
    """Mean microseconds per update, in this process, on an in-control 2% stream."""
    from river.drift import ADWIN, PageHinkley

    import detectors.defect_rate_spike as drs_module

    xs = (np.random.default_rng(3).random(events) < P0).tolist()
    ints = [int(v) for v in xs]

    def timed(det: Any, data: list[Any]) -> float:
        update = det.update
        t = time.perf_counter()
        for x in data:
            update(x)
        return (time.perf_counter() - t) / len(data) * 1e6

    out = {}
    drs_module._chart.cache_clear()
    out["DefectRateSpike, design cache cold"] = timed(DefectRateSpike(), xs)
    out["DefectRateSpike, design cache warm"] = timed(DefectRateSpike(), xs)
    out["BernoulliCUSUM"] = timed(BernoulliCUSUM(P0, 0.06, 9.47), xs)
    out["river ADWIN(clock=1)"] = timed(ADWIN(delta=0.05, clock=1, grace_period=WARMUP), ints)
    ph = PageHinkley(min_instances=WARMUP, delta=0.005, threshold=50, alpha=1, mode="up")
    out["river PageHinkley"] = timed(ph, ints)
    return out
