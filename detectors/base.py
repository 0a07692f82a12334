"""The contract every detector follows (after river's ``base.DriftDetector``).

Constructor arguments are public attributes of the same name; running state is private, JSON-native
(dicts with string keys, lists, numbers) and created in ``_reset()``; ``update`` returns ``self``.
``to_dict``/``from_dict`` round-trip through JSON, so a detector lives in a Faust table or a file.
"""

from __future__ import annotations

import copy
import inspect
import pickle
from collections.abc import Iterable
from typing import Any, Self

from detectors.exceptions import StateError


class Detector:
    """Base of every online detector: no I/O, serialisable, clonable."""

    def _reset(self) -> None:
        raise NotImplementedError

    def _get_params(self) -> dict[str, Any]:
        return {name: copy.deepcopy(getattr(self, name)) for name in _param_names(type(self))}

    def clone(self) -> Self:
        """A fresh detector with the same parameters and no state."""
        return type(self)(**self._get_params())

    def to_dict(self) -> dict[str, Any]:
        """Parameters and state, JSON-serialisable."""
        return self._dict_with(_copy({k: v for k, v in vars(self).items() if k.startswith("_")}))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Restore a detector written by :meth:`to_dict` (also after a JSON round trip)."""
        detector, state = cls._new_from(data)
        detector.__dict__.update(_copy(state))
        return detector

    def _dict_with(self, state: dict[str, Any]) -> dict[str, Any]:
        """:meth:`to_dict` of this detector with ``state`` (JSON-native) as its state."""
        return {"type": type(self).__name__, "params": self._get_params(), "state": state}

    @classmethod
    def _new_from(
        cls, data: dict[str, Any], fields: Iterable[str] | None = None
    ) -> tuple[Self, dict[str, Any]]:
        """For :meth:`from_dict`: a new detector with the parameters of ``data``, and its state, checked to be
        of this type and to hold no field but ``fields`` (default: the new detector's own)."""
        if data.get("type") != cls.__name__:
            raise StateError(f"state of {data.get('type')!r} cannot restore a {cls.__name__}")
        detector = cls(**data["params"])
        state = data["state"]
        unknown = set(state) - set(vars(detector) if fields is None else fields)
        if unknown:
            raise StateError(f"unknown state fields for {cls.__name__}: {sorted(unknown)}")
        return detector, state

    def _check_mergeable(self, other: Detector) -> None:
        """For ``merge``: raise ValueError unless ``other`` is of this type with the same parameters."""
        if type(other) is not type(self) or other._get_params() != self._get_params():
            raise ValueError(f"cannot merge {other!r} into {self!r}")

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self._get_params().items())
        return f"{type(self).__name__}({params})"


def _copy(state: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of JSON-native state; pickle's C round trip is several times faster than
    ``copy.deepcopy`` on nested lists and dicts (a worker copies every touched detector per batch)."""
    return pickle.loads(pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL))


_PARAM_NAMES: dict[type, tuple[str, ...]] = {}


def _param_names(cls: type) -> tuple[str, ...]:
    """Constructor parameter names of ``cls``, cached: inspect.signature is slow and called often."""
    names = _PARAM_NAMES.get(cls)
    if names is None:
        names = _PARAM_NAMES[cls] = tuple(inspect.signature(cls).parameters)
    return names
