"""Perceptual drifts, vendor SLA breaches and version regressions open in the state are given again after a
restart or a rebalance, as they were last published.

Nothing else sends them again before their next revision (a drift's or a regression's resolution, a
breach's re-publication an hour later): a restarted worker's sink started empty, and Alertmanager resolved
them after four re-send periods while they were still open. Each test drives the embedded pipeline through
an escalation's episodes and, after every step that publishes one, asks the views' ``open_escalations``
(as ``resend_open_alerts`` does) what is open.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas import Escalation
from streams.alertmanager_payload import alert_labels
from streams.config import Settings
from streams.metrics import Metrics
from streams.pipeline import Pipeline
from tests.streams import test_view_perceptual as perceptual
from tests.streams import test_view_vendors as vendors
from tests.streams import test_view_version_calibrated as calibrated
from tests.streams import test_view_version_outcomes as outcomes
from tests.streams import test_view_versions as versions
from tests.streams.test_open_alerts import keys, resent

#: Fields the state of perceptual drifts and version regressions does not keep (the turn that raised it)
TURN_FIELDS = ("event_time", "turn_ids")


def reopened(
    pipeline: Pipeline, kind: str, owns: Callable[[str], bool]
) -> dict[str, tuple[str, dict[str, Any]]]:
    """Escalation id -> (shard key, escalation) of every ``kind`` escalation the views' ``open_escalations``
    give for ``pipeline``'s aggregates, as ``resend_open_alerts`` asks them."""
    aggregator, at = pipeline.aggregator, time.time()
    found: dict[str, tuple[str, dict[str, Any]]] = {}
    for view in aggregator.views:
        open_escalations = getattr(view, "open_escalations", None)
        if open_escalations is None:
            continue
        for shard_key, value in open_escalations(aggregator, keys(pipeline), owns, at):
            if value["kind"] == kind:
                assert value["escalation_id"] not in found, "given twice"
                found[value["escalation_id"]] = (shard_key, value)
    return found


class Watched:
    """``pipeline``, whose ``process`` checks after each step that publishes ``kind`` escalations that the
    views give back every one still open, and only those: its latest published revision, from
    ``shard_key``, with the labels it was published with and, if that step published it, every field as
    published but ``unkept`` (what the state does not keep); and nothing to a worker without that shard."""

    def __init__(
        self,
        pipeline: Pipeline,
        monkeypatch: pytest.MonkeyPatch,
        kind: str,
        shard_key: str,
        unkept: tuple[str, ...] = (),
    ) -> None:
        self.pipeline, self.kind, self.shard_key, self.unkept = pipeline, kind, shard_key, unkept
        self.latest: dict[str, dict[str, Any]] = {}  # escalation id -> latest published revision
        #: (escalation id, status, revision) of every published revision checked
        self.checked: list[tuple[str, str, int]] = []
        self.sent_to_alertmanager = False
        process = pipeline.process

        def checked_process(*args: Any, **kwargs: Any) -> Any:
            out = process(*args, **kwargs)
            published = [e.value for e in out if e.topic == "escalations" and e.value["kind"] == kind]
            if published:
                self.check(published)
            return out

        monkeypatch.setattr(pipeline, "process", checked_process)

    def check(self, published: list[dict[str, Any]]) -> None:
        for value in published:
            self.latest[value["escalation_id"]] = value
        still_open = {eid: v for eid, v in self.latest.items() if v["status"] == "firing"}
        given = reopened(self.pipeline, self.kind, lambda shard_key: True)
        assert {eid: (shard, v["revision"]) for eid, (shard, v) in given.items()} == {
            eid: (self.shard_key, v["revision"]) for eid, v in still_open.items()
        }
        for eid, (_, value) in given.items():
            Escalation.model_validate(value)  # the published contract
            assert alert_labels(value) == alert_labels(still_open[eid])
            assert value["summary"].split(":")[0] == still_open[eid]["summary"].split(":")[0]
        for value in published:
            eid = value["escalation_id"]
            self.checked.append((eid, value["status"], value["revision"]))
            if value["status"] == "firing":
                again = given[eid][1]
                assert self._kept(again) == self._kept(value)
        assert reopened(self.pipeline, self.kind, lambda shard_key: shard_key != self.shard_key) == {}
        if still_open and not self.sent_to_alertmanager:  # once: through resend_open_alerts and a sink
            self.sent_to_alertmanager = True
            alerts = [a for a in resent(self.pipeline) if a["labels"]["kind"] == self.kind]
            assert sorted(a["labels"]["escalation_id"] for a in alerts) == sorted(still_open)
            assert {a["annotations"]["revision"] for a in alerts} == {
                str(v["revision"]) for v in still_open.values()
            }

    def _kept(self, value: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in value.items() if k not in self.unkept}


def test_an_open_perceptual_drift_is_given_again_at_its_episode_s_revision(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline, _ = perceptual._pipeline()
    watched = Watched(pipeline, monkeypatch, "perceptual_drift", "vlm-judge", TURN_FIELDS)

    def draw(rng: random.Random, i: int, segment: tuple[str, str]) -> dict[str, float]:
        scores = perceptual._usual(rng)
        if segment == perceptual.HOT and (700 <= i < 1_100 or 1_500 <= i < 1_900):
            scores["prompt_alignment"] = rng.gauss(0.7, 0.15)  # spread only, twice
        return scores

    perceptual._run(pipeline, perceptual._records(2_400, draw))
    assert [(status, revision) for _, status, revision in watched.checked] == [
        ("firing", 1),
        ("resolved", 2),
        ("firing", 3),
        ("resolved", 4),
    ]
    assert reopened(pipeline, "perceptual_drift", lambda shard_key: True) == {}


@pytest.fixture()
def vendor_pipeline(tmp_path: Path) -> Pipeline:
    """A pipeline with the SLAs and golden set of ``test_view_vendors``' world."""
    _, golden, _ = vendors._world()
    sla, golden_file = tmp_path / "vendor_sla.yaml", tmp_path / "golden.jsonl"
    sla.write_text(vendors.SLA)
    golden_file.write_bytes(b"\n".join(orjson.dumps({"turn_id": k, "labels": v}) for k, v in golden.items()))
    settings = Settings(vendor_sla=sla, golden=golden_file)
    return Pipeline(settings, Metrics(CollectorRegistry()))


def test_an_open_vendor_sla_breach_is_given_again_as_its_latest_revision(
    vendor_pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    # vendor-b breaches its turnaround and gold accuracy SLAs for two hours: each fires, is re-published
    # every 30 minutes of label time while it lasts, and resolves
    watched = Watched(vendor_pipeline, monkeypatch, "vendor_sla", "humans")
    records, _, _ = vendors._world()
    for offset, (_, _, stream, data) in enumerate(records):
        vendor_pipeline.process(stream, data, source_topic=stream.value, offset=offset)
    by_escalation: dict[str, list[tuple[str, int]]] = {}
    for eid, status, revision in watched.checked:
        by_escalation.setdefault(eid, []).append((status, revision))
    assert len(by_escalation) == 2
    for checked in by_escalation.values():
        assert len(checked) >= 3  # fired, re-published at least once, resolved
        assert checked == [("firing", r) for r in range(1, len(checked))] + [("resolved", len(checked))]
    assert reopened(vendor_pipeline, "vendor_sla", lambda shard_key: True) == {}


def test_an_open_version_regression_is_given_again_until_its_versions_stop_serving_together(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # v2 is worse, rolled back at 1,200 s, and back at 1,700 s: a second regression, still open at the end
    pipeline, _ = versions._pipeline(version_horizon_seconds=300)
    watched = Watched(pipeline, monkeypatch, "version_regression", "judge-a", TURN_FIELDS)
    versions._run(pipeline, canary_rate=0.10, turns=3_000, rollback_at=1_200, resume_at=1_700)
    first, resolved, again = watched.checked
    assert first[1:] == ("firing", 1) and resolved[1:] == ("resolved", 2) and again[1:] == ("firing", 1)
    assert first[0] == resolved[0] != again[0]
    assert list(reopened(pipeline, "version_regression", lambda shard_key: True)) == [again[0]]


def test_an_open_outcome_regression_is_given_again_from_its_journey_s_shard(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline, _ = outcomes._pipeline()
    watched = Watched(pipeline, monkeypatch, "version_regression", "shopper", TURN_FIELDS)
    outcomes._run(pipeline, canary_completed=0.65)
    assert [(status, revision) for _, status, revision in watched.checked] == [("firing", 1)]


def test_an_open_calibrated_regression_is_given_again_with_its_dimension(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pipeline, _ = calibrated._pipeline()
    watched = Watched(pipeline, monkeypatch, "version_regression", "judge-a", TURN_FIELDS)
    calibrated._run(pipeline, canary_rate=0.15)
    assert [(status, revision) for _, status, revision in watched.checked] == [("firing", 1)]
    [(_, value)] = reopened(pipeline, "version_regression", lambda shard_key: True).values()
    assert value["dimension"] == "relevance" and value["evidence"]["source"] == "calibrated"
