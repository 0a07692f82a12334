"""A judged high-risk failure is decided once, by the join: its observations carry the decision.

A judge's fail on a high-risk dimension (safety, bias), or on any quality dimension of a turn about a
high-risk topic, makes review sampling request the turn with probability 1 (``reviewable``:
``high_risk_fails``), and so makes 1 the inclusion probability of its labels (``labelled``:
``effective_inclusion_probability``, as its pairs' ``inclusion_probability``). The views read those fields;
an observation of a join from before them is decided by the same rule from the labels it carries.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from prometheus_client import CollectorRegistry

from schemas import ChatTurn, HumanLabel, JudgeVerdict
from schemas.common import FAIL, PASS
from streams.aggregate import Aggregator, key
from streams.emit import Emit
from streams.join import TurnJoiner
from streams.metrics import Metrics
from streams.state import DictStore
from streams.taxonomy import Taxonomy, load_taxonomy
from streams.views.review import review_signals
from streams.views.spikes import SpikeView
from streams.views.uniform_labels import keep_draw
from tests.factories import chat_turn, human_label, judge_verdict, verdict

T0 = datetime(2026, 11, 2, 8, tzinfo=UTC)
TAXONOMY = load_taxonomy()
#: The join's new fields (a join before them published neither).
DECIDED = ("effective_inclusion_probability", "high_risk_fails")


def _at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


def _turn(turn_id: str, seconds: float = 0, **kw: Any) -> ChatTurn:
    record = chat_turn(turn_id=turn_id, conversation_id=turn_id, ts=_at(seconds), journey="shopper", **kw)
    return ChatTurn.model_validate(record)


def _verdict(
    turn_id: str, *labels: tuple[str, str], seconds: float = 30, judge: str = "judge-a"
) -> JudgeVerdict:
    verdicts = [verdict(d, v) for d, v in labels]
    record = judge_verdict(turn_id=turn_id, ts=_at(seconds), judge_id=judge, verdicts=verdicts)
    return JudgeVerdict.model_validate(record)


def _label(
    turn_id: str,
    *labels: tuple[str, str],
    pi: float | None = 0.2,
    seconds: float = 3600,
    annotator: str = "ann-1",
) -> HumanLabel:
    verdicts = [verdict(d, v) for d, v in labels]
    record = human_label(turn_id=turn_id, ts=_at(seconds), annotator_id=annotator, verdicts=verdicts)
    if pi is not None:
        record["inclusion_probability"] = pi
    return HumanLabel.model_validate(record)


def _observations(emits: list[Emit], kind: str) -> list[dict[str, Any]]:
    return [e.value for e in emits if e.topic == "observations" and e.value["kind"] == kind]


def _joined(*events: Any) -> list[list[Emit]]:
    """What the join emits for each of ``events`` (one list per event)."""
    joiner = TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()))
    return [joiner.handle(event) for event in events]


def test_a_labelled_observation_carries_the_probability_its_pairs_weigh_by() -> None:
    cases: dict[str, tuple[list[Any], float | None]] = {
        "plain": (
            [_turn("plain"), _verdict("plain", ("relevance", PASS)), _label("plain", ("relevance", PASS))],
            0.2,
        ),
        "unsafe": (
            [
                _turn("unsafe"),
                _verdict("unsafe", ("relevance", PASS), ("safety", FAIL)),
                _label("unsafe", ("relevance", PASS)),
            ],
            1.0,
        ),
        # any quality fail of a turn about a high-risk topic (matched without regard to case)
        "risky": (
            [
                _turn("risky", risk_topics=["Fraud"]),
                _verdict("risky", ("relevance", FAIL)),
                _label("risky", ("relevance", FAIL)),
            ],
            1.0,
        ),
        "not risky": (
            [
                _turn("not risky"),
                _verdict("not risky", ("relevance", FAIL)),
                _label("not risky", ("relevance", FAIL)),
            ],
            0.2,
        ),
        # a human's high-risk fail escalates the turn, but review sampling requested it at its pi
        "human fail": (
            [
                _turn("human fail"),
                _verdict("human fail", ("safety", PASS)),
                _label("human fail", ("safety", FAIL)),
            ],
            0.2,
        ),
        # a label without pi (a vendor's own sample) stays without one: it is taken as uniform
        "vendor": (
            [
                _turn("vendor"),
                _verdict("vendor", ("safety", FAIL)),
                _label("vendor", ("safety", FAIL), pi=None),
            ],
            None,
        ),
        # a second judge's fail before the label: requested again, with pi 1
        "second judge": (
            [
                _turn("second judge"),
                _verdict("second judge", ("relevance", PASS)),
                _verdict("second judge", ("bias", FAIL), judge="judge-b", seconds=40),
                _label("second judge", ("relevance", PASS)),
            ],
            1.0,
        ),
    }
    for name, (events, expected) in cases.items():
        *_, last = _joined(*events)
        (labelled,) = _observations(last, "labelled")
        pairs = _observations(last, "pair")
        assert pairs, name
        assert labelled["inclusion_probability"] == (None if name == "vendor" else 0.2), name  # as copied
        assert labelled["effective_inclusion_probability"] == expected, name
        assert {p["inclusion_probability"] for p in pairs} == {expected}, name


def test_a_later_verdict_raises_the_probability_of_the_labels_observed_after_it() -> None:
    """The decision is the join's at the time of each observation: a label observed before the judge's
    high-risk fail keeps its pi (in its pairs too); the same annotator's later label, with a new
    dimension, is observed with pi 1, as the later judge's pairs are."""
    emits = _joined(
        _turn("t-1"),
        _verdict("t-1", ("relevance", PASS)),
        _label("t-1", ("relevance", PASS)),
        _verdict("t-1", ("relevance", PASS), ("safety", FAIL), judge="judge-b", seconds=4000),
        _label("t-1", ("relevance", PASS), ("safety", PASS), seconds=4100),
    )
    before, high_risk, after = emits[2], emits[3], emits[4]
    assert [o["effective_inclusion_probability"] for o in _observations(before, "labelled")] == [0.2]
    assert {p["inclusion_probability"] for p in _observations(before, "pair")} == {0.2}
    assert {p["inclusion_probability"] for p in _observations(high_risk, "pair")} == {1.0}
    (update,) = _observations(after, "labelled")
    assert update.get("update") and update["labels"] == {"safety": PASS}
    assert update["effective_inclusion_probability"] == 1.0 and update["inclusion_probability"] == 0.2
    assert {p["inclusion_probability"] for p in _observations(after, "pair")} == {1.0}
    # review sampling: decided first as not high-risk, then again as high-risk, on judge-b's safety fail
    reviewable = _observations([e for batch in emits for e in batch], "reviewable")
    assert [(o.get("update", False), o["high_risk_fails"]) for o in reviewable] == [
        (False, []),
        (True, ["safety"]),
    ]


def test_review_sampling_reads_the_joins_decision() -> None:
    cases = {
        "unsafe": (
            [_turn("unsafe"), _verdict("unsafe", ("safety", FAIL), ("bias", FAIL))],
            ["bias", "safety"],
        ),
        "risky": (
            [_turn("risky", risk_topics=["identity"]), _verdict("risky", ("relevance", FAIL))],
            ["relevance"],
        ),
        "plain": ([_turn("plain", risk_topics=["identity"]), _verdict("plain", ("relevance", PASS))], []),
    }
    for name, (events, fails) in cases.items():
        *_, last = _joined(*events)
        (reviewable,) = _observations(last, "reviewable")
        assert reviewable["high_risk_fails"] == fails, name
        signals = review_signals(reviewable, TAXONOMY)
        assert (signals["high_risk"], signals["high_risk_fails"]) == (bool(fails), fails), name
        # the join's decision, whatever taxonomy the aggregation worker has
        assert review_signals(reviewable, _no_high_risk_dimension())["high_risk_fails"] == fails, name
        # an observation of a join before the decision: the same, from the labels it carries
        old = {k: v for k, v in reviewable.items() if k not in DECIDED}
        assert review_signals(old, TAXONOMY) == signals, name


def _no_high_risk_dimension() -> Taxonomy:
    """The default taxonomy with no high-risk dimension (a worker configured apart from the join's)."""
    dimensions = {d: p.model_copy(update={"high_risk": False}) for d, p in TAXONOMY.dimensions.items()}
    return TAXONOMY.model_copy(update={"dimensions": dimensions})


def _human_spike_turns(taxonomy: Taxonomy, observations: list[dict[str, Any]]) -> int:
    """How many of the ``labelled`` observations the human source of ``defect_spike`` took."""
    view = SpikeView(Metrics(CollectorRegistry()), taxonomy, uniform_probability=0.01)
    aggregator = Aggregator(view.metrics, DictStore(), views=[view])
    for observation in observations:
        aggregator.apply(observation)
    spikes = aggregator.detector(key("spike", "humans", "journey=shopper"))
    return 0 if spikes is None else spikes.detector("unsafe").n


def _labelled_turns(turns: int, judge: str) -> list[dict[str, Any]]:
    """The join's ``labelled`` observations of ``turns`` turns the judge labels ``judge`` on safety, each
    labelled pass at pi 0.05."""
    joiner = TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()))
    observations = []
    for n in range(turns):
        turn_id = f"{judge}-{n}"
        for event in (
            _turn(turn_id, n),
            _verdict(turn_id, ("safety", judge)),
            _label(turn_id, ("safety", PASS), pi=0.05),
        ):
            observations += _observations(joiner.handle(event), "labelled")
    assert len(observations) == turns
    return observations


def test_the_human_spike_source_takes_the_joins_probability() -> None:
    # a turn the judge fails on safety is kept with probability p / 1, the others with p / 0.05
    failed, passed = _labelled_turns(2_000, FAIL), _labelled_turns(2_000, PASS)
    expected = {
        FAIL: sum(keep_draw(o["turn_id"]) < 0.01 for o in failed),
        PASS: sum(keep_draw(o["turn_id"]) * 0.05 < 0.01 for o in passed),
    }
    assert 5 < expected[FAIL] < 40 < expected[PASS]
    assert _human_spike_turns(TAXONOMY, failed) == expected[FAIL]
    assert _human_spike_turns(TAXONOMY, passed) == expected[PASS]
    # an aggregation worker whose taxonomy says otherwise follows the join (as the pairs and the review
    # request did): one decision, not one per worker
    assert _human_spike_turns(_no_high_risk_dimension(), failed) == expected[FAIL]
    # observations of a join before the field: decided as then, from the judges' labels they carry
    old = [{k: v for k, v in o.items() if k not in DECIDED} for o in failed + passed]
    assert _human_spike_turns(TAXONOMY, old) == expected[FAIL] + expected[PASS]
