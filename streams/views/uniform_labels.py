"""Human labels as a uniform sample of the traffic, for the detectors that count them as events.

Review sampling (``streams/views/review.py``) requests turns with unequal inclusion probabilities ``pi``:
1 for a turn the judges fail as high-risk, about budget / traffic (scaled by priority) for the others,
never below ``CONVOWATCH_REVIEW_MIN_PROBABILITY``. The calibrated rates weight a label by ``1 / pi``; the
human source of ``defect_spike`` and ``judge_drift`` count each label as one Bernoulli event and cannot.
Among the labelled turns, the share the judges flagged follows the traffic (a sampler at 60 requests an hour
over a day of 1,000 to 3,000 turns an hour: 16% of requests at the quiet hours, 53% at the busy ones), and
with it the labelled defect and disagreement rates, which the detectors rightly reported as spikes (about
one a day, the true rate constant).

Those two views therefore take a labelled turn only if it falls in a sample drawn at one probability
``p`` for every turn: a label with ``pi > p`` is kept with probability ``p / pi``, so that its turn is kept
with probability ``pi * p / pi = p``, whatever ``pi`` was (Poisson sampling of a Poisson sample). ``p`` is
the sampler's floor, ``CONVOWATCH_REVIEW_MIN_PROBABILITY``: the only probability every turn is sure to have
(after an overspend at a busy hour the budget controller takes ordinary turns down to it), so the kept turns
are a uniform sample at every hour. A label with ``pi <= p`` (another floor) is kept. A label without
``pi`` was not sampled by convowatch (a vendor's sample, taken as uniform, as every label was before): kept.
A label of a turn the judges fail as high-risk has ``pi`` 1 whatever it copied (the turn is always requested,
again with ``pi`` 1 if a later verdict made it so): the join decides that, once, with the turn's escalation,
and publishes it with the label (``labelled``: ``effective_inclusion_probability``; pairs:
``inclusion_probability``), which is what the views read.

The draw is a keyed hash of the turn id, another key than the sampler's draw (so independent of it): a
replay and every worker decide the same, and both views keep the same turns.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.policy import judged_high_risk_fails_of
from streams.taxonomy import Taxonomy

#: BLAKE2b personalisation of the keep draw: independent of the review sampler's draw of the same turn.
_PERSON = b"convowatch/feed"


def keep_draw(turn_id: str) -> float:
    """A uniform number in [0, 1) fixed by ``turn_id``, independent of the review sampler's draw."""
    digest = hashlib.blake2b(turn_id.encode(), digest_size=8, person=_PERSON).digest()
    return int.from_bytes(digest, "big") / 2.0**64


@dataclass(frozen=True, slots=True)
class UniformLabels:
    """Which labelled turns a label-counting detector takes: a uniform sample at ``probability`` of the
    turns sampled with a known ``pi``, every turn sampled without one (see the module doc).

    >>> feed = UniformLabels(probability=0.01)
    >>> feed.keeps("t-1", None), feed.keeps("t-1", 0.005)  # no pi: a vendor's sample; below the floor
    (True, True)
    >>> sum(feed.keeps(f"t-{i}", 1.0) for i in range(100_000))  # pi 1: one in a hundred
    968
    """

    probability: float

    def __post_init__(self) -> None:
        p = self.probability
        if isinstance(p, bool) or not isinstance(p, int | float) or not 0.0 < p <= 1.0:
            raise ValueError(f"probability must be a number in (0, 1], got {p!r}")

    def keeps(self, turn_id: str, inclusion_probability: float | None) -> bool:
        """Whether the turn's labels count: kept with probability ``min(1, probability / pi)``."""
        pi = inclusion_probability
        return pi is None or pi <= self.probability or keep_draw(turn_id) * pi < self.probability


def labelled_probability(labelled: Mapping[str, Any], taxonomy: Taxonomy) -> float | None:
    """The inclusion probability of a ``labelled`` observation's turn, as the join decided it
    (``effective_inclusion_probability``: 1 if the judges fail the turn as high-risk, as its pairs weigh,
    else the ``pi`` its label copied). An observation without it (from a join of code before it, still in
    the observations topic or a join's kept outputs at an upgrade) is decided as that code decided it: by
    the join's rule (``streams.policy``) on the judges' labels it carries, with this worker's ``taxonomy``,
    so a replay across the upgrade keeps the same turns."""
    if "effective_inclusion_probability" in labelled:
        effective: float | None = labelled["effective_inclusion_probability"]
        return effective
    pi: float | None = labelled.get("inclusion_probability")
    if pi is None or pi >= 1.0:
        return pi
    judges = labelled.get("judges", {}).values()
    return 1.0 if judged_high_risk_fails_of(taxonomy, judges, bool(labelled.get("risk"))) else pi
