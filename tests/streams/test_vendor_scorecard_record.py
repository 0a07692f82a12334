"""The vendor scorecard is one aggregate, one changelog record: at every cap it must fit one."""

from __future__ import annotations

import random
import uuid

from detectors.label_tally import OTHER
from detectors.vendor_scorecard import MISSED_GOLD_KEPT, VendorScorecard
from streams.aggregate import Aggregate
from streams.state import MAX_WRITE_BYTES, encode_json
from streams.vendor_sla import VendorSla


def _scorecard_at_the_caps(
    per_hour: tuple[float, float], sigma: float, seed: int
) -> tuple[VendorScorecard, int]:
    """The default SLA file's scorecard (24 buckets of an hour) with ``max_vendors`` vendors of 2 annotators
    each (``max_annotators`` in all) labelling a full window and a bucket more, each at a rate drawn from
    ``per_hour``; each vendor's turnarounds lognormal (spread ``sigma``) about a median of its own, from 5
    minutes to 12 hours; judge comparisons on every label, consensus comparisons on a third, and gold items
    on a tenth (golden turns of 36-character ids, most with an item missed: each vendor's latest misses
    are kept)."""
    sla, rng = VendorSla(), random.Random(seed)
    card = sla.new_scorecard()
    medians = [300.0 * 144 ** rng.random() for _ in range(sla.max_vendors)]
    golden = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(500)]
    seconds, events = sla.window_seconds + sla.bucket_seconds, []
    for a in range(sla.max_annotators):
        vendor, rate = a % sla.max_vendors, rng.uniform(*per_hour) / 3600.0
        ts = rng.expovariate(rate)
        while ts < seconds:
            events.append(
                (1_793_577_600.0 + ts, f"vendor-{vendor:02d}", f"annotator-{a:03d}", medians[vendor])
            )
            ts += rng.expovariate(rate)
    events.sort()
    for ts, vendor, annotator, median in events:
        gold = (rng.randint(2, 4), 4) if rng.random() < 0.1 else (0, 0)
        consensus = (int(rng.random() < 0.85), 1) if rng.random() < 1 / 3 else (0, 0)
        judge = (rng.randint(0, 3), 3)
        turnaround = rng.lognormvariate(0, sigma) * median
        card.update(ts, vendor, annotator, turnaround, gold, judge, consensus, turn_id=rng.choice(golden))
    assert len(card.vendors) == sla.max_vendors and len(card._windows.bucket_starts) == 24
    assert sum(len(card.annotators(v)) for v in card.vendors) == sla.max_annotators
    return card, len(events)


def test_a_scorecard_at_every_cap_fits_a_changelog_record_with_room_to_spare():
    # Measured: 352,438 bytes (0.39 of MAX_WRITE_BYTES) at 1 to 10 labels an hour (11,562 labels); with
    # every annotator at 10 an hour and turnarounds spread wider (25,098 labels, each vendor's in 8 of the 13
    # bins of a bucket), 433,453 (0.48). With rows stored as dicts by field name (until 2026-11-26), 692,909
    # and 821,883 (0.91; 173 KB of it the vendors' ranges, 31 KB their missed golden turns).
    # With a range per bin on every row of every bucket (2026-11-26, before they were kept sparse and for
    # vendors only), 1,281,590 and 1,709,944: never written (convowatch_state_oversized_total), a restart
    # recovered an older scorecard. Without ranges, 583,571 and 648,531.
    card, labels = _scorecard_at_the_caps((1.0, 10.0), 1.0, seed=3)
    stored = len(encode_json(Aggregate(card, {"human_labels:0": [labels, 0]}).encode()))
    assert stored < 0.85 * MAX_WRITE_BYTES, stored
    card, labels = _scorecard_at_the_caps((10.0, 10.0), 1.5, seed=3)
    stored = len(encode_json(Aggregate(card, {"human_labels:0": [labels, 0]}).encode()))
    assert stored < MAX_WRITE_BYTES, stored


def test_a_scorecard_past_both_caps_with_long_ids_fits_a_changelog_record_with_room_to_spare():
    # The worst realistic case: 60 vendors (past max_vendors, so an 'other' vendor) of 200 annotators (past
    # max_annotators, so each vendor an 'other' annotator row in every bucket), ids 36-character UUIDs, each
    # annotator at 10 labels an hour with turnarounds spread wide, golden turn ids of 256 characters (the
    # contract's limit) and every vendor's missed-gold list full. Measured 667,877 bytes (0.74 of
    # MAX_WRITE_BYTES; 142 KB of it the missed golden turns); 1,247,157 (1.39) with rows stored as dicts by
    # field name (until 2026-11-26): never written, a restart recovered an older scorecard.
    sla, rng = VendorSla(), random.Random(3)
    card = sla.new_scorecard()
    vendors, annotators = sla.max_vendors + 10, 2 * sla.max_annotators
    medians = [300.0 * 144 ** rng.random() for _ in range(vendors)]
    vendor_ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(vendors)]
    annotator_ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(annotators)]
    golden = [str(uuid.UUID(int=rng.getrandbits(128))).ljust(256, "0") for _ in range(500)]
    seconds, events = sla.window_seconds + sla.bucket_seconds, []
    for a in range(annotators):
        ts = rng.expovariate(10.0 / 3600.0)
        while ts < seconds:
            events.append((1_793_577_600.0 + ts, a % vendors, a))
            ts += rng.expovariate(10.0 / 3600.0)
    events.sort()
    for ts, vendor, annotator in events:
        gold = (rng.randint(2, 4), 4) if rng.random() < 0.1 else (0, 0)
        consensus = (int(rng.random() < 0.85), 1) if rng.random() < 1 / 3 else (0, 0)
        turnaround = rng.lognormvariate(0, 1.5) * medians[vendor]
        card.update(
            ts, vendor_ids[vendor], annotator_ids[annotator], turnaround, gold, (rng.randint(0, 3), 3),
            consensus, turn_id=rng.choice(golden),
        )  # fmt: skip
    assert len(card._windows.bucket_starts) == 24 and OTHER in card.vendors
    assert sum(OTHER in card.annotators(v) for v in card.vendors) > 0.9 * sla.max_vendors
    assert all(len(card.missed_gold(v)) == MISSED_GOLD_KEPT for v in card.vendors if v != OTHER)
    stored = len(encode_json(Aggregate(card, {"human_labels:0": [len(events), 0]}).encode()))
    assert stored < 0.85 * MAX_WRITE_BYTES, stored
