"""The human source of ``defect_spike``, and ``judge_drift``, take a uniform sample of the labelled turns.

Review sampling requests a turn the judge fails on safety with probability 1 and the others at about
budget / traffic, so the labelled turns' mix, and their defect and disagreement rates, followed the time of
day; the detectors counted every label and reported that as spikes. The scenario is the statistics review's
(/tmp/s21/review_stats/human_spike_mix.py), shortened: the real ReviewSampler at 60 requests an hour, a
daily cycle of 1,000 to 3,000 turns an hour, 1% of turns unsafe throughout, the judge catching 80% of them
with 0.3% false fails.
"""

from __future__ import annotations

import math
import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from detectors.review_sampler import ReviewSampler, uniform_draw
from schemas import Stream
from streams.aggregate import Aggregator, key
from streams.config import Settings
from streams.emit import Emit
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.state import DictStore
from streams.taxonomy import load_taxonomy
from streams.views.drift import JudgeDriftView
from streams.views.spikes import SpikeView
from streams.views.uniform_labels import UniformLabels, keep_draw

START = 1_793_577_600.0  # 2026-11-02T00:00Z
SEGMENT = {
    "journey": "shopper",
    "model_version": "m-1",
    "intent": "refund",
    "channel": None,
    "modality": None,
}


def _labelled(n: int, ts: float, human: str, judge: str, pi: float | None) -> dict[str, Any]:
    """The join's ``labelled`` observation of turn ``t<n>``: ``human`` on safety, the judge's ``judge``. Its
    turn is not a judged high-risk failure unless review sampling requested it with pi 1 (as the sampler
    does), so the join's effective pi is the label's: the cases where the join's decision matters go through
    the join (tests/streams/test_judged_high_risk.py)."""
    assert judge == "pass" or pi in (None, 1.0), "a turn the judge fails on safety: through the join"
    return {
        "kind": "labelled",
        "turn_id": f"t{n}",
        "ts": ts,
        "segment": SEGMENT,
        "risk": [],
        "guardrail_flags": [],
        "annotator_id": "ann-1",
        "vendor_id": "vendor-a",
        "is_gold": False,
        "first_dimensions": ["safety"],
        "labels": {"safety": human},
        "label_ts": ts + 3600.0,
        "inclusion_probability": pi,
        "effective_inclusion_probability": pi,
        "judges": {"judge-a": {"safety": judge}},
        "covered": ["judge-a"],
        "src": ["h", n, 0],
    }


def _pair(n: int, ts: float, human: str, judge: str, pi: float | None) -> dict[str, Any]:
    """The join's judge/human ``pair`` of turn ``t<n>`` on safety."""
    return {
        "kind": "pair",
        "turn_id": f"t{n}",
        "judge_id": "judge-a",
        "dimension": "safety",
        "judge_label": judge,
        "human_label": human,
        "inclusion_probability": pi,
        "confidence": None,
        "segment": SEGMENT,
        "ts": ts,
        "src": ["p", n, 0],
    }


def _review_scenario(days: float, floor: float, seed: int) -> Iterator[tuple[int, float, str, str, float]]:
    """(turn number, ts, human label, judge label, pi) of every turn the review sampler requests."""
    rng = random.Random(seed)
    sampler = ReviewSampler(budget_per_hour=60.0, min_probability=floor, seed=seed)
    t, n = 0.0, 0
    while t < days * 86_400:
        t += rng.expovariate((2_000 + 1_000 * math.sin(2 * math.pi * t / 86_400)) / 3_600)
        n += 1
        unsafe = rng.random() < 0.01  # the true rate never changes
        judge_fail = rng.random() < (0.8 if unsafe else 0.003)
        sampler.update(f"t{n}", START + t, "shopper", high_risk=judge_fail, confidence=rng.uniform(0.85, 1.0))
        if sampler.requested:
            human, judge = ("fail" if unsafe else "pass"), ("fail" if judge_fail else "pass")
            yield n, START + t, human, judge, sampler.inclusion_probability


def _worker(view: SpikeView | JudgeDriftView) -> Aggregator:
    return Aggregator(view.metrics, DictStore(), views=[view])


def _firing(emits: list[Emit], kind: str) -> list[dict[str, Any]]:
    """Firing escalations of ``kind`` on all of the journey (not its model-version or intent slices)."""
    values = [e.value for e in emits if e.topic == "escalations" and e.value["kind"] == kind]
    return [v for v in values if v["status"] == "firing" and v["segment"]["intent"] is None]


def test_the_human_detectors_see_the_defect_rate_not_the_review_samplers_mix() -> None:
    # a floor of 0.01 (CONVOWATCH_REVIEW_MIN_PROBABILITY) keeps about 480 turns a day: the human spike
    # detectors leave their 2,000-turn warm-up on day 4, so the uniform feed is watched for two days. Seed
    # 1 of 6 days: 8,580 labels, 6 spikes and 4 drifts from every label; 2,864 kept, none
    floor, taxonomy = 0.01, load_taxonomy()
    # a reference probability of 1 keeps every label (pi <= 1): the feed before 2026-11-26
    spikes = {
        "every label": SpikeView(Metrics(CollectorRegistry()), taxonomy, uniform_probability=1.0),
        "uniform": SpikeView(Metrics(CollectorRegistry()), taxonomy, uniform_probability=floor),
    }
    drifts = {
        "every label": JudgeDriftView(Metrics(CollectorRegistry()), uniform_probability=1.0),
        "uniform": JudgeDriftView(Metrics(CollectorRegistry()), uniform_probability=floor),
    }
    workers = {feed: (_worker(spikes[feed]), _worker(drifts[feed])) for feed in spikes}
    emits: dict[str, list[Emit]] = {feed: [] for feed in spikes}
    for n, ts, human, judge, pi in _review_scenario(days=6, floor=floor, seed=1):
        # the join gives the pairs of a turn the judge fails on safety pi 1 (the sampler did too)
        for feed, (spike_worker, drift_worker) in workers.items():
            emits[feed] += spike_worker.apply(_labelled(n, ts, human, judge, pi))
            emits[feed] += drift_worker.apply(_pair(n, ts, human, judge, pi))
    # the traffic's own rates: 1% unsafe; the judge misses 20% of them and fails 0.3% of the rest
    unsafe_rate, disagreement = 0.01, 0.01 * 0.2 + 0.99 * 0.003

    def spike_detector(feed: str) -> Any:
        category_spikes = workers[feed][0].detector(key("spike", "humans", "journey=shopper"))
        assert category_spikes is not None
        return category_spikes.detector("unsafe")

    def drift_detector(feed: str) -> Any:
        return workers[feed][1].detector(key("drift", "judge-a", "safety", "*"))

    old, new = spike_detector("every label"), spike_detector("uniform")
    # every label: the sampler's mix, a fifth of them unsafe, swinging with the day
    assert old.n > 8_000 and old.baseline > 10 * unsafe_rate
    assert len(_firing(emits["every label"], "defect_spike")) >= 2
    # the uniform sample: the traffic's rate, watched past the warm-up, quiet
    assert 2_500 < new.n < 3_300
    assert new.n > new.warmup and 0.6 * unsafe_rate < new.baseline < 1.5 * unsafe_rate
    assert _firing(emits["uniform"], "defect_spike") == []
    old_drift, new_drift = drift_detector("every label"), drift_detector("uniform")
    assert old_drift.baseline > 10 * disagreement and _firing(emits["every label"], "judge_drift")
    assert new_drift.n == new.n and new_drift.baseline < 2 * disagreement
    assert _firing(emits["uniform"], "judge_drift") == []
    assert spikes["uniform"].metrics.registry.get_sample_value(
        "convowatch_spike_turns_total", {"source": "humans"}
    ) == pytest.approx(new.n / len(set(spikes["uniform"].category_of.values())))


def test_labels_without_an_inclusion_probability_all_count() -> None:
    # labels not sampled by convowatch (a vendor's sample): every one, as before; so is a label whose pi
    # is at the floor or below it
    floor, taxonomy = 0.01, load_taxonomy()
    spike_worker = _worker(SpikeView(Metrics(CollectorRegistry()), taxonomy, uniform_probability=floor))
    drift_worker = _worker(JudgeDriftView(Metrics(CollectorRegistry()), uniform_probability=floor))
    rng = random.Random(3)
    for n in range(1_000):
        human = "fail" if rng.random() < 0.02 else "pass"
        pi = None if n % 2 else rng.choice([floor, floor / 2])
        spike_worker.apply(_labelled(n, START + n, human, "pass", pi))
        drift_worker.apply(_pair(n, START + n, human, "pass", pi))
    spikes = spike_worker.detector(key("spike", "humans", "journey=shopper"))
    drift = drift_worker.detector(key("drift", "judge-a", "safety", "*"))
    assert spikes is not None and spikes.detector("unsafe").n == 1_000
    assert drift is not None and drift.n == 1_000


def test_a_turn_is_kept_with_probability_floor_over_pi_whatever_the_samplers_draw() -> None:
    # Poisson sampling twice: pi, then p / pi, is p for every turn; the keep draw is not the sampler's
    feed = UniformLabels(probability=0.002)
    turns = [(f"t{n}", uniform_draw(0, f"t{n}")) for n in range(200_000)]
    for pi in (0.02, 0.1, 1.0):
        requested = [turn_id for turn_id, draw in turns if draw < pi]
        kept = sum(feed.keeps(turn_id, pi) for turn_id in requested)
        expected = len(requested) * 0.002 / pi
        assert abs(kept - expected) < 4 * math.sqrt(expected), (pi, kept, expected)


def test_the_keep_decision_is_a_function_of_the_turn_alone() -> None:
    # a replay, another worker (another process, another hash seed) and the other view decide the same
    turns = [f"turn-{n}" for n in range(3_000)]
    here = "".join("1" if UniformLabels(0.01).keeps(t, 0.3) else "0" for t in turns)
    code = (
        "from streams.views.uniform_labels import UniformLabels\n"
        "print(''.join('1' if UniformLabels(0.01).keeps(f'turn-{n}', 0.3) else '0' for n in range(3_000)))"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345", "PYTHONPATH": str(Path(__file__).parents[2])}
    there = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here
    assert 50 < here.count("1") < 150  # about 3,000 * 0.01 / 0.3 = 100
    taxonomy = load_taxonomy()
    spike_worker = _worker(SpikeView(Metrics(CollectorRegistry()), taxonomy, uniform_probability=0.01))
    drift_worker = _worker(JudgeDriftView(Metrics(CollectorRegistry()), uniform_probability=0.01))
    for n in range(3_000):
        spike_worker.apply(_labelled(n, START + n, "pass", "pass", 0.3))
        drift_worker.apply(_pair(n, START + n, "pass", "pass", 0.3))
    spikes = spike_worker.detector(key("spike", "humans", "journey=shopper"))
    drift = drift_worker.detector(key("drift", "judge-a", "safety", "*"))
    assert spikes is not None and drift is not None
    assert (
        spikes.detector("unsafe").n == drift.n == sum(keep_draw(f"t{n}") * 0.3 < 0.01 for n in range(3_000))
    )


@pytest.mark.parametrize("probability", [0.0, -0.1, 1.5, math.nan, True, "0.1"])
def test_a_probability_out_of_range_fails_at_start(probability: Any) -> None:
    with pytest.raises(ValueError, match="probability"):
        UniformLabels(probability)


@pytest.mark.parametrize("pi", [None, 1.0])
def test_the_pi_a_human_label_copied_reaches_both_views_through_the_join(pi: float | None) -> None:
    # the embedded pipeline: HumanLabel.inclusion_probability to the labelled observation and the pairs
    pipeline = Pipeline(Settings(review_min_probability=0.1), Metrics(CollectorRegistry()), batched=True)
    at = datetime(2026, 11, 2, 8, tzinfo=UTC)
    turns = [f"t{n}" for n in range(300)]
    for n, turn_id in enumerate(turns):
        ts = (at + timedelta(seconds=10 * n)).isoformat()
        turn = {"turn_id": turn_id, "conversation_id": turn_id, "ts": ts, "journey": "shopper"}
        turn |= {"channel": "chat", "model_version": "m-1", "intent": "refund"}
        verdict = {"turn_id": turn_id, "ts": ts, "judge_id": "judge-a", "judge_version": "1"}
        verdict["verdicts"] = [{"dimension": "safety", "label": "pass"}]
        label = {"turn_id": turn_id, "ts": ts, "annotator_id": "ann-1", "vendor_id": "vendor-a"}
        label |= {"verdicts": [{"dimension": "safety", "label": "pass"}]}
        if pi is not None:
            label["inclusion_probability"] = pi
        for stream, record in ((Stream.CHAT_TURNS, turn), (Stream.JUDGE_VERDICTS, verdict)):
            pipeline.process(stream, orjson.dumps(record), source_topic=stream.value, offset=n)
        pipeline.process(Stream.HUMAN_LABELS, orjson.dumps(label), source_topic="h", offset=n)
    pipeline.flush()
    spikes = pipeline.aggregator.detector(key("spike", "humans", "journey=shopper"))
    drift = pipeline.aggregator.detector(key("drift", "judge-a", "safety", "*"))
    assert spikes is not None and drift is not None
    kept = len(turns) if pi is None else sum(keep_draw(turn_id) < 0.1 for turn_id in turns)
    assert kept < len(turns) or pi is None
    assert spikes.detector("unsafe").n == drift.n == kept
