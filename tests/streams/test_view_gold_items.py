"""Per-item gold counts (streams/views/gold_items.py): wrong expected answers are named, not only felt as
every vendor's lower gold accuracy."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from schemas import Stream
from streams.aggregate import Aggregator
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from streams.report import TimeRange, audit
from streams.report_html import render
from streams.report_sources import directory_inputs, file_items
from streams.state import DictStore
from streams.views.gold import GoldView
from streams.views.gold_items import MIN_RATERS, TOP_ITEMS
from tests.factories import chat_turn, human_label, judge_verdict, verdict

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
DIMENSIONS = ("relevance", "safety")
ANNOTATORS = (("vendor-a", "a1"), ("vendor-a", "a2"), ("vendor-b", "b1"))
FLIPPED = ("g-00", "g-04", "g-08")  # their expected answers are wrong, on every dimension


def _flip(label: str) -> str:
    return "fail" if label == "pass" else "pass"


class Scenario:
    """12 golden turns, each labelled by 3 annotators of 2 vendors (90% right) and a judge (95% right);
    the golden file has the expected answers of :data:`FLIPPED` turned over (the review's bad gold,
    smaller)."""

    def __init__(self, seed: int = 1) -> None:
        rng = random.Random(seed)
        self.truth = {f"g-{i:02d}": {d: rng.choice(["pass", "fail"]) for d in DIMENSIONS} for i in range(12)}
        self.golden = {
            t: {d: _flip(label) if t in FLIPPED else label for d, label in labels.items()}
            for t, labels in self.truth.items()
        }
        self.turns, self.labels, self.verdicts = [], [], []
        for n, (turn_id, labels) in enumerate(self.truth.items()):
            at = START + timedelta(minutes=n)
            self.turns.append(chat_turn(turn_id=turn_id, conversation_id=f"c-{turn_id}", ts=at.isoformat()))
            for vendor, annotator in ANNOTATORS:
                given = [verdict(d, lab if rng.random() < 0.9 else _flip(lab)) for d, lab in labels.items()]
                self.labels.append(
                    human_label(
                        turn_id=turn_id,
                        ts=(at + timedelta(minutes=5)).isoformat(),
                        annotator_id=annotator,
                        vendor_id=vendor,
                        is_gold=True,
                        verdicts=given,
                    )
                )
            given = [verdict(d, lab if rng.random() < 0.95 else _flip(lab)) for d, lab in labels.items()]
            self.verdicts.append(
                judge_verdict(turn_id=turn_id, ts=(at + timedelta(seconds=30)).isoformat(), verdicts=given)
            )

    def write(self, directory: Path) -> Path:
        """The input files and the golden set in ``directory``; the golden set's path."""
        for name, records in (
            ("chat_turns", self.turns),
            ("judge_verdicts", self.verdicts),
            ("human_labels", self.labels),
        ):
            (directory / f"{name}.jsonl").write_bytes(b"\n".join(map(orjson.dumps, records)))
        path = directory / "golden.jsonl"
        lines = (orjson.dumps({"turn_id": t, "labels": labels}) for t, labels in self.golden.items())
        path.write_bytes(b"\n".join(lines))
        return path

    def misses(self, raters: str = "all") -> dict[tuple[str, str], tuple[int, int]]:
        """(turn, dimension) -> (labels, labels other than the golden file's), counted from the records."""
        records = {"humans": self.labels, "judges": self.verdicts, "all": self.labels + self.verdicts}[raters]
        out: dict[tuple[str, str], tuple[int, int]] = {}
        for record in records:
            for v in record["verdicts"]:
                item = (record["turn_id"], v["dimension"])
                scored, missed = out.get(item, (0, 0))
                out[item] = (scored + 1, missed + (v["label"] != self.golden[item[0]][item[1]]))
        return out


def _suspect(counts: dict[tuple[str, str], tuple[int, int]]) -> set[tuple[str, str]]:
    return {item for item, (scored, missed) in counts.items() if scored >= MIN_RATERS and 2 * missed > scored}


def _pipeline(tmp_path: Path, scenario: Scenario) -> tuple[Pipeline, CollectorRegistry]:
    settings = Settings(golden=scenario.write(tmp_path))
    registry = CollectorRegistry()
    pipeline = Pipeline(settings, Metrics(registry), batched=True)
    streams = (
        (Stream.CHAT_TURNS, scenario.turns),
        (Stream.JUDGE_VERDICTS, scenario.verdicts),
        (Stream.HUMAN_LABELS, scenario.labels),
    )
    for stream, records in streams:
        for offset, record in enumerate(records):
            pipeline.process(stream, orjson.dumps(record), source_topic=stream.value, offset=offset)
    pipeline.finish()
    return pipeline, registry


def test_exactly_the_flipped_items_are_suspect(tmp_path: Path) -> None:
    scenario = Scenario()
    pipeline, registry = _pipeline(tmp_path, scenario)
    gold = pipeline.report()["gold"]
    flipped = {(t, d) for t in FLIPPED for d in DIMENSIONS}
    assert _suspect(scenario.misses()) == flipped  # the scenario is what it says
    assert gold["items_scored"] == 12 * len(DIMENSIONS)
    assert gold["items_suspect"] == len(flipped)
    rows = {(r["turn_id"], r["dimension"]): r for r in gold["items"]}
    assert len(rows) == min(TOP_ITEMS, gold["items_scored"])
    assert {item for item, r in rows.items() if r["suspect"]} == flipped
    assert sorted(gold["suspect_turns"]) == sorted(FLIPPED)
    assert [r["suspect"] for r in gold["items"]] == sorted(
        (r["suspect"] for r in gold["items"]), reverse=True
    )
    humans, judges = scenario.misses("humans"), scenario.misses("judges")
    for item, row in rows.items():
        assert row["expected"] == scenario.golden[item[0]][item[1]]
        assert (row["humans_scored"], row["humans_missed"]) == humans[item]
        assert (row["judges_scored"], row["judges_missed"]) == judges[item]
        assert row["scored"] == row["humans_scored"] + row["judges_scored"] == 4
        assert row["disagree_share"] == row["missed"] / row["scored"]
        assert set(row["vendors"]) == {"vendor-a", "vendor-b"} and set(row["judges"]) == {"judge-a"}
    # the gauge: the items suspect on the human labels alone
    assert registry.get_sample_value("convowatch_gold_items_suspect") == len(_suspect(humans))


def test_the_audit_report_names_the_suspect_items(tmp_path: Path) -> None:
    scenario = Scenario()
    golden = scenario.write(tmp_path)
    window = TimeRange(START, START + timedelta(hours=2))
    data = audit(Settings(golden=golden), window, file_items(directory_inputs(tmp_path)), "t")
    suspect = {(r["turn_id"], r["dimension"]) for r in data["gold_items"]["items"] if r["suspect"]}
    assert suspect == {(t, d) for t in FLIPPED for d in DIMENSIONS}
    page = render(data)
    assert "Golden items the raters miss" in page
    assert f"{len(suspect)} of {12 * len(DIMENSIONS)} golden items" in page
    for turn_id in FLIPPED:
        assert f"<td>{turn_id}</td>" in page
    assert sorted(data["gold_items"]["suspect_turns"]) == sorted(FLIPPED)
    assert f"The {len(FLIPPED)} golden turns with a suspect item" in page


class Labels:
    """A gold view over ``store``, fed gold observations one by one."""

    def __init__(self, store: DictStore, golden: dict[str, dict[str, str]]) -> None:
        self.registry = CollectorRegistry()
        self.view = GoldView(Metrics(self.registry), golden)
        self.aggregator = Aggregator(self.view.metrics, store, views=[self.view])
        self.offset = 0

    def label(self, turn_id: str, answer: str, vendor: str = "v", offset: int | None = None) -> None:
        self.offset += 1
        obs: dict[str, Any] = {
            "kind": "gold_label",
            "turn_id": turn_id,
            "ts": 1.0,
            "label_ts": 2.0,
            "annotator_id": f"ann-{self.offset}",
            "vendor_id": vendor,
            "labels": {"safety": answer},
            "src": ["labels:0", self.offset if offset is None else offset, 0],
        }
        self.aggregator.apply(obs)

    def verdict(self, turn_id: str, answer: str) -> None:
        self.offset += 1
        obs = {
            "kind": "gold_verdict",
            "turn_id": turn_id,
            "judge_id": "judge-a",
            "ts": 1.0,
            "labels": {"safety": answer},
            "src": ["verdicts:0", self.offset, 0],
        }
        self.aggregator.apply(obs)

    def gold(self) -> dict[str, Any]:
        gold: dict[str, Any] = self.view.report(self.aggregator)["gold"]
        return gold

    def gauge(self) -> float | None:
        return self.registry.get_sample_value("convowatch_gold_items_suspect")


def test_the_list_is_capped_and_puts_the_suspect_items_first() -> None:
    golden = {f"g-{i:02d}": {"safety": "pass"} for i in range(TOP_ITEMS + 10)} | {"few": {"safety": "pass"}}
    labels = Labels(DictStore(), golden)
    for i, turn_id in enumerate(t for t in golden if t != "few"):  # 10 raters, i % 5 of them miss: never most
        for n in range(10):
            labels.label(turn_id, "fail" if n < i % 5 else "pass")
    for answer in ("fail", "fail", "pass"):  # 2 misses of 3: suspect
        labels.label("few", answer)
    gold = labels.gold()
    assert (gold["items_scored"], gold["items_suspect"]) == (len(golden), 1)
    assert len(gold["items"]) == TOP_ITEMS
    first, *rest = gold["items"]
    assert (first["turn_id"], first["missed"], first["suspect"]) == ("few", 2, True)
    assert [r["missed"] for r in rest] == sorted((r["missed"] for r in rest), reverse=True)
    assert rest[0]["missed"] == 4 and not any(r["suspect"] for r in rest)


def test_an_item_most_raters_miss_is_suspect_from_two_raters_on() -> None:
    labels = Labels(DictStore(), {"g": {"safety": "pass"}, "h": {"safety": "pass"}})
    labels.label("g", "fail")
    (row,) = labels.gold()["items"]
    assert (row["scored"], row["missed"], row["suspect"]) == (1, 1, False)  # one rater is too few
    labels.verdict("g", "fail")
    (row,) = labels.gold()["items"]
    assert (row["scored"], row["missed"], row["suspect"]) == (2, 2, True)  # both raters missed
    assert labels.gold()["suspect_turns"] == ["g"]
    labels.label("g", "pass", vendor="w")
    (row,) = labels.gold()["items"]
    assert (row["humans_missed"], row["judges_missed"], row["suspect"]) == (1, 1, True)  # 2 of 3
    assert row["vendors"] == {"v": {"scored": 1, "missed": 1}, "w": {"scored": 1, "missed": 0}}
    assert labels.gold()["items_suspect"] == 1
    assert labels.gauge() == 0  # 1 of 2 human labels missed: not suspect on the humans alone
    labels.label("g", "fail", vendor="w")
    assert labels.gauge() == 1  # 2 of 3 human labels
    labels.label("g", "pass")
    labels.label("g", "pass")
    assert labels.gauge() == 0 and labels.gold()["items_suspect"] == 0  # 2 of 5 humans, 3 of 6 raters


def test_a_replayed_observation_is_not_counted_twice() -> None:
    labels = Labels(DictStore(), {"g": {"safety": "pass"}})
    labels.label("g", "fail", offset=7)
    labels.label("g", "fail", offset=7)  # the same source position, delivered again after a crash
    (row,) = labels.gold()["items"]
    assert (row["scored"], row["missed"]) == (1, 1)


def test_a_restarted_worker_recovers_the_counts_and_the_gauge() -> None:
    store = DictStore()
    golden = {"g": {"safety": "pass"}}
    before = Labels(store, golden)
    for _ in range(3):
        before.label("g", "fail")
    before.aggregator.flush()
    assert before.gauge() == 1

    after = Labels(store, golden)  # a fresh process over the recovered store (Kafka: the changelog)
    after.aggregator.rebalanced()
    assert after.gauge() == 1
    assert after.gold()["items"] == before.gold()["items"]
    after.offset = before.offset
    for _ in range(3):
        after.label("g", "pass")
    assert after.gauge() == 0  # 3 of 6


def test_state_without_item_counts_reads_as_none() -> None:
    store = DictStore()
    golden = {"g": {"safety": "pass"}}
    old = Labels(store, golden)
    old.label("g", "fail")
    old.aggregator.flush()
    for key in [k for k, _ in store.items() if k.startswith("gold_item")]:  # as code before them wrote it
        store.delete(key, None)
    restarted = Labels(store, golden)
    restarted.aggregator.rebalanced()
    gold = restarted.gold()
    assert (gold["items_scored"], gold["items_suspect"], gold["items"]) == (0, 0, [])
    assert [r["n"] for r in gold["vendors"] if r["dimension"] == "*"] == [1]
    assert restarted.gauge() == 0


def test_a_corrected_expected_answer_counts_anew() -> None:
    store = DictStore()
    wrong = Labels(store, {"g": {"safety": "fail"}})
    for _ in range(3):
        wrong.label("g", "pass")
    wrong.aggregator.flush()
    assert wrong.gold()["items_suspect"] == 1

    corrected = Labels(store, {"g": {"safety": "pass"}})  # the golden file fixed, the workers restarted
    corrected.aggregator.rebalanced()
    corrected.offset = wrong.offset
    assert corrected.gold()["items"] == [] and corrected.gauge() == 0  # counts against the old answer
    corrected.label("g", "pass")
    (row,) = corrected.gold()["items"]
    assert (row["expected"], row["scored"], row["missed"], row["suspect"]) == ("pass", 1, 0, False)
