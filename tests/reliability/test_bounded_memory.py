"""The join's state stays bounded: a short version of ``bench/soak.py`` (50,000 turns, 10% late labels).

Embedded, no broker: what is measured is the code the Kafka worker's join agent runs (parse + join, state
written in batches of 1,000), in this process, with the traffic generator in a child process.
"""

from __future__ import annotations

import pytest

from bench.soak import soak
from tests.reliability.harness import report

pytestmark = pytest.mark.reliability

TURNS = 50_000
RATE = 100.0  # turns per event-time second: 500 s of traffic


def test_capacity_bound_holds_and_memory_flattens() -> None:
    cap = 5_000
    result = soak("cap", TURNS, rate=RATE, ttl=7 * 86400, max_entries=cap, sample_every=10_000)
    assert result.turns == TURNS
    assert result.peak_pending <= cap and all(s.pending <= cap for s in result.samples)
    assert result.evicted_capacity + result.final_pending >= TURNS  # every turn was held, then evicted
    # Pending turns hit the cap after a tenth of the run; from then on the process stops growing with the
    # input: the RSS it adds over the second half is a small fraction of what 5,000 pending turns cost.
    half = next(s for s in result.samples if s.records >= result.records // 2)
    held_mb = cap * 2_700 / 1e6  # ~13.5 MB: 5,000 pending turns at the tracemalloc figure (bench/soak.py)
    second_half_growth = result.rss_end_mb - half.rss_mb
    assert second_half_growth < held_mb / 2, result.samples
    report(
        "bounded_memory_cap",
        {
            "turns": result.turns,
            "cap": cap,
            "peak_pending": result.peak_pending,
            "evicted_capacity": result.evicted_capacity,
            "rss_mb": [s.rss_mb for s in result.samples],
            "second_half_growth_mb": round(second_half_growth, 1),
        },
    )


def test_ttl_bound_holds() -> None:
    ttl = 60.0
    result = soak("ttl", TURNS, rate=RATE, ttl=ttl, max_entries=1_000_000, sample_every=10_000)
    assert result.ttl_violations == 0  # after an eviction pass, nothing older than the TTL is left
    assert result.evicted_ttl > 0 and result.evicted_capacity == 0
    # Without the TTL all 50,000 turns would be pending; with it, about a TTL's worth of turns (plus the
    # late labels' own entries, plus what arrives between two eviction passes of 5,000 records).
    assert result.peak_pending < 2 * RATE * ttl + 5_000 < TURNS
    report(
        "bounded_memory_ttl",
        {
            "turns": result.turns,
            "ttl": ttl,
            "peak_pending": result.peak_pending,
            "evicted": result.evicted_ttl,
        },
    )
