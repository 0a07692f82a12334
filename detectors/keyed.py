"""Many detectors of one class under one aggregate, one per string key (a dimension, a model version...).

Updating several small detectors through one keyed aggregate costs one state lookup instead of one per
detector, which matters on paths that see every judged turn. ``max_keys`` bounds the state: once that many
keys exist, new keys share the detector of :data:`OTHER`. A key updated with its event time keeps the newest
one, so that its owner can drop the detectors of keys gone idle (a retired model version) with
:meth:`KeyedDetectors.drop_idle`, and the room goes to the next new key.
"""

from __future__ import annotations

from typing import Any, Self

from detectors.base import Detector
from detectors.windowed import resolve_detector

#: The key that keys beyond ``max_keys`` fold into.
OTHER = "other"


class KeyedDetectors(Detector):
    """A mergeable ``detector`` (class name, as for :class:`~detectors.EventTimeWindows`) per key.

    ``update(key, *args, ts=None)`` forwards ``*args`` to the ``update`` of the key's detector, created with
    ``params`` on the key's first use; with ``ts`` (event time), :attr:`last_seen` keeps the newest one of
    the key the update went to. :meth:`at` gives the live detector for other methods (e.g. ``add_label``).
    ``merge`` adds another map key by key. :meth:`drop_idle` drops the detectors of keys gone idle.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(4)
    >>> by_version = KeyedDetectors("ClassAccuracy", max_keys=3)
    >>> for _ in range(600):
    ...     version = rng.choice(["v1", "v2", "v3", "v4"])
    ...     truth = rng.choice(["refund", "cancel"])
    ...     correct = rng.random() < (0.7 if version == "v2" else 0.9)
    ...     by_version = by_version.update(version, truth if correct else "other_intent", truth)
    >>> by_version.keys
    ['other', 'v2', 'v4']
    >>> {k: (d.n, round(d.accuracy, 3)) for k, d in by_version.items()}
    {'other': (300, 0.92), 'v2': (159, 0.711), 'v4': (141, 0.915)}

    Model versions that turn over, one a day: the detectors of idle ones give their room to new ones, where
    without :meth:`drop_idle` every version past the first two is counted as ``other``.

    >>> day = 86400.0
    >>> kept, forever = (KeyedDetectors("ClassAccuracy", max_keys=3) for _ in range(2))
    >>> for n in range(1, 7):
    ...     dropped = kept.drop_idle(now=n * day, idle_seconds=1.5 * day)
    ...     kept = kept.update(f"v{n}", "refund", "refund", ts=n * day)
    ...     forever = forever.update(f"v{n}", "refund", "refund", ts=n * day)
    >>> forever.keys, kept.keys, dropped
    (['other', 'v1', 'v2'], ['v5', 'v6'], ['v4'])
    >>> {key: seen / day for key, seen in kept.last_seen.items()}
    {'v5': 5.0, 'v6': 6.0}
    """

    def __init__(
        self,
        detector: str = "AgreementStats",
        params: dict[str, Any] | None = None,
        max_keys: int | None = None,
    ) -> None:
        if params is not None and not isinstance(params, dict):
            raise ValueError(f"params must be a dict of constructor arguments, got {params!r}")
        if max_keys is not None and (
            isinstance(max_keys, bool) or not isinstance(max_keys, int) or max_keys < 2
        ):
            raise ValueError(f"max_keys must be None or an integer >= 2, got {max_keys!r}")
        self.detector = detector
        self.params = params
        self.max_keys = max_keys
        self._class = resolve_detector(detector)
        self._class(**(params or {}))  # fails early on bad params
        self._reset()

    def _reset(self) -> None:
        self._inner: dict[str, Detector] = {}
        self._last_seen: dict[str, float] = {}  # keys updated with an event time: the newest one

    def _slot(self, key: str) -> str:
        """The key ``key`` is kept under (itself, or :data:`OTHER` when the map is full), its detector
        created if missing."""
        if key not in self._inner:
            if self.max_keys is not None and len(self._inner) >= self.max_keys - (OTHER not in self._inner):
                key = OTHER
            if key not in self._inner:
                self._inner[key] = self._class(**(self.params or {}))
        return key

    def at(self, key: str) -> Any:
        """The live detector of ``key`` (of :data:`OTHER` when the map is full), created if missing."""
        inner = self._inner.get(key)
        return inner if inner is not None else self._inner[self._slot(key)]

    def update(self, key: str, *args: Any, ts: float | None = None) -> Self:
        if not isinstance(key, str):
            raise ValueError(f"key must be a string, got {key!r}")
        inner: Any = self._inner.get(key)
        if inner is None:
            key = self._slot(key)
            inner = self._inner[key]
        inner.update(*args)
        if ts is not None:
            seen = self._last_seen.get(key)
            if seen is None or ts > seen:
                self._last_seen[key] = float(ts)
        return self

    def stamp(self, ts: float) -> Self:
        """Give the keys with no event time (updated without ``ts``, or state from before 2026-11-26) the
        event time ``ts``: idle from then on, for an owner that drops whole maps (a gold annotator's)."""
        for key in self._inner.keys() - self._last_seen.keys():
            self._last_seen[key] = float(ts)
        return self

    def drop_idle(self, now: float, idle_seconds: float) -> list[str]:
        """Drop the detectors of the keys last updated more than ``idle_seconds`` before ``now`` (event
        time), so that later new keys take their room; the dropped keys, sorted. A key with no event time
        (updated without ``ts``, or state from before 2026-11-26) is stamped ``now``: idle from then on.
        None of the detectors a map can hold (mergeable ones) has an alarm that dropping could lose."""
        self.stamp(now)
        dropped = sorted(key for key, seen in self._last_seen.items() if seen < now - idle_seconds)
        for key in dropped:
            del self._inner[key], self._last_seen[key]
        return dropped

    def get(self, key: str) -> Any:
        """The detector of ``key`` or ``None`` (read-only use)."""
        return self._inner.get(key)

    @property
    def keys(self) -> list[str]:
        return sorted(self._inner)

    def items(self) -> list[tuple[str, Any]]:
        """``(key, detector)`` pairs, sorted by key."""
        return sorted(self._inner.items())

    @property
    def last_seen(self) -> dict[str, float]:
        """Key -> the newest event time an update of it brought (keys without one: none did, or state from
        before 2026-11-26 not yet stamped by :meth:`drop_idle`)."""
        return dict(self._last_seen)

    def merge(self, other: KeyedDetectors) -> Self:
        """Merge ``other``'s detectors into this map key by key; returns ``self``."""
        self._check_mergeable(other)
        for key, theirs in other._inner.items():
            slot = self._slot(key)
            self._inner[slot].merge(self._class.from_dict(theirs.to_dict()))  # type: ignore[attr-defined]
            theirs_seen, ours_seen = other._last_seen.get(key), self._last_seen.get(slot)
            if theirs_seen is not None and (ours_seen is None or theirs_seen > ours_seen):
                self._last_seen[slot] = theirs_seen
        return self

    def to_dict(self) -> dict[str, Any]:
        return self._dict_with(
            {
                "_inner": {k: d.to_dict()["state"] for k, d in self._inner.items()},
                "_last_seen": dict(self._last_seen),
            }
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        keyed, state = cls._new_from(data, ("_inner", "_last_seen"))
        inner_params = keyed.params or {}
        keyed._inner = {
            k: keyed._class.from_dict({"type": keyed._class.__name__, "params": inner_params, "state": s})
            for k, s in state["_inner"].items()
        }
        keyed._last_seen = dict(state.get("_last_seen") or {})  # state from before 2026-11-26 has none
        return keyed
