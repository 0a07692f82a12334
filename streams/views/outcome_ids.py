"""The signal and order ids a conversation record remembers (streams/views/outcomes.py), as short digests.

A record keeps the ``event_id`` of every signal it counted (a signal re-sent by its producer counts once)
and the ``order_id`` of every order (each counts once), each as an 8-byte BLAKE2b digest written as 16 hex
digits, concatenated in one string per kind (``ed``, ``od``): 16 bytes an id in the changelog record and in
memory, however long the id (up to 256 characters). Two of n distinct ids share a digest with probability
about n² / 2⁶⁵ (n = 512: 7e-15); the later would then count as a re-sent signal (or the same order).

A conversation counts at most :data:`MAX_SIGNALS` distinct signals; a later one is dropped, in
``convowatch_conversation_events_dropped_total{reason="too_many_signals"}``. That bounds the record: the
digests (16 KB at most) and the facts held until the first turn (one a signal, plus the first purchase's
conversion), 24 KB at most (512 purchases of distinct orders before any turn), far under a changelog
record's 900,000 bytes. A conversation of generated traffic takes 171 bytes on average (176 with ids in
full).
"""

from __future__ import annotations

import hashlib
from typing import Any

#: Distinct signals counted per conversation (a human conversation has a handful; hundreds is a producer
#: gone wrong): the later ones are dropped and counted.
MAX_SIGNALS = 512
#: Hex digits of one digest.
WIDTH = 16


def digest(value: str) -> str:
    """The 8-byte digest of an id, in hex."""
    return hashlib.blake2b(value.encode(), digest_size=WIDTH // 2).hexdigest()


def holds(digests: str, one: str) -> bool:
    """Whether the concatenated ``digests`` hold ``one`` (found at a digest's start, not across two)."""
    at = digests.find(one)
    while at >= 0:
        if at % WIDTH == 0:
            return True
        at = digests.find(one, at + 1)
    return False


def upgrade(entry: dict[str, Any]) -> None:
    """Bring a record written before digests (2026-11-26: ids in full, in lists ``ev`` and ``o``, at most
    32 each) to digests, in place."""
    if "ev" in entry:
        entry["ed"] = "".join(digest(event_id) for event_id in entry.pop("ev"))
        entry["od"] = "".join(digest(order_id) for order_id in entry.pop("o"))
