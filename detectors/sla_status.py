"""Which targets (a vendor's SLAs) are breached: episodes, revisions and when to re-publish a breach."""

from __future__ import annotations

import math
from typing import Any, Self

from detectors.base import Detector


class SlaStatus(Detector):
    """Open and closed targets (an SLA of a vendor, by name): breach episodes, revisions, re-publication.

    ``update(ts, name, breached, met=None)`` records one judgement at event time ``ts``: ``breached`` True
    opens a breach (or keeps it open), ``met`` True closes it, neither keeps it as it is (hysteresis: a
    judgement that the target is missed beyond doubt opens, one that it is met closes, one in between
    changes nothing); ``met`` defaults to ``not breached``, and ``breached`` None is not judged (nothing
    changes). :attr:`change` then says what to publish: ``"firing"`` (a new episode, revision 1),
    ``"updated"`` (still breached and ``republish_seconds`` since the last revision), ``"resolved"``, or
    ``None``.

    :meth:`forget` drops what is over: targets not breached that have not been judged for
    ``forget_after_seconds`` of event time (a vendor gone for good, or an SLA its vendor has no target for
    any more, judged no more once its breach closed); without it the status holds every target ever
    judged. One judged again after that starts afresh (episode 1), under a ``created`` time of its own that
    keeps its escalation ids apart from the earlier episodes'.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(2)
    >>> status, changes = SlaStatus(republish_seconds=600), []
    >>> for i in range(40):
    ...     breached = rng.random() < (0.95 if 10 <= i < 25 else 0.02)
    ...     status = status.update(300.0 * i, "vendor-b|turnaround", breached)
    ...     if status.change:
    ...         changes.append((i, status.change, status.status("vendor-b|turnaround")["revision"]))
    >>> changes[:4]
    [(10, 'firing', 1), (12, 'updated', 2), (14, 'updated', 3), (15, 'resolved', 4)]
    >>> changes[4:7]
    [(16, 'firing', 1), (18, 'updated', 2), (20, 'updated', 3)]
    >>> changes[7:]
    [(22, 'updated', 4), (24, 'updated', 5), (25, 'resolved', 6)]

    A judgement in between (neither breached nor met) neither opens nor closes an episode; an open breach
    stays open, re-published when due:

    >>> neither, breached, met = (False, False), (True, False), (False, True)
    >>> judged = [neither, breached, neither, neither, met, neither]
    >>> status = SlaStatus(republish_seconds=600)
    >>> [status.update(300.0 * i, "vendor-a|gold_accuracy", b, m).change for i, (b, m) in enumerate(judged)]
    [None, 'firing', None, 'updated', 'resolved', None]

    A target not judged for ``forget_after_seconds`` is forgotten once it is not breached; an open breach
    stays, however long its target goes unjudged:

    >>> status = SlaStatus(republish_seconds=600, forget_after_seconds=86400)
    >>> status = status.update(0.0, "vendor-a|turnaround", True).update(0.0, "vendor-b|turnaround", True)
    >>> status = status.update(600.0, "vendor-b|turnaround", False)
    >>> sorted(status.forget(90000.0).names), status.breached
    (['vendor-a|turnaround'], ['vendor-a|turnaround'])
    """

    def __init__(self, republish_seconds: float = 3600.0, forget_after_seconds: float = 30 * 86400.0) -> None:
        for name, value in (
            ("republish_seconds", republish_seconds),
            ("forget_after_seconds", forget_after_seconds),
        ):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"{name} must be positive, got {value!r}")
        self.republish_seconds = republish_seconds
        self.forget_after_seconds = forget_after_seconds
        self._reset()

    def _reset(self) -> None:
        # name -> {"breached", "episode", "revision", "since" (event time), "published" (event time),
        # "judged" (event time: last judged), "created" (event time; none in state from before 2026-11-26)}
        self._targets: dict[str, dict[str, Any]] = {}
        self._evaluated: float | None = None
        self._change: str | None = None

    def update(self, ts: float, name: str, breached: bool | None, met: bool | None = None) -> Self:
        if isinstance(ts, bool) or not isinstance(ts, int | float) or not math.isfinite(ts):
            raise ValueError(f"ts must be a finite number, got {ts!r}")
        if not isinstance(name, str) or not name or breached not in (True, False, None):
            raise ValueError(f"need a name and breached True, False or None, got {name!r}, {breached!r}")
        if met not in (True, False, None) or (met is not None and breached is None) or (met and breached):
            raise ValueError(f"met must be None, or True or False with breached not both, got {met!r}")
        met = met if met is not None else breached is False
        self._evaluated = ts if self._evaluated is None else max(self._evaluated, ts)
        self._change = None
        target = self._targets.get(name)
        if breached is None:
            return self
        if target is None:
            target = self._targets[name] = {
                "breached": False,
                "episode": 0,
                "revision": 0,
                "since": None,
                "published": None,
                "created": ts,
            }
        target["judged"] = ts if target.get("judged") is None else max(target["judged"], ts)
        if breached and not target["breached"]:
            target.update(breached=True, episode=target["episode"] + 1, revision=1, since=ts, published=ts)
            self._change = "firing"
        elif met and target["breached"]:
            target.update(breached=False, revision=target["revision"] + 1, published=ts)
            self._change = "resolved"
        elif target["breached"] and ts - target["published"] >= self.republish_seconds:
            target.update(revision=target["revision"] + 1, published=ts)  # breached, or not known either way
            self._change = "updated"
        return self

    def forget(self, ts: float) -> Self:
        """Drop every target not breached that was last judged more than ``forget_after_seconds`` before event
        time ``ts``. A target whose SLA was removed is judged no more once its breach closed, so it goes too,
        after the horizon: until then its view exports it at 0 (a series removed at once might never be
        scraped at 0). A target of state written before 2026-11-26 (no judgement time) counts as judged at
        ``ts``."""
        horizon = ts - self.forget_after_seconds
        for name, target in list(self._targets.items()):
            if target.get("judged") is None:
                target["judged"] = ts
            if not target["breached"] and target["judged"] < horizon:
                del self._targets[name]
        return self

    @property
    def names(self) -> list[str]:
        """Every target the status holds (breached or not), sorted."""
        return sorted(self._targets)

    @property
    def change(self) -> str | None:
        """What the last update did: ``firing``, ``updated``, ``resolved`` or ``None``."""
        return self._change

    @property
    def evaluated_at(self) -> float | None:
        """The newest event time judged at."""
        return self._evaluated

    @property
    def breached(self) -> list[str]:
        """Names currently breached, sorted."""
        return sorted(name for name, t in self._targets.items() if t["breached"])

    def status(self, name: str) -> dict[str, Any] | None:
        """A copy of ``name``'s state (``breached``, ``episode``, ``revision``, ``since``), or None."""
        target = self._targets.get(name)
        return dict(target) if target is not None else None
