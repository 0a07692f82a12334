"""The ``version_regression`` escalation's parts that need no view: its kind and severity, where its test is
(:class:`TestKey`, also the address of the test's gauges), the test's figures (also the rows of report.json),
the escalation's record and summary, and the open regressions whose comparison went silent
(:class:`SilentComparisons`). The views are in ``version_common.py``.

A regression resolves when its two versions stop serving the journey together, which turns of the journey
show. Until 2026-11-26 one open when the comparison's turns all stopped (a judge replaced, a journey retired)
stayed open for good: the comparison kept the pair live in its state, the idle drop kept it (its regression
was open), and a restart sent the escalation to Alertmanager again. Now a comparison with a regression open
and no turn for :data:`SILENCE_SECONDS` of the worker's clock is closed (its pairs end, the regression
resolves with ``closed_without_traffic``), then dropped when idle. A week, as perceptual drifts wait
(``streams/views/perceptual_silence.py``): a comparison's turns are the judge's verdicts (the outcome tests':
the turns), which come as the scores do; counted from the newest turn's event time, which the comparison
keeps, on the clock of the view (see ``streams/views/spike_silence.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from detectors.msprt import LiveVersionPairs
from streams.aggregate import Aggregator
from streams.emit import UNKNOWN_SEGMENT, iso
from streams.policy import escalation_id
from streams.views.spike_silence import SilentForPeriod

KIND = "version_regression"
SEVERITY = "high"
#: How long a comparison with a regression open has had no turn before it is closed (the worker's clock).
SILENCE_SECONDS = 7 * 86400.0

#: A test's figures in evidence and report rows, in order (properties of the test).
FIGURES: tuple[str, ...] = (
    "n_control",
    "n_treatment",
    "control_rate",
    "treatment_rate",
    "lift",
    "interval",
    "p_value",
    "decision",
    "decided_at",
)


def figures(test: Any, names: tuple[str, ...] = FIGURES) -> dict[str, Any]:
    """The test's figures ``names``, JSON-safe (NaN becomes None, tuples lists)."""
    out: dict[str, Any] = {}
    for name in names:
        value = getattr(test, name)
        if isinstance(value, float) and math.isnan(value):
            value = None
        elif isinstance(value, tuple):
            value = list(value)
        out[name] = value
    return out


def report_rows(
    scope: list[str],
    comparison: LiveVersionPairs,
    tests: list[tuple[str, str, str, Any]],
    scope_names: tuple[str, ...],
    names: tuple[str, ...] = FIGURES,
) -> list[dict[str, Any]]:
    """report.json's rows of ``comparison``'s ``tests`` ((control, treatment, dimension, test) each): the
    scope's parts by ``scope_names``, the dimension if any, the pair, whether it is live, and the figures
    ``names``."""
    live = comparison.live_pairs
    rows = []
    for control, treatment, dim, test in tests:
        row: dict[str, Any] = dict(zip(scope_names, scope, strict=True))
        if dim:
            row["dimension"] = dim
        pair = {"control": control, "treatment": treatment, "live": [control, treatment] in live}
        rows.append({**row, **pair, **figures(test, names)})
    return rows


class TestKey(NamedTuple):
    """Where a test is: its comparison's scope (two key parts), its dimension (``""`` for the single test of
    a pair) and its pair of versions."""

    scope: tuple[str, str]
    dim: str
    control: str
    treatment: str
    episode: int = 1  # the pair's time live together (LiveVersionPairs.episode)
    created: float | None = None  # the comparison's first turn (LiveVersionPairs.created)


def regression_text(
    test: Any,
    at: TestKey,
    journey: str,
    alpha: float,
    firing: bool,
    where: str = "",
    closed: str = "",
    rates: str = "defect rate {t} against {c}",
    note: str = "",
) -> str:
    """An escalation's summary: ``where`` follows the journey, ``rates`` words the two rates, ``note`` ends
    the interval's parenthesis; resolved, ``closed`` names the comparison."""
    control, treatment = at.control, at.treatment
    if not firing:
        return (
            f"Model versions {control} and {treatment} no longer serve journey {journey} together: "
            f"{closed}comparison closed ({treatment} was worse, lift {test.lift:+.2%})"
        )
    low, high = test.interval
    rates = rates.format(t=f"{test.treatment_rate:.2%}", c=f"{test.control_rate:.2%}")
    return (
        f"Model version {treatment} is worse than {control} in journey {journey}{where}: {rates}, lift "
        f"{test.lift:+.2%} (always-valid {1 - alpha:.0%} interval {low:+.2%} to {high:+.2%}{note}), "
        f"p = {test.p_value:.2g}"
    )


def regression_record(
    key: str,
    head: dict[str, Any],
    at: TestKey,
    figures_of_test: dict[str, Any],
    obs: dict[str, Any],
    firing: bool,
    text: str,
) -> dict[str, Any]:
    """The escalation ``key`` of a test (firing or resolved, at ``obs``: its ``ts``, ``turn_id``, and
    ``closed_without_traffic``) with the summary ``text``; evidence: ``head`` (with the journey), the pair,
    and ``figures_of_test`` (the test's figures and parameters)."""
    # a pair live again after it ended is tested afresh: its regression is a new escalation; so is one of
    # a comparison dropped when idle and made again (episode 1 again)
    eid = escalation_id(KIND, key if at.episode == 1 else f"{key}|{at.episode}", at.created)
    return {
        "schema_version": 1,
        "escalation_id": eid,
        "kind": KIND,
        "severity": SEVERITY,
        "status": "firing" if firing else "resolved",
        "revision": 1 if firing else 2,
        "dimension": at.dim or None,
        "segment": {**UNKNOWN_SEGMENT, "journey": head["journey"], "model_version": at.treatment},
        "event_time": iso(obs["ts"]),
        "turn_ids": [] if obs["turn_id"] is None else [obs["turn_id"]],
        "summary": text,
        "evidence": {
            **head,
            "control": at.control,
            "treatment": at.treatment,
            **figures_of_test,
            "closed_without_traffic": bool(obs.get("closed_without_traffic")),
        },
    }


class SilentComparisons(SilentForPeriod):
    """The worker's clock, the comparisons with a regression open (``is_open``: the view's), and which of
    them have had no turn for ``silence_seconds`` (:class:`~streams.views.spike_silence.SilentForPeriod`),
    counted from their newest turn's event time; each written to the changelog partition ``partition`` gives
    (the view's owners: a judge's shard, or the observation partition itself)."""

    kind = LiveVersionPairs
    looks = "open regressions"

    def __init__(
        self,
        silence_seconds: float,
        is_open: Callable[[Any], bool],
        partition: Callable[[Aggregator, str], int | None],
    ) -> None:
        super().__init__(silence_seconds)
        self._is_open = is_open
        self._partition = partition

    def is_open(self, detector: Any) -> bool:
        return self._is_open(detector)

    def partition(self, aggregator: Aggregator, key: str) -> int | None:
        return self._partition(aggregator, key)

    def arrived(self, detector: Any) -> float | None:
        last_seen: float | None = detector.last_seen
        return last_seen

    def stamp(self, detector: Any, now: float) -> None:
        """Nothing: a comparison without a turn has no test, so none open."""
