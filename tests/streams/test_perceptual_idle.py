"""Perceptual drift detectors gone idle are dropped, and their model versions and score names give up their
room in the judge's guards.

Until 2026-11-26 a judge's first 20 model versions and score names held their detectors and their room for
good: after turnover every new model version shared the ``other`` detector.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detectors.score_drift import ScoreDrift
from streams.emit import SEP
from streams.metrics import Metrics
from streams.views.perceptual import PerceptualView
from tests.support.restartable import RestartableView

DAY = 86400.0
JUDGE = "vlm-judge"
NEVER = 1e12  # idle_seconds of a view that drops nothing, as until 2026-11-26
SMALL = {"reference_size": 20, "window_size": 10, "check_every": 5, "horizon": 1_000}


class Worker(RestartableView):
    """The perceptual view over an aggregator whose state is stored as JSON, so that it can restart."""

    def __init__(
        self, idle_seconds: float | None = None, max_keys: int = 20, silence_seconds: float | None = None
    ) -> None:
        # None: the view's default (also on code from before idle detectors were dropped)
        self.settings: dict[str, Any] = {**SMALL, "max_keys": max_keys}
        if idle_seconds is not None:
            self.settings["idle_seconds"] = idle_seconds
        if silence_seconds is not None:
            self.settings["silence_seconds"] = silence_seconds
        super().__init__(seed=5)

    def make_view(self, metrics: Metrics) -> PerceptualView:
        return PerceptualView(metrics, **self.settings)

    def turn(self, ts: float, version: str, score: str = "artifact", alignment: float = 0.7) -> None:
        """A verdict on an image of ``version`` with scores ``score`` and ``prompt_alignment`` (around
        ``alignment``)."""
        self.offset += 1
        rng = self.rng
        self.aggregator.apply(
            {
                "kind": "judged",
                "judge_id": JUDGE,
                "turn_id": f"t{self.offset}",
                "ts": ts,
                "labels": {"relevance": "pass"},
                "segment": {"journey": "creative", "model_version": version, "modality": "image"},
                "scores": {score: rng.betavariate(2, 18), "prompt_alignment": rng.gauss(alignment, 0.02)},
                "src": ["judge_verdicts:0", self.offset, 0],
            }
        )

    def detector(self, version: str, score: str = "prompt_alignment") -> ScoreDrift | None:
        detector = self.aggregator.detector(SEP.join(["perceptual", JUDGE, "image", version, score]))
        assert detector is None or isinstance(detector, ScoreDrift)
        return detector

    def detector_keys(self) -> list[str]:
        return sorted(k for k, _ in self.aggregator.records("perceptual"))

    def versions(self) -> set[str]:
        """The model versions the judge's detectors are kept under."""
        return {k.split(SEP)[3] for k in self.detector_keys()}

    def version_label(self, version: str) -> str:
        """The model version a verdict on ``version`` is kept under now (``other`` past the guard)."""
        return self.view.guards(JUDGE, "model_version").unless_folded(version) or "other"

    def state(self, prefix: str = "perceptual") -> dict[str, Any]:
        return super().state(prefix)


def _turnover(
    worker: Worker, versions: int = 30, days: int = 3, restart_at: float | None = None
) -> list[set[str]]:
    """``main`` all along and v1 to v<versions> in turn, ``days`` days each (4 verdicts a day of each), a
    restart before the first verdict at or after ``restart_at``; the versions kept on each one's last day."""
    kept = []
    for v in range(1, versions + 1):
        for hour in range(0, 24 * days, 6):
            ts = days * (v - 1) * DAY + hour * 3600.0
            if restart_at is not None and ts >= restart_at:
                worker.restart()
                restart_at = None
            worker.turn(ts, "main")
            worker.turn(ts + 60.0, f"v{v}")
        kept.append(worker.versions())
    return kept


def test_a_new_model_version_after_turnover_gets_its_own_detectors() -> None:
    worker = Worker()
    kept = _turnover(worker)  # v1..v30 over three months
    for v, versions in enumerate(kept, start=1):
        assert f"v{v}" in versions, v
    # at the end: main and the versions seen within the last 30 days (and a day: looked for daily)
    assert worker.versions() == {"main"} | {f"v{v}" for v in range(20, 31)}
    assert worker.version_label("v30") == "v30"
    report = worker.view.report(worker.aggregator)["perceptual"]
    assert {
        (row["model_version"], row["score"], row["n"]) for row in report if row["model_version"] == "v30"
    } == {
        ("v30", "artifact", 12),
        ("v30", "prompt_alignment", 12),
    }

    forever = Worker(idle_seconds=NEVER)  # what happened until 2026-11-26
    before = _turnover(forever)
    assert before[-1] == {"main", "other"} | {f"v{v}" for v in range(1, 20)}
    assert forever.version_label("v30") == "other"


def test_a_new_score_name_after_turnover_gets_its_own_detectors() -> None:
    def renames(worker: Worker) -> list[str]:
        """The judge renames its second score every 3 days, s1..s30; the score the view keeps each under."""
        kept = []
        for day in range(90):
            for hour in range(0, 24, 6):
                worker.turn(day * DAY + hour * 3600.0, "main", score=f"s{day // 3 + 1}")
            kept.append(worker.view.guards(JUDGE, "score").unless_folded(f"s{day // 3 + 1}") or "other")
        return kept

    worker = Worker()
    assert renames(worker) == [f"s{day // 3 + 1}" for day in range(90)]
    assert {k.split(SEP)[4] for k in worker.detector_keys()} == {"prompt_alignment"} | {
        f"s{n}" for n in range(20, 31)
    }
    before = renames(Worker(idle_seconds=NEVER))  # until 2026-11-26
    assert before[-1] == "other" and before.index("other") == 3 * 19


def test_active_detectors_are_those_of_a_run_that_drops_nothing() -> None:
    worker, forever = Worker(), Worker(idle_seconds=NEVER)
    _turnover(worker)
    _turnover(forever)
    kept, never_dropped = worker.state(), forever.state()
    main = {k for k in kept if k.split(SEP)[3] == "main"}
    assert len(main) == 2 and main <= never_dropped.keys()
    assert set(kept) - set(never_dropped) == {
        SEP.join(["perceptual", JUDGE, "image", f"v{v}", score])
        for v in range(20, 31)
        for score in ("artifact", "prompt_alignment")
    }
    for name in main:
        assert kept[name] == never_dropped[name], name  # byte-identical: values, times, positions


@pytest.mark.parametrize(
    "restart_at", [37 * DAY + 13 * 3600.0, 46 * DAY + 1 * 3600.0, 52 * DAY + 19 * 3600.0]
)
def test_a_restarted_worker_drops_as_the_one_before_it(restart_at: float) -> None:
    # room for 3 versions, each 10 days long: a new one comes while the one before the last still holds its
    # room, and takes it when a look drops that one; a restart in the middle of a day must not look earlier
    once, restarted = Worker(max_keys=3), Worker(max_keys=3)
    _turnover(once, versions=9, days=10)
    _turnover(restarted, versions=9, days=10, restart_at=restart_at)
    assert "other" in {k.split(SEP)[3] for k in once.state()}  # the room was full at times
    assert restarted.state() == once.state()
    assert restarted.version_label("v10") == once.version_label("v10")


def test_a_detector_in_alarm_is_kept_however_idle_until_its_drift_closes() -> None:
    # idle after half an hour; its drift closes after an hour without scores (perceptual_silence.py; a week
    # by default), and the next look drops it (until 2026-11-26 nothing closed it: kept, and sent again)
    worker = Worker(idle_seconds=1800.0, silence_seconds=3600.0)
    for n in range(40):
        worker.turn(n * 60.0, "m-1", alignment=0.7 if n < 20 else 0.3)
    drifted = worker.detector("m-1")
    assert drifted is not None and drifted.in_alarm
    last = 39 * 60.0
    for minute in range(1, 60):  # m-2 only, within the hour
        worker.turn(last + minute * 60.0, "m-2")
    assert worker.detector("m-1", "artifact") is None  # idle, and not in alarm: dropped
    drifted = worker.detector("m-1")
    assert drifted is not None and drifted.in_alarm
    escalations = list(
        worker.view.open_escalations(worker.aggregator, worker.detector_keys(), lambda judge: True, last)
    )
    assert [value["segment"]["model_version"] for _, value in escalations] == ["m-1"]
    for minute in range(60, 120):
        worker.turn(last + minute * 60.0, "m-2")
    assert worker.detector("m-1") is None
    assert (
        list(worker.view.open_escalations(worker.aggregator, worker.detector_keys(), lambda j: True, 0.0))
        == []
    )


@pytest.mark.parametrize("restart", [False, True])
def test_no_room_is_given_up_while_the_other_detector_is_in_alarm(restart: bool) -> None:
    # m-3, past the room, feeds the "other" detectors: given m-1's room while other is in alarm, its verdicts
    # would leave it, and the alarm would never resolve. m-1's idle detectors are kept meanwhile: a restart
    # admits the values of the recovered detectors
    worker = Worker(idle_seconds=10 * DAY, max_keys=2)
    worker.turn(0.0, "m-1")
    for n in range(20):
        worker.turn(60.0 * n, "m-2")
        worker.turn(60.0 * n + 1, "m-3")
    assert worker.version_label("m-3") == "other"
    n = 0
    while not ((other := worker.detector("other")) is not None and other.in_alarm):
        n += 1
        worker.turn(n * 3600.0, "m-2")
        worker.turn(n * 3600.0 + 1, "m-3", alignment=0.3)
    assert n * 3600.0 < DAY
    for day in range(1, 15):  # m-1 idle for 14 days
        worker.turn(day * DAY, "m-2")
        worker.turn(day * DAY + 1, "m-3", alignment=0.3)
    kept = worker.detector("m-1")
    assert kept is not None and kept.last_seen == 0.0  # idle, and kept
    if restart:
        worker.restart()
    assert worker.version_label("m-4") == "other" and worker.version_label("m-3") == "other"

    ts, resolved = 15 * DAY, None
    while resolved is None:
        ts += 600.0
        worker.turn(ts, "m-3")
        other = worker.detector("other")
        assert other is not None and ts < 16 * DAY
        resolved = ts if not other.in_alarm else None
    worker.turn(17 * DAY, "m-2")  # the next look gives the room up
    assert worker.detector("m-1") is None
    assert worker.version_label("m-4") == "m-4"


def test_detectors_from_before_idle_times_were_kept_are_idle_from_the_first_look_on() -> None:
    # state from before 2026-11-26 has no event times: each detector is stamped at the first look for idle
    # ones after the upgrade (written, so a restart keeps the stamp) and dropped idle_seconds later
    worker = Worker(idle_seconds=10 * DAY)
    for version in ("m-1", "m-2"):
        worker.turn(0.0, version)
    worker.without_last_seen()
    m2 = worker.detector("m-2")
    assert m2 is not None and m2.last_seen is None
    assert ScoreDrift.from_dict(m2.to_dict()).last_seen is None
    worker.turn(5 * DAY + 3600.0, "m-1")  # the first look (as of its period's start, 5 days): m-2 stamped
    worker.restart()
    m2 = worker.detector("m-2")
    assert m2 is not None and m2.last_seen == 5 * DAY
    assert ScoreDrift.from_dict(orjson.loads(orjson.dumps(m2.to_dict()))).last_seen == 5 * DAY
    worker.turn(15 * DAY + 3600.0, "m-1")
    assert worker.versions() == {"m-1", "m-2"}
    worker.turn(16 * DAY + 3600.0, "m-1")
    assert worker.versions() == {"m-1"}
