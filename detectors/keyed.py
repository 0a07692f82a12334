"""Many detectors of one class under one aggregate, one per string key (a dimension, a model version...).

Updating several small detectors through one keyed aggregate costs one state lookup instead of one per
detector, which matters on paths that see every judged turn. ``max_keys`` bounds the state: once that many
keys exist, new keys share the detector of :data:`OTHER`.
"""

from __future__ import annotations

from typing import Any, Self

from detectors.base import Detector
from detectors.windowed import resolve_detector

#: The key that keys beyond ``max_keys`` fold into.
OTHER = "other"


class KeyedDetectors(Detector):
    """A mergeable ``detector`` (class name, as for :class:`~detectors.EventTimeWindows`) per key.

    ``update(key, *args)`` forwards ``*args`` to the ``update`` of the key's detector, created with
    ``params`` on the key's first use; :meth:`at` gives the live detector for other methods (e.g.
    ``add_label``). ``merge`` adds another map key by key.

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

    def at(self, key: str) -> Any:
        """The live detector of ``key`` (of :data:`OTHER` when the map is full), created if missing."""
        inner = self._inner.get(key)
        if inner is None:
            if self.max_keys is not None and len(self._inner) >= self.max_keys - (OTHER not in self._inner):
                key = OTHER
                inner = self._inner.get(key)
            if inner is None:
                inner = self._inner[key] = self._class(**(self.params or {}))
        return inner

    def update(self, key: str, *args: Any) -> Self:
        if not isinstance(key, str):
            raise ValueError(f"key must be a string, got {key!r}")
        self.at(key).update(*args)
        return self

    def get(self, key: str) -> Any:
        """The detector of ``key`` or ``None`` (read-only use)."""
        return self._inner.get(key)

    @property
    def keys(self) -> list[str]:
        return sorted(self._inner)

    def items(self) -> list[tuple[str, Any]]:
        """``(key, detector)`` pairs, sorted by key."""
        return sorted(self._inner.items())

    def merge(self, other: KeyedDetectors) -> Self:
        """Merge ``other``'s detectors into this map key by key; returns ``self``."""
        self._check_mergeable(other)
        for key, theirs in other._inner.items():
            self.at(key).merge(self._class.from_dict(theirs.to_dict()))  # type: ignore[attr-defined]
        return self

    def to_dict(self) -> dict[str, Any]:
        return self._dict_with({"_inner": {k: d.to_dict()["state"] for k, d in self._inner.items()}})

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        keyed, state = cls._new_from(data, ("_inner",))
        inner_params = keyed.params or {}
        keyed._inner = {
            k: keyed._class.from_dict({"type": keyed._class.__name__, "params": inner_params, "state": s})
            for k, s in state["_inner"].items()
        }
        return keyed
