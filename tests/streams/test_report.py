"""``convowatch report``: figures of an event-time range, and the self-contained HTML page."""

from __future__ import annotations

import html
import json
import math
import re
import statistics
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors import AgreementTracker, wilson_interval
from streams.cli import main
from streams.config import Settings
from streams.exceptions import ConvowatchError
from streams.generator import Incident, TrafficGenerator
from streams.report import TimeRange, audit
from streams.report_charts import line_chart
from streams.report_html import SECTIONS, render
from streams.report_sources import directory_inputs, file_items
from tests.factories import chat_turn, human_label, judge_verdict, verdict

LLMBAR = Path(__file__).parents[1] / "data" / "llmbar-mtbench"  # MIT, LICENSE beside it
DAY = datetime(2026, 11, 2, tzinfo=UTC)
START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def llmbar_report(since: datetime, until: datetime, **settings: Any) -> dict[str, Any]:
    items = file_items(directory_inputs(LLMBAR))
    return audit(Settings(**settings), TimeRange(since, until), items, "llmbar")


def by_judge(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["judge_id"]: r for r in data["agreement"] if r["dimension"] == "preference"}


def agreement_row(page: str, judge: str) -> str:
    """The cells of ``judge``'s row in the whole-range agreement table."""
    found = re.search(rf"<tr><td>{re.escape(judge)}</td><td>preference</td>(.*?)</tr>", page)
    assert found, f"no agreement row for {judge}"
    return found.group(1)


@pytest.fixture(scope="module")
def llmbar() -> dict[str, Any]:
    return llmbar_report(DAY, DAY + timedelta(days=2))


def test_llmbar_figures_match_the_published_ones(llmbar: dict[str, Any]) -> None:
    rows = by_judge(llmbar)
    assert rows["gpt-4"]["n"] == rows["chatgpt"]["n"] == 200
    assert rows["gpt-4"]["percent_agreement"] == pytest.approx(0.795, abs=1e-9)
    assert rows["gpt-4"]["cohen_kappa"] == pytest.approx(0.589918, abs=1e-6)
    assert rows["chatgpt"]["percent_agreement"] == pytest.approx(0.700, abs=1e-9)
    assert rows["chatgpt"]["cohen_kappa"] == pytest.approx(0.397409, abs=1e-6)
    assert llmbar["events"] == {"chat_turns": 200, "judge_verdicts": 400, "human_labels": 200, "signals": 0}
    assert llmbar["turns"] == 200
    assert llmbar["dead_letters"] == {"in_range": 0, "undated": 0, "by_reason": {}}

    page = render(llmbar)
    assert agreement_row(page, "gpt-4").startswith("<td>200</td><td>0.795</td>")
    assert "<td>0.590</td>" in agreement_row(page, "gpt-4")
    assert agreement_row(page, "chatgpt").startswith("<td>200</td><td>0.700</td>")
    assert "<td>0.397</td>" in agreement_row(page, "chatgpt")


def test_trend_buckets_add_up_to_the_whole_range(llmbar: dict[str, Any]) -> None:
    # one turn a minute from 08:00 for 200 minutes; a two-day range is cut into hours from midnight
    assert llmbar["bucket_seconds"] == 3600
    assert len(llmbar["buckets"]) == 48
    for trend in llmbar["trends"]:
        points = trend["points"]
        assert [(p["bucket"], p["n"]) for p in points] == [(8, 60), (9, 60), (10, 60), (11, 20)]
        overall = by_judge(llmbar)[trend["judge_id"]]
        agreed = sum(round(p["percent_agreement"] * p["n"]) for p in points)
        assert agreed == round(overall["percent_agreement"] * overall["n"])
    gpt4 = next(t for t in llmbar["trends"] if t["judge_id"] == "gpt-4")
    assert sum(round(p["percent_agreement"] * p["n"]) for p in gpt4["points"]) == 159


def expected_agreement(until: datetime) -> dict[str, AgreementTracker]:
    """Judge vs human on turns before ``until``, straight from the files (an independent oracle)."""
    lines = {name: (LLMBAR / f"{name}.jsonl").read_bytes().splitlines() for name in FILE_NAMES}
    turns = {
        t["turn_id"]
        for t in map(orjson.loads, lines["chat_turns"])
        if datetime.fromisoformat(t["ts"]) < until
    }
    human = {h["turn_id"]: h["verdicts"][0]["label"] for h in map(orjson.loads, lines["human_labels"])}
    trackers: dict[str, AgreementTracker] = {}
    for v in map(orjson.loads, lines["judge_verdicts"]):
        if v["turn_id"] in turns:
            trackers.setdefault(v["judge_id"], AgreementTracker()).update(
                v["verdicts"][0]["label"], human[v["turn_id"]]
            )
    return trackers


FILE_NAMES = ("chat_turns", "judge_verdicts", "human_labels")


def test_range_keeps_turns_by_their_event_time() -> None:
    until = START + timedelta(hours=1)
    data = llmbar_report(START, until)
    expected = expected_agreement(until)
    rows = by_judge(data)
    for judge, tracker in expected.items():
        assert tracker.n == 60
        assert rows[judge]["n"] == 60
        assert rows[judge]["percent_agreement"] == pytest.approx(tracker.percent_agreement, abs=1e-12)
        assert rows[judge]["cohen_kappa"] == pytest.approx(tracker.cohen_kappa, abs=1e-12)
    assert data["turns"] == 60
    # records by their own time: the labels are stamped a day later, yet count for their turns above
    assert data["events"]["chat_turns"] == 60
    assert data["events"]["judge_verdicts"] == 120
    assert data["events"]["human_labels"] == 0
    assert data["bucket_seconds"] == 300


def test_range_before_every_turn_is_empty() -> None:
    data = llmbar_report(START - timedelta(days=1), START)
    assert data["agreement"] == [] and data["trends"] == [] and data["turns"] == 0
    assert data["events"]["chat_turns"] == 0
    page = render(data)
    assert "No judge/human pairs in the range." in page


def test_no_chat_text_even_when_records_keep_it() -> None:
    data = llmbar_report(DAY, DAY + timedelta(days=2), text_redaction="keep")
    page = render(data)
    turn = orjson.loads((LLMBAR / "chat_turns.jsonl").read_bytes().splitlines()[0])
    assert turn["user_text"][:40] not in page
    assert turn["response_text"][12:60] not in page
    assert "user_text" not in json.dumps(data) and "response_text" not in json.dumps(data)


def test_page_loads_nothing_from_outside(llmbar: dict[str, Any]) -> None:
    page = render(llmbar)
    assert "http://" not in page and "https://" not in page
    assert not re.search(r"""\b(src|href|action|srcset)\s*=""", page, re.IGNORECASE)
    assert not re.search(r"<(link|img|iframe|object|embed)\b|@import|url\(", page, re.IGNORECASE)
    assert page.count("<script>") == 1
    csp = re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert csp and html.unescape(csp.group(1)).startswith("default-src 'none'; ")
    for title in SECTIONS.values():
        assert f"<h2>{title}</h2>" in page


def test_every_value_is_escaped(llmbar: dict[str, Any]) -> None:
    hostile = "<script>alert(1)</script>"
    data = json.loads(json.dumps(llmbar))
    data["top_segments"] = [
        {
            "segment": "journey",
            "segment_value": hostile,
            "category": 'unsafe"><b>',
            "defective_turns": 3,
            "turns": 10,
            "rate": 0.3,
            "interval": [0.1, 0.6],
            "overall_rate": 0.1,
            "excess": 1.0,
        }
    ]
    data["vendors"] = [
        {
            "vendor_id": hostile,
            "labels": 1,
            "annotators": 1,
            "gold_labels": 0,
            "latency_median_seconds": 5.0,
            "latency_p90_seconds": 5.0,
            "gold_accuracy": None,
            "consensus_agreement": None,
            "judge_agreement": {hostile: {"n": 1, "rate": 1.0, "interval": [0.2, 1.0]}},
        }
    ]
    data["vendor_view"] = {"vendors": [{"vendor_id": hostile, hostile: "<img src=x onerror=alert(1)>"}]}
    data["source"] = hostile
    page = render(data)
    assert page.count("<script>") == 1  # only the page's own
    assert "<img" not in page and "<b>" not in page
    assert page.count("&lt;script&gt;alert(1)&lt;/script&gt;") >= 5
    assert "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "unsafe&quot;&gt;&lt;b&gt;" in page


def test_naive_or_reversed_range_is_rejected(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConvowatchError, match="no UTC offset"):
        TimeRange(datetime(2026, 11, 2), DAY)  # noqa: DTZ001 - the point of the test
    with pytest.raises(ConvowatchError, match="must be before"):
        TimeRange(DAY, DAY)
    out = tmp_path / "r.html"
    args = ["report", "--input", str(LLMBAR), "--out", str(out)]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--since", "2026-11-02T00:00:00", "--until", "2026-11-03T00:00:00Z"])
    assert exc.value.code == 2
    assert "no UTC offset" in capsys.readouterr().err
    assert main([*args, "--since", "2026-11-03T00:00:00Z", "--until", "2026-11-02T00:00:00Z"]) == 1
    assert "must be before --until" in capsys.readouterr().err
    assert not out.exists()


def test_cli_writes_the_page(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "audit" / "report.html"
    since, until = "2026-11-02T00:00:00+00:00", "2026-11-04T00:00:00Z"
    argv = ["report", "--since", since, "--until", until, "--input", str(LLMBAR), "--out", str(out)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["turns"] == 200 and printed["out"] == str(out)
    assert agreement_row(out.read_text(encoding="utf-8"), "gpt-4").startswith("<td>200</td><td>0.795</td>")
    # the per-stream files, as ``convowatch replay`` takes them, give the same page
    files = [
        f"--{flag}={LLMBAR / name}.jsonl"
        for flag, name in zip(("chats", "verdicts", "labels"), FILE_NAMES, strict=True)
    ]
    out2 = tmp_path / "report2.html"
    assert main(["report", "--since", since, "--until", until, *files, "--out", str(out2)]) == 0
    assert agreement_row(out2.read_text(encoding="utf-8"), "gpt-4") == agreement_row(out.read_text(), "gpt-4")
    assert main([*argv[:5], "--out", str(out)]) == 1
    assert "exactly one source" in capsys.readouterr().err


# -- generated traffic with an incident: defects, segments, vendors, versions ---------------------------


@pytest.fixture(scope="module")
def incident_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """90 minutes of seeded traffic; after 45 driver-v7 fails safety on 15% of driver_support turns."""
    out = tmp_path_factory.mktemp("incident")
    generator = TrafficGenerator(
        seed=5,
        rate=1.5,
        label_share=0.3,
        incident=Incident(2700, "driver-v7", "driver_support", "safety", 0.15),
    )
    files = {name: (out / f"{name}.jsonl").open("wb") for name in (*FILE_NAMES, "signals")}
    for _, stream, event in generator.records(5400, drain=True):
        files[stream].write(orjson.dumps(event) + b"\n")
    for handle in files.values():
        handle.close()
    return out


def incident_report(directory: Path, since: datetime, until: datetime) -> dict[str, Any]:
    return audit(Settings(), TimeRange(since, until), file_items(directory_inputs(directory)), "generated")


def test_incident_segment_tops_the_failing_segments(incident_dir: Path) -> None:
    middle = START + timedelta(minutes=45)
    before = incident_report(incident_dir, START, middle)
    after = incident_report(incident_dir, middle, middle + timedelta(minutes=45))
    top = after["top_segments"][0]
    assert (top["category"], top["excess"] > 1.5) == ("unsafe", True)
    assert (top["segment"], top["segment_value"]) in {
        ("journey", "driver_support"),
        ("model_version", "driver-v7"),
    }
    unsafe_before = [r for r in before["top_segments"] if r["category"] == "unsafe"]
    assert all(r["excess"] is None or r["excess"] < 1.5 for r in unsafe_before)

    # the judge's safety defect rate on driver_support jumps; intervals do not overlap
    def safety(data: dict[str, Any]) -> dict[str, Any]:
        return next(
            r for r in data["defect_rates"] if r["dimension"] == "safety" and r["journey"] == "driver_support"
        )

    assert safety(before)["interval"][1] < safety(after)["interval"][0]
    page = render(after)
    assert 'data-chart="top-segments"' in page and 'data-chart="defect-rates"' in page


def test_vendor_scorecards_count_labels_of_turns_in_range(incident_dir: Path) -> None:
    since, until = START + timedelta(minutes=20), START + timedelta(minutes=70)
    data = incident_report(incident_dir, since, until)
    turns = {
        t["turn_id"]: datetime.fromisoformat(t["ts"])
        for t in map(orjson.loads, (incident_dir / "chat_turns.jsonl").read_bytes().splitlines())
    }
    latencies: dict[str, list[float]] = {}
    for label in map(orjson.loads, (incident_dir / "human_labels.jsonl").read_bytes().splitlines()):
        turn_ts = turns.get(label["turn_id"])
        if turn_ts is not None and since <= turn_ts < until:
            lag = (datetime.fromisoformat(label["ts"]) - turn_ts).total_seconds()
            latencies.setdefault(label["vendor_id"], []).append(max(lag, 0.0))
    vendors = {v["vendor_id"]: v for v in data["vendors"]}
    assert set(vendors) == set(latencies) == {"vendor-a", "vendor-b"}
    for vendor, lags in latencies.items():
        assert vendors[vendor]["labels"] == len(lags)
        lags.sort()
        assert vendors[vendor]["latency_p90_seconds"] == pytest.approx(lags[math.ceil(0.9 * len(lags)) - 1])
        assert vendors[vendor]["latency_median_seconds"] == pytest.approx(
            lags[math.ceil(0.5 * len(lags)) - 1], abs=1e-6
        )
        assert abs(vendors[vendor]["latency_median_seconds"] - statistics.median(lags)) < 60
        assert set(vendors[vendor]["judge_agreement"]) == {"judge-gpt"}
    assert data["versions"], "the rollout compares shopper-v41 with shopper-v42"
    assert {r["decision"] for r in data["versions"]} <= {"continue", "better", "worse"}


def test_a_range_with_no_human_label_yet_renders(incident_dir: Path, tmp_path: Path) -> None:
    # the last hour, or verdicts without labels: no defect rate has an estimate; the chart's axis was 0 wide
    out = tmp_path / "report.html"
    chats, verdicts = incident_dir / "chat_turns.jsonl", incident_dir / "judge_verdicts.jsonl"
    files = [f"--chats={chats}", f"--verdicts={verdicts}"]
    since, until = START.isoformat(), (START + timedelta(hours=1)).isoformat()
    assert main(["report", "--since", since, "--until", until, *files, "--out", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert 'data-chart="defect-rates"' not in page and ">nan" not in page.lower()


def test_defects_of_turns_never_received_are_counted_apart_from_the_shares(tmp_path: Path) -> None:
    at = START + timedelta(minutes=1)
    fails = [verdict("relevance", "fail")]
    (tmp_path / "chat_turns.jsonl").write_bytes(orjson.dumps(chat_turn(turn_id="t1", ts=at.isoformat())))
    verdicts = [
        judge_verdict(turn_id=t, ts=(at + timedelta(seconds=5)).isoformat(), verdicts=fails)
        for t in ("t1", "lost-1", "lost-2")
    ]
    (tmp_path / "judge_verdicts.jsonl").write_bytes(b"\n".join(map(orjson.dumps, verdicts)))
    data = audit(
        Settings(), TimeRange(START, START + timedelta(hours=1)), file_items(directory_inputs(tmp_path)), "t"
    )
    assert (data["defects"], data["defects_without_turn"]) == (3, 2)
    assert data["defective_turns"] == {"irrelevant": 1}  # of 1 turn: 100%, not 300%
    assert all(r["rate"] is None or r["rate"] <= 1 for r in data["top_segments"])
    assert "on turns never received" in render(data)


def test_an_annotators_labels_of_a_turn_in_two_records_are_one_label(tmp_path: Path) -> None:
    at = START + timedelta(minutes=1)
    turns = [chat_turn(turn_id=f"t{i}", ts=at.isoformat()) for i in range(3)]
    labels = [
        human_label(
            turn_id=f"t{i}", ts=(at + timedelta(minutes=m)).isoformat(), verdicts=[verdict(dim, "pass")]
        )
        for i in range(3)
        for m, dim in ((10, "relevance"), (20, "safety"))
    ]
    (tmp_path / "chat_turns.jsonl").write_bytes(b"\n".join(map(orjson.dumps, turns)))
    (tmp_path / "human_labels.jsonl").write_bytes(b"\n".join(map(orjson.dumps, labels)))
    data = audit(
        Settings(), TimeRange(START, START + timedelta(hours=1)), file_items(directory_inputs(tmp_path)), "t"
    )
    (vendor,) = data["vendors"]
    assert vendor["labels"] == 3  # not 6: the second record of each turn adds dimensions, not a label
    assert vendor["latency_p90_seconds"] == 600  # from each turn's first label


def test_a_vendor_sla_breach_on_turns_in_range_is_reported_though_dated_after_it(tmp_path: Path) -> None:
    # labels two days after their turns: the breach is dated by the labels, after the range
    turns, verdicts, labels = [], [], []
    for i in range(40):
        at = START + timedelta(minutes=i)
        turns.append(chat_turn(turn_id=f"t{i}", ts=at.isoformat()))
        verdicts.append(judge_verdict(turn_id=f"t{i}", ts=(at + timedelta(seconds=5)).isoformat()))
        late = (at + timedelta(days=2)).isoformat()
        labels.append(human_label(turn_id=f"t{i}", ts=late, annotator_id="a1", vendor_id="slowco"))
    for name, records in zip(FILE_NAMES, (turns, verdicts, labels), strict=True):
        (tmp_path / f"{name}.jsonl").write_bytes(b"\n".join(map(orjson.dumps, records)))
    data = audit(
        Settings(), TimeRange(START, START + timedelta(hours=1)), file_items(directory_inputs(tmp_path)), "t"
    )
    assert {"kind": "vendor_sla", "severity": "medium", "count": 1} in data["escalations"]


def test_agreement_axis_ticks_say_where_their_lines_are() -> None:
    page = str(line_chart("a", "t", ["x", "y"], [("s", [0.97, 0.99])], "agreement"))
    assert re.findall(r">([0-9.]+)</text>", page) == ["0.9", "0.925", "0.95", "0.975", "1"]


def test_a_vendors_gold_accuracy_counts_each_scored_label_once(tmp_path: Path) -> None:
    # 10 golden turns of one dimension, 9 labelled right: n 10 and its Wilson interval, not n 20 (the gold
    # view's all-dimensions row and its safety row are the same labels)
    at = START + timedelta(minutes=1)
    turns = [chat_turn(turn_id=f"t{i}", ts=at.isoformat()) for i in range(10)]
    labels = [
        human_label(
            turn_id=f"t{i}",
            ts=(at + timedelta(minutes=5)).isoformat(),
            vendor_id="vendor-x",
            verdicts=[verdict("safety", "fail" if i == 0 else "pass")],
        )
        for i in range(10)
    ]
    golden = tmp_path / "golden.jsonl"
    golden.write_bytes(
        b"\n".join(orjson.dumps({"turn_id": f"t{i}", "labels": {"safety": "pass"}}) for i in range(10))
    )
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / "chat_turns.jsonl").write_bytes(b"\n".join(map(orjson.dumps, turns)))
    (inputs / "human_labels.jsonl").write_bytes(b"\n".join(map(orjson.dumps, labels)))
    data = audit(
        Settings(golden=golden),
        TimeRange(START, START + timedelta(hours=1)),
        file_items(directory_inputs(inputs)),
        "t",
    )
    (vendor,) = data["vendors"]
    assert vendor["gold_accuracy"]["n"] == 10
    assert vendor["gold_accuracy"]["rate"] == pytest.approx(0.9)
    assert vendor["gold_accuracy"]["interval"] == pytest.approx(list(wilson_interval(9, 10)))
