"""Delivery and state under SIGKILL, in the style of Kafka Streams' EOS system tests.

A driver produces ~21,000 generated records (with a safety incident: hundreds of high-risk failures) at a
bounded rate while the test SIGKILLs the worker at seeded random points of its progress, three times, and
restarts it. A verifier then compares every output topic with an uninterrupted embedded run of the same
input (the oracle), and the agreement state the worker recovered with the oracle's.
"""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

from schemas import Stream
from streams.config import Settings
from streams.policy import escalation_id
from streams.topics import input_topics
from tests.reliability.harness import (
    BackgroundProducer,
    Worker,
    report,
    safety_fail_turns,
    traffic,
    worker_env,
)
from tests.support.broker import KafkaBroker
from tests.support.verify import (
    Oracle,
    TopicCheck,
    agreement_from_changelog,
    check_outputs,
    consumer_lag,
    embedded_oracle,
    summarise,
)
from tests.support.wait import wait_until

pytestmark = pytest.mark.reliability

SEED = 20261124
KILLS = 3


@dataclass
class CrashRun:
    records: list[tuple[Stream, bytes]]
    oracle: Oracle
    checks: dict[str, TopicCheck]
    agreement: list[dict[str, Any]]
    kills: list[dict[str, Any]]
    worker: Worker
    settings: Settings
    seconds: float


def _done(bootstrap: str, settings: Settings, oracle: Oracle, app_id: str) -> dict[str, TopicCheck] | None:
    inputs = list(input_topics(settings).values())
    if consumer_lag(bootstrap, app_id, [*inputs, settings.topic("internal.observations")]):
        return None
    checks = check_outputs(bootstrap, settings.topic_prefix, oracle)
    return checks if all(c.ok for c in checks.values()) else None


@pytest.fixture(scope="module")
def crash_run(kafka_broker: KafkaBroker, tmp_path_factory: pytest.TempPathFactory) -> Any:
    started = time.monotonic()
    tag = uuid.uuid4().hex[:8]
    prefix, app_id = f"crash-{tag}.", f"crash-app-{tag}"
    bootstrap = kafka_broker.bootstrap
    settings = Settings(broker=bootstrap, topic_prefix=prefix, app_id=app_id)
    records = traffic(SEED, duration_s=200)
    oracle = embedded_oracle(records, settings)

    producer = BackgroundProducer(settings, records, rate=1_000).start()
    worker = Worker(bootstrap, worker_env(prefix, app_id), tmp_path_factory.mktemp("crash") / "worker.log")
    rng = random.Random(SEED)
    kills = []
    try:
        worker.start()
        for n in range(KILLS):
            threshold = rng.randint(1_000, 5_000)  # records this incarnation processes before it dies
            wait_until(
                lambda t=threshold: worker.records_in() >= t,  # type: ignore[misc]
                timeout=90,
                interval=0.02,
                message=lambda: worker.log_tail(),
            )
            last_seen = worker.records_in()
            worker.kill()
            kills.append({"kill": n + 1, "after_records": last_seen, "produced_so_far": producer.sent})
            worker.start()
        producer.join()
        checks: dict[str, TopicCheck] = wait_until(
            lambda: _done(bootstrap, settings, oracle, app_id) or {},
            timeout=150,
            interval=1.0,
            message=lambda: summarise(check_outputs(bootstrap, prefix, oracle)) + "\n" + worker.log_tail(),
        )
        agreement = agreement_from_changelog(bootstrap, app_id)
        yield CrashRun(
            records, oracle, checks, agreement, kills, worker, settings, time.monotonic() - started
        )
    finally:
        worker.stop()


def test_sigkilled_worker_loses_no_output(crash_run: CrashRun) -> None:
    run = crash_run
    assert len(run.records) >= 20_000 and len(run.kills) == KILLS
    known = {escalation_id("high_risk_failure", t) for t in safety_fail_turns(run.records)}
    checks = run.checks
    escalated = {k.split("#")[0] for k in run.oracle.keys("escalations")}
    assert known and known <= escalated, "the oracle itself must escalate every safety failure"
    for check in checks.values():
        assert check.ok, summarise(checks)
        assert check.unique == check.expected  # after dedup by key: exactly the oracle's records
    # Each crash may publish again the outputs of the batch it interrupted (acknowledged in part), never those
    # of batches before it: the join's published marks tell the replay what reached the broker. Without
    # them every record read since the last commit published its outputs again (355 of 1,889 in one run).
    defects = checks["defects"]
    assert defects.raw - defects.unique <= 0.1 * defects.expected, summarise(checks)
    report(
        "sigkill",
        {
            "records": len(run.records),
            "kills": run.kills,
            "known_safety_escalations": len(known),
            "escalation_ids": len(escalated),
            "outputs": [c.summary() for c in checks.values()],
            "seconds": round(run.seconds, 1),
        },
    )


def test_state_after_crashes_equals_uninterrupted_run(crash_run: CrashRun) -> None:
    run = crash_run
    assert run.oracle.agreement, "the oracle found no judge/human pairs"
    assert run.agreement == run.oracle.agreement  # n, agreement, kappa and confusion, every judge/dimension
    # the join state too: every turn the uninterrupted run holds, no more
    assert run.worker.value("convowatch_join_pending_turns") == run.oracle.pending
    # the restarted worker exports the recovered figures (not only those it updated since)
    for row in run.oracle.agreement:
        labels = {"judge_id": row["judge_id"], "dimension": row["dimension"]}
        assert run.worker.value("convowatch_judge_agreement_pairs", **labels) == row["n"]
        ratio = run.worker.value("convowatch_judge_agreement_ratio", **labels)
        assert ratio == pytest.approx(row["percent_agreement"], abs=1e-12)
        kappa = run.worker.value("convowatch_judge_cohen_kappa", **labels)
        if row["cohen_kappa"] is None:
            assert kappa is not None and kappa != kappa  # NaN
        else:
            assert kappa == pytest.approx(row["cohen_kappa"], abs=1e-12)
    report(
        "state",
        {
            "agreement": [
                {k: r[k] for k in ("judge_id", "dimension", "n", "percent_agreement", "cohen_kappa")}
                for r in run.agreement
            ]
        },
    )
