"""A view's label cache builds each raw value once and stays bounded."""

from __future__ import annotations

from streams.views.label_cache import LabelCache


def test_builds_once_and_clears_when_full() -> None:
    built: list[int] = []
    cache = LabelCache(lambda raw: built.append(raw) or raw * 10, max_size=3)
    assert [cache[i] for i in (1, 2, 1, 3, 2)] == [10, 20, 10, 30, 20]
    assert built == [1, 2, 3]
    assert cache[4] == 40  # full: cleared, then 4 alone
    assert dict(cache) == {4: 40}
    assert cache[1] == 10 and built == [1, 2, 3, 4, 1]
