"""TrafficWatch on traffic whose baseline has no spread."""

from __future__ import annotations

from detectors.traffic_watch import TrafficWatch


def feed(watch: TrafficWatch, per_minute: list[int], start: float = 0.0) -> list[str]:
    """Turns spread evenly over each minute (latency 800 ms); the volume events seen."""
    events = []
    for minute, count in enumerate(per_minute):
        for i in range(count):
            watch.update(start + minute * 60 + i * 60 / count, 800.0)
            if watch.volume_event:
                events.append(watch.volume_event)
    return events


def test_a_flat_warm_up_does_not_make_the_next_wobble_a_surge() -> None:
    # 30 identical minutes leave no spread: the next 11-turn minute was 10^8 deviations off, a "surge"
    watch = TrafficWatch()
    assert feed(watch, [10] * 40 + [11, 9, 11, 10, 10, 12, 9, 10] * 3 + [10]) == []


def test_a_real_surge_after_a_flat_warm_up_still_alarms() -> None:
    watch = TrafficWatch()
    assert "up" in feed(watch, [10] * 40 + [40] * 15 + [10])
