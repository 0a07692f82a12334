"""The detection benchmark's own machinery: the vectorised oracle and the paired statistics."""

from __future__ import annotations

import numpy as np
import pytest

from bench.detection_methods import first_alarm, oracle_job
from bench.detection_streams import COLD, P0, SHIFTS, WARMUP, change_stream, delay_summary, paired
from detectors.arl import llr_threshold_for_arl
from detectors.bernoulli_cusum import BernoulliCUSUM


def test_vectorised_oracle_alarms_exactly_where_bernoulli_cusum_does():
    # low thresholds (ARL0 = 2,000) so that charts alarm and restart before the change too
    thresholds = {p1: llr_threshold_for_arl(P0, p1, 2_000, 4) for p1 in SHIFTS}
    streams = list(range(12))
    rows = oracle_job((5, COLD, streams, 3_000, thresholds))
    for s, per_shift in zip(streams, rows, strict=True):
        for (tau, alarm, _), p1 in zip(per_shift, SHIFTS, strict=True):
            tau_ref, x = change_stream(5, COLD, s, p1, 3_000)
            assert tau == tau_ref
            assert alarm == first_alarm(BernoulliCUSUM(P0, p1, thresholds[p1]), x.tolist(), start=WARMUP)
    assert any(alarm < tau for per_shift in rows for tau, alarm, _ in per_shift)  # restarts were exercised


def test_delay_summary_leaves_out_false_alarms_and_bounds_undetected_streams():
    rows = [(100, 149, -1), (100, 50, -1), (100, -1, -1), (100, 299, 90)]  # delay 50, FA, undetected, 200
    summary = delay_summary(rows, horizon=1_000, oracle=100.0)
    assert summary["false_alarm_before_change"] == 1 and summary["undetected_within_horizon"] == 1
    assert summary["mean"] == pytest.approx((50 + 1_000 + 200) / 3)
    assert summary["ratio"] == pytest.approx(summary["mean"] / 100.0)
    assert summary["onset_error_median"] == -10


def test_paired_comparison_sees_a_small_consistent_gain_that_unpaired_means_would_miss():
    rng = np.random.default_rng(3)
    base = rng.exponential(1_000.0, 500)
    faster = base * 0.97  # the same streams, 3% faster on each
    c = paired(faster, base)
    assert c["streams"] == 500
    assert c["ratio"] == pytest.approx(0.97)
    assert c["ratio_ci95"][0] == pytest.approx(0.97) and c["ratio_ci95"][1] == pytest.approx(0.97)
    assert c["difference_ci95"][1] < 0
    with_nan = faster.copy()
    with_nan[0] = np.nan  # a false alarm before the change: the stream drops out of both
    assert paired(with_nan, base)["streams"] == 499
