"""EventTimeWindows against a brute-force recomputation from the raw events."""

from __future__ import annotations

import json
import math
import random

import pytest

from detectors.agreement import AgreementTracker
from detectors.agreement_stats import AgreementStats
from detectors.calibration import BinaryCalibration
from detectors.ppi import PredictionPoweredRate
from detectors.windowed import EventTimeWindows, resolve_detector


def _events(
    seed: int, n: int = 3000, max_late: float = 900.0, late_share: float = 0.2
) -> list[tuple[float, str, str]]:
    """Events roughly every 4 s; a share of them arrive up to ``max_late`` seconds late; a few very late."""
    rng = random.Random(seed)
    events = []
    for i in range(n):
        ts = 1_700_000_000 + 4.0 * i + rng.uniform(0, 4)
        if rng.random() < late_share:
            ts -= rng.uniform(0, max_late)
        if rng.random() < 0.01:
            ts -= rng.uniform(3600, 20000)  # far too late for a one-hour window
        human = "fail" if rng.random() < 0.1 else "pass"
        judge = human if rng.random() < 0.85 else rng.choice(["pass", "fail"])
        events.append((ts, judge, human))
    return events


def _brute_force(events: list[tuple[float, str, str]], window: int, bucket: int):
    """Replay: keep an event iff its bucket is in the window when it arrives; then apply the final window."""
    watermark = -math.inf
    kept, too_late = [], 0
    for ts, judge, human in events:
        watermark = max(watermark, ts)
        oldest = math.floor(watermark / bucket) * bucket - window + bucket
        if math.floor(ts / bucket) * bucket < oldest:
            too_late += 1
        else:
            kept.append((ts, judge, human))
    oldest = math.floor(watermark / bucket) * bucket - window + bucket
    in_window = [(ts, j, h) for ts, j, h in kept if math.floor(ts / bucket) * bucket >= oldest]
    expected = AgreementStats()
    for _, j, h in in_window:
        expected.update(j, h)
    return expected, too_late, oldest


@pytest.mark.parametrize(("window", "bucket"), [(3600, 300), (86400, 3600), (600, 600), (3600, 60)])
@pytest.mark.parametrize("seed", range(4))
def test_window_equals_brute_force_at_every_checkpoint(window, bucket, seed):
    events = _events(seed)
    windows = EventTimeWindows("AgreementStats", window_seconds=window, bucket_seconds=bucket)
    for i, (ts, judge, human) in enumerate(events, start=1):
        assert windows.update(ts, judge, human) is windows
        if i in (1, 10, 500, 1234, len(events)):
            expected, too_late, oldest = _brute_force(events[:i], window, bucket)
            merged = windows.window()
            assert isinstance(merged, AgreementStats)
            assert merged.confusion == expected.confusion and merged.n == expected.n
            for key, value in expected.summary().items():
                assert merged.summary()[key] == pytest.approx(value, abs=1e-12, nan_ok=True), key
            assert windows.too_late == too_late and windows.n == i - too_late
            assert windows.window_start == oldest and windows.window_end == oldest + window
            assert all(oldest <= s < oldest + window for s in windows.bucket_starts)
            assert len(windows.bucket_starts) <= window // bucket
    # the stream exercises both paths: late events kept in their own bucket, and events dropped as too late
    late, seen = 0, -math.inf
    for ts, _, _ in events:
        late += ts < seen
        seen = max(seen, ts)
    assert late > windows.too_late > 0 or window == 86400


def test_late_event_updates_its_own_bucket():
    windows = EventTimeWindows("AgreementStats", window_seconds=3600, bucket_seconds=300)
    windows.update(10_000.0, "pass", "pass")  # bucket 9900
    windows.update(11_800.0, "fail", "fail")  # bucket 11700, watermark 11800
    windows.update(10_100.0, "fail", "pass")  # late, bucket 9900, still inside the hour
    early = windows.bucket(9900)
    assert early is not None and early.confusion == {"pass": {"pass": 1}, "fail": {"pass": 1}}
    assert windows.bucket(11700).confusion == {"fail": {"fail": 1}}
    assert windows.watermark == 11_800.0 and windows.too_late == 0
    assert windows.window().n == 3
    # the copy from bucket() is detached from the ring
    early.update("pass", "pass")
    assert windows.bucket(9900).n == 2


def test_events_older_than_the_window_are_counted_not_kept():
    windows = EventTimeWindows("AgreementStats", window_seconds=3600, bucket_seconds=300)
    windows.update(100_000.0, "pass", "pass")  # bucket 99900; window starts at 96600
    windows.update(96_600.0, "fail", "fail")  # oldest bucket of the window: kept
    windows.update(96_599.9, "fail", "fail")  # one bucket older: too late
    assert windows.too_late == 1 and windows.n == 2 and windows.bucket_starts == [96600, 99900]


def test_expiry_beyond_the_horizon():
    windows = EventTimeWindows("AgreementStats", window_seconds=3600, bucket_seconds=300)
    for minute in range(120):
        windows.update(60.0 * minute, "pass", "pass")
    assert windows.bucket_starts == list(range(3600, 7200, 300))
    assert windows.window().n == 60
    windows.advance(7200.0 + 1800.0)  # half an hour of silence: half the buckets expire
    assert windows.bucket_starts == list(range(5700, 7200, 300))
    assert windows.window().n == 25
    windows.advance(100_000.0)
    assert windows.bucket_starts == [] and windows.window().n == 0
    windows.advance(50.0)  # the watermark never goes back
    assert windows.watermark == 100_000.0


def test_generic_over_mergeable_detectors():
    rng = random.Random(4)
    ppi_windows = EventTimeWindows(
        "PredictionPoweredRate", params={"lam": 1.0}, window_seconds=600, bucket_seconds=60
    )
    cal_windows = EventTimeWindows(
        "detectors.calibration.BinaryCalibration", params={"n_bins": 5}, window_seconds=600, bucket_seconds=60
    )
    ppi_expected, cal_expected = PredictionPoweredRate(lam=1.0), BinaryCalibration(n_bins=5)
    for i in range(2000):
        ts = float(i)
        y = rng.random() < 0.1
        f = rng.random() < (0.8 if y else 0.05)
        labelled = rng.random() < 0.2
        confidence = rng.random()
        if labelled:
            ppi_windows.update(ts, f, y)
            cal_windows.update(ts, f, y, confidence)
        else:
            ppi_windows.update(ts, f)
        if ts >= 1440:  # watermark 1999 is in bucket 1980; ten one-minute buckets start at 1440
            if labelled:
                ppi_expected.update(f, y)
                cal_expected.update(f, y, confidence)
            else:
                ppi_expected.update(f)
    ppi = ppi_windows.window()
    assert isinstance(ppi, PredictionPoweredRate) and ppi.lam == 1.0
    assert (ppi.n_judged, ppi.n_labelled) == (ppi_expected.n_judged, ppi_expected.n_labelled)
    assert ppi.estimate == pytest.approx(ppi_expected.estimate, abs=1e-12)
    cal = cal_windows.window()
    assert isinstance(cal, BinaryCalibration) and cal.n_bins == 5
    assert cal.counts == cal_expected.counts and cal.ece == pytest.approx(cal_expected.ece, abs=1e-12)


def test_json_round_trip_mid_stream():
    events = _events(1, n=800)
    windows = EventTimeWindows("AgreementStats", params={"categories": ["pass", "fail"]})
    for ts, j, h in events[:400]:
        windows.update(ts, j, h)
    restored = EventTimeWindows.from_dict(json.loads(json.dumps(windows.to_dict(), allow_nan=False)))
    for ts, j, h in events[400:]:
        windows.update(ts, j, h)
        restored.update(ts, j, h)
    assert restored.to_dict() == windows.to_dict()
    assert restored.window().summary() == windows.window().summary()


def test_bad_parameters():
    for kwargs in [
        {"window_seconds": 3600, "bucket_seconds": 7},
        {"window_seconds": 0},
        {"bucket_seconds": -5},
        {"window_seconds": 3600.0},
        {"bucket_seconds": True},
        {"params": ["x"]},
        {"detector": "NoSuchDetector"},
        {"detector": "AgreementTracker"},  # no merge()
        {"detector": "json.dumps"},
        {"detector": "AgreementStats", "params": {"confidence_level": 2}},
    ]:
        with pytest.raises(ValueError):
            EventTimeWindows(**kwargs)
    windows = EventTimeWindows(params={"categories": ["pass", "fail"]})
    for ts in (math.nan, math.inf, "12", None, True):
        with pytest.raises(ValueError):
            windows.update(ts, "pass", "pass")
    windows.update(1000.0, "pass", "fail")
    before = windows.to_dict()
    with pytest.raises(ValueError):  # rejected by the inner detector: neither the ring nor the watermark move
        windows.update(5000.0, "pass", "maybe")
    assert windows.to_dict() == before


def test_resolve_detector():
    assert resolve_detector("AgreementStats") is AgreementStats
    assert resolve_detector("detectors.ppi.PredictionPoweredRate") is PredictionPoweredRate
    with pytest.raises(ValueError, match="merge"):
        resolve_detector("AgreementTracker")
    assert not hasattr(AgreementTracker, "merge")
