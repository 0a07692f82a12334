"""Every public detector honours the Detector contract (clone, pickle, JSON state, update returns self)."""

from __future__ import annotations

import inspect
import json
import math
import pickle
import random
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import detectors
import detectors.agreement_breakdown  # composites not exported by the package: discover them too
import detectors.calibrated_comparison
import detectors.keyed
import detectors.rater_panel
import detectors.sla_status
import detectors.vendor_scorecard
from detectors import Detector, StateError

Args = tuple[Any, ...]


def _agreement_inputs(rng: random.Random) -> Iterator[Args]:
    labels = ["pass", "fail", "unsure"]
    for _ in range(300):
        human = rng.choice(labels)
        judge = human if rng.random() < 0.7 else rng.choice(labels)
        yield (judge, human)


#: Class name -> a seeded stream of ``update`` argument tuples. Every public detector MUST have an entry.
INPUTS: dict[str, Callable[[random.Random], Iterator[Args]]] = {
    "AgreementTracker": _agreement_inputs,
}


def _all_subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found.add(sub)
        found |= _all_subclasses(sub)
    return found


def discover() -> list[type[Detector]]:
    exported = {getattr(detectors, name) for name in detectors.__all__}
    public = {c for c in exported if isinstance(c, type) and issubclass(c, Detector) and c is not Detector}
    public |= {
        c
        for c in _all_subclasses(Detector)
        if c.__module__.split(".")[0] == "detectors"
        and not c.__name__.startswith("_")
        and not inspect.isabstract(c)
    }
    return sorted(public, key=lambda c: c.__name__)


DETECTORS = discover()


def _inputs(cls: type[Detector], seed: int = 1234) -> list[Args]:
    return list(INPUTS[cls.__name__](random.Random(seed)))


def _feed(detector: Detector, args_list: list[Args]) -> Detector:
    for args in args_list:
        result = detector.update(*args)
        assert result is detector
    return detector


def _same(x: Any, y: Any) -> bool:
    """Equality where NaN equals NaN (undefined figures must stay undefined)."""
    if isinstance(x, float) and isinstance(y, float):
        return (math.isnan(x) and math.isnan(y)) or x == y
    if isinstance(x, dict) and isinstance(y, dict):
        return x.keys() == y.keys() and all(_same(x[k], y[k]) for k in x)
    if isinstance(x, list | tuple) and isinstance(y, list | tuple):
        return len(x) == len(y) and all(_same(a, b) for a, b in zip(x, y, strict=True))
    return type(x) is type(y) and x == y


def observe(detector: Detector) -> dict[str, Any]:
    """Everything a user can see: public properties and the serialised state."""
    props = {
        name: getattr(detector, name)
        for name, member in inspect.getmembers(type(detector))
        if isinstance(member, property) and not name.startswith("_")
    }
    return {"properties": props, "dict": detector.to_dict()}


#: Constructor arguments for detectors whose defaults are not enough (class name -> kwargs).
PARAMS: dict[str, dict[str, Any]] = {}


def _default(cls: type[Detector]) -> Detector:
    return cls(**PARAMS.get(cls.__name__, {}))


def test_detectors_are_discovered():
    names = {c.__name__ for c in DETECTORS}
    assert "AgreementTracker" in names
    assert Detector not in DETECTORS


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
def test_every_detector_has_an_input_stream_registered(cls):
    assert cls.__name__ in INPUTS, (
        f"{cls.__name__} has no entry in INPUTS of {__file__}: add a seeded update-argument stream for it"
    )
    assert len(_inputs(cls)) >= 50


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
def test_constructor_arguments_are_public_attributes(cls):
    detector = _default(cls)
    for name in inspect.signature(cls.__init__).parameters:
        if name != "self":
            assert hasattr(detector, name) and not name.startswith("_")
    assert set(detector._get_params()) == {
        p for p in inspect.signature(cls.__init__).parameters if p != "self"
    }


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
def test_update_returns_self_and_changes_state(cls):
    detector = _default(cls)
    fresh = observe(_default(cls))
    args = _inputs(cls)
    assert detector.update(*args[0]) is detector
    _feed(detector, args[1:])
    assert not _same(observe(detector), fresh)


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
def test_clone_has_same_params_and_fresh_state(cls):
    detector = _feed(_default(cls), _inputs(cls))
    clone = detector.clone()
    assert type(clone) is cls and clone is not detector
    assert _same(clone._get_params(), detector._get_params())
    assert _same(observe(clone), observe(cls(**detector._get_params())))
    assert not _same(observe(clone), observe(detector))
    # the clone is independent: feeding it does not touch the original
    before = observe(detector)
    _feed(clone, _inputs(cls, seed=99))
    assert _same(observe(detector), before)


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
def test_pickle_round_trip(cls):
    args = _inputs(cls)
    half = len(args) // 2
    detector = _feed(_default(cls), args[:half])
    restored = pickle.loads(pickle.dumps(detector))
    assert _same(observe(restored), observe(detector))
    _feed(detector, args[half:])
    _feed(restored, args[half:])
    assert _same(observe(restored), observe(detector))


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("split", [0, 1, 37, 150])
def test_json_round_trip_behaves_identically(cls, split):
    args = _inputs(cls, seed=split + 7)
    detector = _feed(_default(cls), args[:split])
    data = detector.to_dict()
    text = json.dumps(data, allow_nan=False)  # JSON-native: no NaN, tuples, non-string keys, objects
    loaded = json.loads(text)
    assert loaded == data
    restored = cls.from_dict(loaded)
    assert type(restored) is cls
    assert _same(observe(restored), observe(detector))
    # the restored state is not shared with the original
    _feed(detector, args[split:])
    assert split == len(args) or not _same(observe(restored), observe(detector))
    _feed(restored, args[split:])
    assert _same(observe(restored), observe(detector))
    # and can round-trip again
    again = cls.from_dict(json.loads(json.dumps(restored.to_dict())))
    assert _same(observe(again), observe(detector))


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
def test_from_dict_with_the_wrong_type_raises_state_error(cls):
    data = _feed(_default(cls), _inputs(cls)[:10]).to_dict()
    for wrong in ("NotADetector", "Detector", cls.__name__.lower(), None):
        with pytest.raises(StateError):
            cls.from_dict({**data, "type": wrong})
    without_type = {k: v for k, v in data.items() if k != "type"}
    with pytest.raises(StateError):
        cls.from_dict(without_type)
    # another detector's state is refused too
    for other in DETECTORS:
        if other is not cls:
            with pytest.raises(StateError):
                cls.from_dict(_default(other).to_dict())


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
def test_from_dict_with_unknown_state_fields_raises_state_error(cls):
    data = _default(cls).to_dict()
    data["state"] = {**data["state"], "_from_a_future_version": 1}
    with pytest.raises(StateError):
        cls.from_dict(data)


@pytest.mark.parametrize("cls", DETECTORS, ids=lambda c: c.__name__)
def test_state_is_private_and_reset_restores_it(cls):
    detector = _feed(_default(cls), _inputs(cls))
    state = detector.to_dict()["state"]
    assert state and all(k.startswith("_") for k in state)
    detector._reset()
    assert _same(observe(detector), observe(_default(cls)))


# -- agreement with intervals, multi-rater, calibration, prediction-powered rate, event-time windows


def _multi_rater_items(rng: random.Random) -> Iterator[Args]:
    for _ in range(300):
        truth = rng.choice(["pass", "fail", "unsure"])
        raters = rng.choice([2, 3, 4])
        yield ([truth if rng.random() < 0.7 else rng.choice(["pass", "fail"]) for _ in range(raters)],)


def _rater_items(rng: random.Random) -> Iterator[Args]:
    for _ in range(300):
        truth = rng.choice(["pass", "fail"])
        raters = rng.sample(["ann", "bob", "cy", "dee"], rng.choice([2, 3, 4]))
        yield ({r: truth if rng.random() < 0.8 else rng.choice(["pass", "fail", "unsure"]) for r in raters},)


def _binary_calibration_inputs(rng: random.Random) -> Iterator[Args]:
    for _ in range(300):
        human = rng.random() < 0.2
        judge = rng.random() < (0.8 if human else 0.1)
        yield (judge, human, None if rng.random() < 0.2 else rng.random())


def _class_accuracy_inputs(rng: random.Random) -> Iterator[Args]:
    intents = ["balance", "refund", "cancel"]
    for _ in range(300):
        truth = rng.choice(intents)
        confidence = rng.random()
        yield (truth if rng.random() < confidence else rng.choice(intents), truth, confidence)


def _ppi_inputs(rng: random.Random) -> Iterator[Args]:
    for _ in range(300):
        y = rng.random() < 0.1
        f = rng.random() < (0.8 if y else 0.05)
        yield (f, y) if rng.random() < 0.3 else (f,)


def _windowed_inputs(rng: random.Random) -> Iterator[Args]:
    ts = 1_700_000_000.0
    for judge, human in _agreement_inputs(rng):  # 300 events over ~3 h: buckets expire, some events are late
        ts += rng.uniform(0, 70)
        yield (ts - (rng.uniform(0, 4000) if rng.random() < 0.1 else 0.0), judge, human)


INPUTS.update(
    {
        "AgreementStats": _agreement_inputs,
        "InterAnnotatorAgreement": _multi_rater_items,
        "RaterVsConsensus": _rater_items,
        "BinaryCalibration": _binary_calibration_inputs,
        "ClassAccuracy": _class_accuracy_inputs,
        "PredictionPoweredRate": _ppi_inputs,
        "EventTimeWindows": _windowed_inputs,
    }
)


# Traffic and category-spike composites.
def _traffic_inputs(rng: random.Random) -> Iterator[Args]:
    ts = 0.0
    for _ in range(3_000):
        ts += rng.expovariate(1.0)
        yield (ts, rng.lognormvariate(6.0, 0.4) if rng.random() < 0.9 else None)


def _category_spike_inputs(rng: random.Random) -> Iterator[Args]:
    arrival = 0.0
    for i in range(3_000):
        failed = [c for c, p in (("unsafe", 0.03), ("irrelevant", 0.05)) if rng.random() < p]
        arrival += rng.expovariate(1 / 60)
        yield (["unsafe", "irrelevant"], failed, f"t{i}", arrival - rng.random() * 30, arrival)


INPUTS.update({"TrafficWatch": _traffic_inputs, "CategorySpikes": _category_spike_inputs})


# Divergence composites (streams/views/agreement.py, raters.py, ppi.py, gold.py, live_model.py).


def _keyed_inputs(rng: random.Random) -> Iterator[Args]:
    for judge, human in _agreement_inputs(rng):
        yield (rng.choice(["safety", "relevance", "bias"]), judge, human)


def _breakdown_inputs(rng: random.Random) -> Iterator[Args]:
    ts = 1_700_000_000.0
    for judge, human in _agreement_inputs(rng):  # ~3 h: hour buckets expire, some labels are late
        ts += rng.uniform(0, 70)
        late = rng.uniform(0, 4000) if rng.random() < 0.1 else 0.0
        segment = {
            "journey": rng.choice(["shopper", "driver_support", None]),
            "intent": f"i{rng.randrange(60)}",
        }
        yield (ts - late, segment if rng.random() < 0.95 else None, judge, human)


def _panel_inputs(rng: random.Random) -> Iterator[Args]:
    for (ratings,) in _rater_items(rng):
        vendors = {r: "v1" if r in ("ann", "bob") else "v2" for r in ratings}
        yield (ratings, vendors, {"judge-a": rng.choice(["pass", "fail"])})


INPUTS.update(
    {"KeyedDetectors": _keyed_inputs, "AgreementBreakdown": _breakdown_inputs, "RaterPanel": _panel_inputs}
)


# Model-version comparison (detectors/msprt.py).
def _msprt_inputs(rng: random.Random) -> Iterator[Args]:
    for _ in range(600):
        arm = "treatment" if rng.random() < 0.5 else "control"
        yield (arm, rng.random() < (0.2 if arm == "treatment" else 0.05))


def _version_inputs(rng: random.Random) -> Iterator[Args]:
    ts = 1_700_000_000.0
    for i in range(900):  # v2 joins v1 after 100 turns, v3 after 400, v1 goes quiet after 600
        ts += rng.uniform(0, 20 if i < 600 else 80)
        versions = ["v1"] * (i < 600) + ["v2"] * (i >= 100) + ["v3"] * (i >= 400)
        version = rng.choice(versions)
        yield (version, rng.random() < (0.25 if version == "v2" else 0.05), ts)


INPUTS.update({"MixtureSPRT": _msprt_inputs, "VersionComparison": _version_inputs})


# Human-calibrated version comparison (detectors/calibrated_comparison.py).
def _calibrated_inputs(rng: random.Random) -> Iterator[Args]:
    for _ in range(2_000):  # enough labels per arm to pass min_labels and test
        arm = "treatment" if rng.random() < 0.5 else "control"
        y = rng.random() < (0.3 if arm == "treatment" else 0.05)
        f = rng.random() < (0.7 if y else 0.05)
        yield (arm, f, y, 1 / rng.choice([0.2, 0.5, 1.0])) if rng.random() < 0.3 else (arm, f)


def _calibrated_version_inputs(rng: random.Random) -> Iterator[Args]:
    for version, defect, ts in _version_inputs(rng):
        yield (version, {"relevance": defect, "safety": rng.random() < 0.02}, ts)


INPUTS.update(
    {"CalibratedComparison": _calibrated_inputs, "CalibratedVersionComparison": _calibrated_version_inputs}
)


# Review sampling (detectors/review_sampler.py).
def _review_inputs(rng: random.Random) -> Iterator[Args]:
    ts = 1_700_000_000.0
    for i in range(600):
        ts += rng.uniform(0, 10)
        confidence = None if rng.random() < 0.2 else rng.random()
        yield (f"t{i}", ts, rng.choice(["a", "b", "c"]), rng.random() < 0.02, confidence, rng.random() < 0.05)


INPUTS.update({"ReviewSampler": _review_inputs})


# Defect-rate spike detection (detectors/bernoulli_cusum.py, detectors/defect_rate_spike.py).
def _bernoulli_inputs(rng: random.Random) -> Iterator[Args]:
    for i in range(300):
        yield (int(rng.random() < (0.1 if i < 150 else 0.4)),)


def _defect_rate_inputs(rng: random.Random) -> Iterator[Args]:
    for i in range(400):  # short warm-up (PARAMS), a spike, then back to the baseline
        x = rng.random() < (0.5 if 150 <= i < 250 else 0.1)
        yield (x, f"t{i}") if rng.random() < 0.5 else (x,)


INPUTS.update({"BernoulliCUSUM": _bernoulli_inputs, "DefectRateSpike": _defect_rate_inputs})
PARAMS.update(
    {
        "BernoulliCUSUM": {"p0": 0.1, "p1": 0.3, "threshold": 3.0},
        "DefectRateSpike": {"arl0": 1e3, "warmup": 50, "resolve_llr": 2.0},
    }
)


# Perceptual-score distribution drift (detectors/score_drift.py).
def _score_inputs(rng: random.Random) -> Iterator[Args]:
    for i in range(300):  # scores fall and spread at 120, and recover at 200: an alarm, then a resolution
        yield (rng.gauss(0.4, 0.2) if 120 <= i < 200 else rng.gauss(0.7, 0.05),)


INPUTS.update({"ScoreDrift": _score_inputs})
PARAMS.update({"ScoreDrift": {"reference_size": 40, "window_size": 20, "check_every": 5, "horizon": 1_000}})


# Labelling vendor scorecards and SLA status (detectors/vendor_scorecard.py, detectors/sla_status.py).
def _tally_inputs(rng: random.Random) -> Iterator[Args]:
    for _ in range(300):
        vendor = rng.choice(["vendor-a", "vendor-b"])
        turnaround = None if rng.random() < 0.2 else rng.expovariate(1 / 1800)
        gold = (1, 1) if rng.random() < 0.1 else (0, 0)
        yield (vendor, f"{vendor[-1]}{rng.randrange(4)}", turnaround, gold, (rng.randint(5, 7), 7), (0, 0))


def _scorecard_inputs(rng: random.Random) -> Iterator[Args]:
    ts = 1_700_000_000.0
    for args in _tally_inputs(rng):  # ~62 h: the default 24 h window slides, some labels are too late
        ts += rng.uniform(0, 1500)
        yield (ts - (rng.uniform(0, 100_000) if rng.random() < 0.05 else 0.0), *args)


def _sla_inputs(rng: random.Random) -> Iterator[Args]:
    for i in range(300):
        name = rng.choice(["vendor-a|turnaround", "vendor-b|gold_accuracy"])
        yield (600.0 * i, name, None if rng.random() < 0.1 else rng.random() < (0.8 if i > 150 else 0.1))


INPUTS.update({"LabelTally": _tally_inputs, "VendorScorecard": _scorecard_inputs, "SlaStatus": _sla_inputs})


# Per-item gold counts (detectors/gold_items.py).
def _gold_item_inputs(rng: random.Random) -> Iterator[Args]:
    truth = {"safety": "pass", "relevance": "fail", "intent": "refund"}
    for _ in range(300):
        dimensions = rng.sample(sorted(truth), rng.randint(1, 3))
        yield ({d: rng.choice(["pass", "fail", "refund", "cancel"]) for d in dimensions}, truth)


INPUTS.update({"GoldItemTally": _gold_item_inputs})
