"""The ``version_regression`` escalation's parts that need no view: its kind and severity, where its test is
(:class:`TestKey`, also the address of the test's gauges), the test's figures (also the rows of report.json)
and the escalation's summary. The escalation itself, and the views, are in ``version_common.py``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

KIND = "version_regression"
SEVERITY = "high"

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
