"""Labels and verdicts on golden-set turns are scored once each, whether or not the join holds the chat turn.

The join emits a ``gold_label`` or ``gold_verdict`` observation as it reads a rater's record of a golden turn
(``streams/join_gold.py``); the gold view and the vendor scorecards score them. Before, they scored
``labelled`` and ``judged``, which need the turn: a honeypot label that came after the TTL or the size cap
evicted its turn, or on a curated honeypot whose turn was never sent, was not scored. A record the join's caps
refuse (``streams/join_caps.py``) is dead-lettered and scored all the same: a honeypot is served to every
annotator, and past the 100th (or 800 labels) every later one's label on it went unscored.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.aggregate import Aggregator
from streams.config import Settings
from streams.join import Emit, TurnJoiner
from streams.join_caps import MAX_LABELS_PER_TURN, MAX_RATERS_PER_TURN, RefusedRecord
from streams.metrics import Metrics
from streams.observation_packs import positioned
from streams.pipeline import Pipeline
from streams.state import DictStore
from streams.taxonomy import load_taxonomy
from streams.views.gold import GoldView
from streams.views.vendors import VendorsView
from tests.factories import verdict
from tests.streams.test_join import judged, labelled, turn
from tests.streams.test_join_evict_replay import DeferredChangelog

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
HOUR = 3600
GOLDEN = {f"g-{i}": {"relevance": "pass"} for i in range(1, 5)}
WRONG = [verdict("relevance", "fail")]


def _turn(turn_id: str, at: datetime) -> tuple[Stream, dict[str, Any]]:
    return Stream.CHAT_TURNS, {
        "turn_id": turn_id,
        "conversation_id": f"c-{turn_id}",
        "ts": at.isoformat(),
        "journey": "j",
        "channel": "chat",
        "model_version": "m",
    }


def _label(turn_id: str, at: datetime, dimension: str = "relevance") -> tuple[Stream, dict[str, Any]]:
    return Stream.HUMAN_LABELS, {
        "turn_id": turn_id,
        "ts": at.isoformat(),
        "annotator_id": "ann-1",
        "vendor_id": "vendor-x",
        "is_gold": True,
        "verdicts": [{"dimension": dimension, "label": "fail"}],
    }


def _verdict(turn_id: str, at: datetime) -> tuple[Stream, dict[str, Any]]:
    return Stream.JUDGE_VERDICTS, {
        "turn_id": turn_id,
        "ts": at.isoformat(),
        "judge_id": "judge-a",
        "judge_version": "v1",
        "verdicts": [{"dimension": "relevance", "label": "fail"}],
    }


def _fillers(at: datetime, n: int) -> list[tuple[Stream, dict[str, Any]]]:
    return [_turn(f"filler-{i}", at + timedelta(seconds=i)) for i in range(n)]


# each case: the records; a wrong honeypot label of ann-1 (vendor-x) on g-1 in each
CASES = {
    "an hour after its turn": [_turn("g-1", T0), _label("g-1", T0 + timedelta(hours=1))],
    "before its turn": [_label("g-1", T0), _turn("g-1", T0 + timedelta(minutes=5))],
    # past CONVOWATCH_JOIN_TTL_SECONDS (7 days): the turn was evicted
    "8 days after its turn": [
        _turn("g-1", T0),
        _turn("later", T0 + timedelta(days=8)),
        _label("g-1", T0 + timedelta(days=8, minutes=1)),
    ],
    # 600 other turns with CONVOWATCH_JOIN_MAX_ENTRIES=500
    "after the size cap evicted its turn": [
        _turn("g-1", T0),
        *_fillers(T0 + timedelta(hours=1), 600),
        _label("g-1", T0 + timedelta(hours=2)),
    ],
    "on a curated honeypot whose turn was never sent": [_label("g-1", T0 + timedelta(hours=2))],
}


def _run(
    tmp_path: Path, records: list[tuple[Stream, dict[str, Any]]], golden: dict[str, dict[str, str]] = GOLDEN
) -> tuple[Pipeline, CollectorRegistry]:
    path = tmp_path / "golden.jsonl"
    path.write_bytes(
        b"".join(orjson.dumps({"turn_id": t, "labels": labels}) + b"\n" for t, labels in golden.items())
    )
    settings = Settings(golden=path, join_max_entries=500, evict_every=1)
    registry = CollectorRegistry()
    pipeline = Pipeline(settings, Metrics(registry, label_max_values=settings.label_max_values), batched=True)
    for offset, (stream, value) in enumerate(records):
        emits = pipeline.process(stream, orjson.dumps(value), source_topic="in", offset=offset)
        assert not [e for e in emits if e.topic == "deadletter"]
    pipeline.finish()
    return pipeline, registry


def _gold(pipeline: Pipeline, section: str = "annotators") -> dict[str, tuple[int, float | None]]:
    return {r["dimension"]: (r["n"], r["accuracy"]) for r in pipeline.report()["gold"][section]}


def _vendor_gold(pipeline: Pipeline) -> tuple[int, int]:
    (row,) = (r for r in pipeline.report()["vendors"]["vendors"] if r["vendor_id"] == "vendor-x")
    return row["gold_correct"], row["gold_total"]


@pytest.mark.parametrize("case", CASES)
def test_a_honeypot_label_is_scored_once_whether_or_not_the_join_holds_its_turn(tmp_path, case):
    pipeline, registry = _run(tmp_path, CASES[case])
    assert _gold(pipeline) == {"*": (1, 0.0), "relevance": (1, 0.0)}
    series = {"vendor_id": "vendor-x", "dimension": "relevance"}
    assert registry.get_sample_value("convowatch_vendor_gold_accuracy_ratio", series) == 0.0
    assert _vendor_gold(pipeline) == (0, 1)  # the vendor scorecard's gold item, for the gold SLA


def test_a_judge_verdict_on_a_golden_turn_never_sent_is_scored(tmp_path):
    pipeline, registry = _run(tmp_path, [_verdict("g-2", T0)])
    assert _gold(pipeline, "judges") == {"*": (1, 0.0), "relevance": (1, 0.0)}
    series = {"judge_id": "judge-a", "dimension": "relevance"}
    assert registry.get_sample_value("convowatch_judge_gold_accuracy_ratio", series) == 0.0


def test_each_dimension_of_a_honeypot_is_scored_once_as_its_records_and_turn_come(tmp_path):
    """A label before the turn, the turn, a verdict, the same label again (a duplicate), then the same
    annotator's second record with a new dimension: the turn and the duplicate score nothing again."""
    records = [
        _label("g-1", T0),
        _turn("g-1", T0 + timedelta(minutes=5)),
        _verdict("g-1", T0 + timedelta(minutes=6)),
        _label("g-1", T0),
        _label("g-1", T0 + timedelta(minutes=10), dimension="safety"),
    ]
    pipeline, _ = _run(tmp_path, records, {"g-1": {"relevance": "pass", "safety": "pass"}})
    assert _gold(pipeline) == {"*": (2, 0.0), "relevance": (1, 0.0), "safety": (1, 0.0)}
    assert _gold(pipeline, "judges") == {"*": (1, 0.0), "relevance": (1, 0.0)}
    assert _vendor_gold(pipeline) == (0, 2)


def test_labels_on_turns_outside_the_golden_set_make_no_gold_observation():
    j = TurnJoiner(load_taxonomy(), Metrics(CollectorRegistry()), golden=GOLDEN)
    emits = j.handle(labelled("t-1", verdicts=WRONG)) + j.handle(judged("t-1", verdicts=WRONG))
    emits += j.handle(labelled("g-1", verdicts=[verdict("safety", "fail")]))  # not a dimension of its truth
    assert not [e for e in emits if e.value.get("kind", "").startswith("gold")]


# -- replays on Kafka: the aggregates apply each gold observation once -------------------------------------


class Aggregation:
    """The aggregation stage, which outlives the join's crash (see test_join_evict_replay.py)."""

    def __init__(self) -> None:
        metrics = Metrics(CollectorRegistry())
        self.gold = GoldView(metrics, GOLDEN)
        self.aggregator = Aggregator(
            metrics, DictStore(), views=[self.gold, VendorsView(metrics, golden=GOLDEN)]
        )
        self.offset = 0

    def publish(self, emits: list[Emit]) -> None:
        for emit in emits:
            if emit.topic == "observations":
                value = orjson.loads(orjson.dumps(emit.value))
                (observation,) = positioned([value], "observations:0", self.offset)
                self.offset += 1
                self.aggregator.apply(observation, 0)

    def scored(self) -> dict[str, int]:
        report = self.gold.report(self.aggregator)["gold"]
        rows = [r for section in ("annotators", "judges") for r in report[section] if r["dimension"] == "*"]
        return {r.get("annotator_id", r.get("judge_id")): r["n"] for r in rows}

    def vendor_gold(self) -> tuple[int, int]:
        """vendor-x's gold items in the scorecard's window (all wrong: (0, n))."""
        card = self.aggregator.detector("vendor_scorecard")
        return (0, 0) if card is None else card.scorecard("vendor-x").gold


def _joiner(store: DictStore) -> TurnJoiner:
    return TurnJoiner(
        load_taxonomy(),
        Metrics(CollectorRegistry()),
        store,
        ttl_seconds=HOUR,
        evict_every=1,
        autoflush=False,
        keep_outputs=True,
        golden=GOLDEN,
    )


def _batch(j: TurnJoiner, records: list[tuple[str, int, Any]]) -> list[Emit]:
    emits = []
    for source, offset, event in records:
        emits.extend(j.handle(event, 0, (source, offset)))
    j.flush()
    return emits


RECORDS = [
    ("labels:0", 1, labelled("g-1", seconds=0, verdicts=WRONG)),  # before its turn
    ("turns:0", 1, turn("g-1", seconds=60)),
    ("verdicts:0", 1, judged("g-1", seconds=90, verdicts=WRONG)),
    ("labels:0", 2, labelled("g-2", seconds=100, verdicts=WRONG, annotator_id="ann-2")),  # never sent
    ("labels:0", 3, labelled("g-1", seconds=120, verdicts=WRONG, annotator_id="ann-2")),
    ("turns:0", 2, turn("later", seconds=3 * HOUR)),  # evicts both past the TTL
]
SCORED = {"ann-1": 1, "ann-2": 2, "judge-a": 1}


@pytest.mark.parametrize("acknowledged", [False, True], ids=["outputs-lost", "outputs-acknowledged"])
@pytest.mark.parametrize("cut", [2, 4, 6])
def test_a_replay_after_a_crash_scores_nothing_twice_nor_loses_a_label(cut, acknowledged):
    """The first worker reads ``cut`` records in one batch, writes its state and crashes, before or after
    the broker acknowledged the batch's outputs (offsets never committed). The restarted worker reads
    every record again, the topics in another order."""
    store, aggregation = DeferredChangelog(), Aggregation()
    lost = _batch(_joiner(store), RECORDS[:cut])
    if acknowledged:
        aggregation.publish(lost)
    replay = _joiner(store.recover())
    replay.rebalanced({})
    again = sorted(RECORDS, key=lambda r: (r[0] != "turns:0", r[0], r[1]))  # each topic in offset order
    aggregation.publish(_batch(replay, again))
    assert aggregation.scored() == SCORED
    assert aggregation.vendor_gold() == (0, 3)


def test_entries_of_code_before_gold_observations_score_only_labels_never_scored():
    """State recovered from code that scored ``labelled``: a held turn's labels observed then are not
    scored again when a later label comes; an orphan's labels, never scored, are when it is evicted."""

    def joiner(store: DictStore) -> TurnJoiner:
        return TurnJoiner(
            load_taxonomy(), Metrics(CollectorRegistry()), store, ttl_seconds=HOUR, golden=GOLDEN
        )

    store = DictStore()
    before = joiner(store)
    before.handle(turn("g-1", seconds=0))
    before.handle(labelled("g-1", seconds=10, verdicts=WRONG))
    before.handle(labelled("g-2", seconds=20, verdicts=WRONG))  # its turn never comes
    old = DictStore()
    for key, entry in store.items():  # as the old code left them: no count of labels scored
        entry = orjson.loads(orjson.dumps(entry))
        for record in entry["human"].values():
            del record["g"]
        old.put(key, entry, 0)
    j = joiner(old)  # a restarted worker recovering that state
    aggregation = Aggregation()
    aggregation.publish(j.handle(labelled("g-1", seconds=30, verdicts=WRONG, annotator_id="ann-2")))
    assert aggregation.scored() == {"ann-2": 1}
    aggregation.publish(j.handle(turn("later", seconds=3 * HOUR)) + j.evict())
    assert aggregation.scored() == {"ann-1": 1, "ann-2": 1}  # g-2's label, at its entry's eviction


# -- records the join's caps refuse: dead-lettered, and scored all the same ----------------------------------


def _refused_run(
    tmp_path: Path, records: list[tuple[Stream, dict[str, Any]]], golden: dict[str, dict[str, str]]
) -> tuple[Pipeline, list[Emit], list[bytes]]:
    """Each record through the embedded pipeline; its dead letters, and the records they came from."""
    path = tmp_path / "golden.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"turn_id": t, "labels": d}) + b"\n" for t, d in golden.items()))
    settings = Settings(golden=path)
    pipeline = Pipeline(settings, Metrics(CollectorRegistry(), label_max_values=settings.label_max_values))
    dead, refused = [], []
    for offset, (stream, value) in enumerate(records):
        record = orjson.dumps(value)
        emits = pipeline.process(stream, record, source_topic="in", offset=offset)
        if emits and emits[0].topic == "deadletter":
            dead.append(emits[0])
            refused.append(record)
    pipeline.finish()
    return pipeline, dead, refused


def _annotators(n: int, dims: list[str]) -> list[tuple[Stream, dict[str, Any]]]:
    """``n`` annotators of vendor-x labelling honeypot ``hp`` wrongly on ``dims``, a minute apart (within the
    vendor scorecard's window)."""
    return [
        (
            Stream.HUMAN_LABELS,
            {
                "turn_id": "hp",
                "ts": (T0 + timedelta(minutes=i)).isoformat(),
                "annotator_id": f"ann-{i}",
                "vendor_id": "vendor-x",
                "is_gold": True,
                "verdicts": [{"dimension": d, "label": "fail"} for d in dims],
            },
        )
        for i in range(n)
    ]


def _scored(pipeline: Pipeline, section: str) -> int:
    return sum(r["n"] for r in pipeline.report()["gold"][section] if r["dimension"] == "*")


def test_every_annotator_of_a_honeypot_is_scored_past_the_rater_cap_and_dead_lettered(tmp_path):
    # 150 annotators on one honeypot: the 50 past the cap of 100 were dead-lettered and never scored
    records = _annotators(150, ["relevance"])
    pipeline, dead, refused = _refused_run(tmp_path, records, {"hp": {"relevance": "pass"}})
    assert _scored(pipeline, "annotators") == _scored(pipeline, "vendors") == 150
    assert _vendor_gold(pipeline) == (0, 150)  # the vendor scorecard's gold items
    # the 50 still dead-lettered, as before: reason and original bytes; the join keeps 100 annotators
    assert len(dead) == 150 - MAX_RATERS_PER_TURN
    assert {e.value["reason"] for e in dead} == {"too_many_raters"}
    assert [base64.b64decode(e.value["original_base64"]) for e in dead] == refused
    assert refused == [orjson.dumps(value) for _, value in records[MAX_RATERS_PER_TURN:]]


def test_a_honeypot_of_ten_dimensions_is_scored_past_the_label_cap(tmp_path):
    # 80 annotators of 10 dimensions fill the 800 labels a turn keeps: 70 more were refused and not scored
    dims = [f"dim_{k}" for k in range(10)]
    pipeline, dead, _ = _refused_run(tmp_path, _annotators(150, dims), {"hp": dict.fromkeys(dims, "pass")})
    assert [e.value["reason"] for e in dead] == ["too_many_labels"] * (150 - MAX_LABELS_PER_TURN // 10)
    assert _scored(pipeline, "annotators") == 150 * 10
    assert _vendor_gold(pipeline) == (0, 1500)


def test_a_judge_verdict_refused_at_the_rater_cap_on_a_golden_turn_is_scored(tmp_path):
    records = [_turn("g-1", T0)]
    for i in range(MAX_RATERS_PER_TURN + 1):
        stream, value = _verdict("g-1", T0 + timedelta(minutes=i))
        records.append((stream, value | {"judge_id": f"judge-{i}"}))
    pipeline, dead, _ = _refused_run(tmp_path, records, GOLDEN)
    assert [e.value["reason"] for e in dead] == ["too_many_raters"]
    rows = {r["judge_id"]: r["n"] for r in pipeline.report()["gold"]["judges"] if r["dimension"] == "*"}
    assert rows[f"judge-{MAX_RATERS_PER_TURN}"] == 1 and sum(rows.values()) == MAX_RATERS_PER_TURN + 1


def test_a_refused_record_scores_only_its_golden_dimensions_its_rater_had_not_labelled():
    """A record of an annotator the turn keeps, refused for the labels it adds: those of the truth's
    dimensions are scored, the one its first record brought is not again; a refused record on a turn outside
    the golden set, or on none of its truth's dimensions, publishes its dead letter only."""
    truth = {"g-1": {"relevance": "pass", "safety": "pass"}}
    j = TurnJoiner(load_taxonomy(), Metrics(CollectorRegistry()), golden=truth)
    styles = [verdict(f"style_{k}", "ok") for k in range(64)]
    for turn_id in ("g-1", "t-1"):
        # ann-1 labels 63 dimensions, relevance (scored) among them; 99 others one each
        j.handle(labelled(turn_id, seconds=0, verdicts=WRONG + styles[:62]), None, ("in", 0))
        for i in range(1, MAX_RATERS_PER_TURN):
            j.handle(labelled(turn_id, seconds=i, verdicts=WRONG, annotator_id=f"ann-x{i}"), None, ("in", i))

    def refused(event: Any) -> list[Emit]:
        with pytest.raises(RefusedRecord) as caught:
            j.handle(event, None, ("in", 500))
        return caught.value.emits

    # 3 new dimensions on 63: past the 64 a rater keeps
    again = refused(labelled("g-1", seconds=900, verdicts=[*WRONG, verdict("safety", "fail"), *styles[62:]]))
    assert [(e.value["kind"], e.value["labels"], e.value["src"]) for e in again] == [
        ("gold_label", {"safety": "fail"}, ["in", 500, 0])
    ]
    assert again[0].value["label_ts"] == labelled(seconds=900).ts.timestamp()  # when this record was made
    assert "safety" not in j.state.get("g-1")["human"]["ann-1"]["labels"]  # the entry is unchanged
    assert refused(labelled("t-1", seconds=900, verdicts=WRONG, annotator_id="ann-new")) == []
    assert refused(labelled("g-1", seconds=900, verdicts=styles[:1], annotator_id="ann-new")) == []


@pytest.mark.parametrize("acknowledged", [False, True], ids=["outputs-lost", "outputs-acknowledged"])
def test_a_refused_record_read_again_after_a_crash_is_scored_once(acknowledged):
    """A honeypot label past the rater cap, in a batch whose state is written before the worker crashes,
    before or after the broker acknowledged its outputs: read again at the same position, it makes the same
    observation, which the aggregates skip if they applied it."""
    store, aggregation = DeferredChangelog(), Aggregation()
    first = _joiner(store)
    crowd = [
        ("verdicts:0", i, judged("g-1", seconds=i, verdicts=WRONG, judge_id=f"judge-{i}"))
        for i in range(MAX_RATERS_PER_TURN)
    ]
    aggregation.publish(_batch(first, crowd))
    first.published()
    extra = judged("g-1", seconds=200, verdicts=WRONG, judge_id="judge-extra")
    with pytest.raises(RefusedRecord) as caught:
        first.handle(extra, 0, ("verdicts:0", 500))
    first.flush()
    lost = caught.value.emits
    if acknowledged:
        aggregation.publish(lost)
    replay = _joiner(store.recover())
    replay.rebalanced({})
    with pytest.raises(RefusedRecord) as again:
        replay.handle(extra, 0, ("verdicts:0", 500))
    assert [e.value for e in again.value.emits] == [e.value for e in lost]
    aggregation.publish(again.value.emits)
    scored = aggregation.scored()
    assert scored["judge-extra"] == 1 and sum(scored.values()) == MAX_RATERS_PER_TURN + 1
