"""What raw label values map to in a view (guarded labels, metric children, aggregate keys), built once.

``.labels()`` and the label guards cost more than the increment they serve, so views keep what they build
from raw values. A guard maps a value the same way from its first call on, so a cached result stays right;
raw values are unbounded upstream, so a cache is cleared when it reaches :data:`MAX_CACHED` entries.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

#: Entries a cache holds before it is cleared.
MAX_CACHED = 10_000


class LabelCache(dict[Hashable, Any]):
    """``cache[raw]``: ``build(raw)`` the first time (clearing the cache first if it is full), then the
    same object. A hit is a plain dict lookup.

    >>> built = []
    >>> cache = LabelCache(lambda raw: built.append(raw) or raw.upper())
    >>> cache["a"], cache["a"], built
    ('A', 'A', ['a'])
    """

    def __init__(self, build: Callable[[Any], Any], max_size: int = MAX_CACHED) -> None:
        super().__init__()
        self.build = build
        self.max_size = max_size

    def __missing__(self, raw: Hashable) -> Any:
        if len(self) >= self.max_size:
            self.clear()
        value = self[raw] = self.build(raw)
        return value
