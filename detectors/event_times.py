"""When a detector's updates happened, in event time: for dropping idle detectors and for escalation ids."""

from __future__ import annotations

from typing import Self


class EventTimes:
    """Mixin for a detector whose updates may carry an event time: :attr:`created`, the first update's, and
    :attr:`last_seen`, the newest. The detector sets ``_created`` and ``_last_seen`` to None in ``_reset``
    and calls :meth:`_saw` in ``update`` before it counts the update in ``_n``. Both stay None for a
    detector whose updates brought no time, or one restored from state that did not record them (written
    before 2026-11-26).

    >>> from detectors.score_drift import ScoreDrift
    >>> drift = ScoreDrift().update(0.5, ts=7.0).update(0.5, ts=3.0).update(0.5, ts=9.0)
    >>> drift.created, drift.last_seen
    (7.0, 9.0)
    """

    _n: int
    _created: float | None
    _last_seen: float | None

    def _saw(self, ts: float) -> None:
        """Note the event time ``ts`` of the update being made (the first if ``_n`` is still 0)."""
        if self._n == 0:
            self._created = float(ts)
        if self._last_seen is None or ts > self._last_seen:
            self._last_seen = float(ts)

    def stamp(self, ts: float) -> Self:
        """Take event time ``ts`` as :attr:`last_seen` if there is none (state from before 2026-11-26): for
        its owner to count such a detector as idle from ``ts`` on.

        >>> from detectors.defect_rate_spike import DefectRateSpike
        >>> DefectRateSpike().stamp(5.0).update(False, ts=3.0).stamp(9.0).last_seen
        5.0
        """
        if self._last_seen is None:
            self._last_seen = float(ts)
        return self

    @property
    def last_seen(self) -> float | None:
        """The newest event time an update brought (None: none did, or state from before 2026-11-26)."""
        return self._last_seen

    @property
    def created(self) -> float | None:
        """The event time of the first update (None: it had none, or the detector is from state that did not
        record it, written until 2026-11-26).

        >>> from detectors.defect_rate_spike import DefectRateSpike
        >>> DefectRateSpike().update(False, ts=7.0).update(False, ts=3.0).created
        7.0
        """
        return self._created
