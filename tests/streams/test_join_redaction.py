"""What a defect carries of its turn's chat text: as CONVOWATCH_TEXT_REDACTION says (keep, hash, drop),
bounded, and as the setting says now for turns the join stored under another one before a restart."""

from __future__ import annotations

import hashlib

import orjson
import pytest
from prometheus_client import CollectorRegistry

from schemas import Defect
from streams.join import MAX_KEPT_TEXT, TurnJoiner
from streams.metrics import Metrics
from streams.state import DictStore
from streams.taxonomy import load_taxonomy
from tests.factories import verdict
from tests.streams.test_join import judged, turn

TAXONOMY = load_taxonomy()
KEY = b"k" * 16
SECRET = "my SSN is 078-05-1120"
TEXT = ("user_text", "response_text")
HASHES = ("user_text_hmac_sha256", "response_text_hmac_sha256")


def joiner(store: DictStore, redaction: str, **kwargs: object) -> TurnJoiner:
    key = KEY if redaction == "hash" else None
    return TurnJoiner(
        TAXONOMY, Metrics(CollectorRegistry()), store, text_redaction=redaction, text_hash_key=key, **kwargs
    )


def defect_turn(emits: list) -> dict:
    (defect,) = [e.value for e in emits if e.topic == "defects"]
    Defect.model_validate(defect)
    return defect["turn"]


@pytest.mark.parametrize("length", [10, MAX_KEPT_TEXT, MAX_KEPT_TEXT + 1, 900_000])
def test_kept_text_is_capped_so_a_defect_always_fits_a_kafka_request(length: int) -> None:
    joiner = TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()), text_redaction="keep")
    text = "x" * length
    joiner.handle(turn(user_text=text, response_text="short"))
    emits = joiner.handle(judged(verdicts=[verdict("relevance", "fail")]))
    (defect,) = [e.value for e in emits if e.topic == "defects"]
    kept_text = defect["turn"]["user_text"]
    if length <= MAX_KEPT_TEXT:
        assert kept_text == text
    else:
        assert kept_text == "x" * MAX_KEPT_TEXT + f"[... {length - MAX_KEPT_TEXT} more characters cut]"
    assert defect["turn"]["response_text"] == "short"
    Defect.model_validate(defect)


def test_hash_redaction_keys_the_hash_so_a_short_text_is_not_found_by_hashing_guesses() -> None:
    def hashed(key: bytes) -> dict[str, str]:
        joiner = TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()), text_redaction="hash", text_hash_key=key)
        joiner.handle(turn(user_text="my PIN is 4821", response_text="yes"))
        emits = joiner.handle(judged(verdicts=[verdict("relevance", "fail")]))
        (defect,) = [e.value for e in emits if e.topic == "defects"]
        Defect.model_validate(defect)
        return defect["turn"]

    one, again, other = hashed(b"k" * 16), hashed(b"k" * 16), hashed(b"j" * 16)
    assert "user_text" not in one and "response_text" not in one
    assert one == again  # equal texts match across records under one key
    assert one["user_text_hmac_sha256"] != other["user_text_hmac_sha256"]
    plain = {hashlib.sha256(t.encode()).hexdigest() for t in ("my PIN is 4821", "yes")}
    assert not plain & {one["user_text_hmac_sha256"], one["response_text_hmac_sha256"]}


def test_hash_redaction_without_a_key_is_refused() -> None:
    with pytest.raises(ValueError, match="key"):
        TurnJoiner(TAXONOMY, Metrics(CollectorRegistry()), text_redaction="hash")


@pytest.mark.parametrize(
    ("stored", "now", "published"),
    [
        ("keep", "drop", ()),
        ("keep", "hash", HASHES),
        ("hash", "drop", ()),
        ("keep", "keep", TEXT),
        ("hash", "keep", HASHES),  # the text is gone: its hashes are what the entry still has
        ("drop", "keep", ()),
        ("drop", "hash", ()),
    ],
)
def test_a_turn_stored_under_another_setting_is_published_as_the_setting_says_now(
    stored: str, now: str, published: tuple[str, ...]
) -> None:
    """An operator turning redaction stricter (after a leak, say) and restarting the worker: the turns the
    join recovered from its changelog were stored with their text, and their defects, up to the TTL later,
    must not carry it. Their state drops it too, at their next write."""
    store = DictStore(json_values=True)
    joiner(store, stored).handle(turn(user_text=SECRET, response_text="here is your SSN"))
    restarted = joiner(store, now)
    ctx = defect_turn(restarted.handle(judged(verdicts=[verdict("relevance", "fail")])))
    text_fields = {name for name in (*TEXT, *HASHES) if name in ctx}
    assert text_fields == set(published)
    if now == "hash" and stored == "keep":
        assert ctx["user_text_hmac_sha256"] == restarted.outputs.text_hash(SECRET)
    held = orjson.dumps(store.get("t-1"))
    assert (SECRET.encode() in held) == (now == "keep" == stored)
    if now == "drop":
        assert not any(name.encode() in held for name in HASHES)


def test_a_replayed_defect_is_redacted_as_the_setting_says_now() -> None:
    """A crash after the state was written and before the defect was: the restarted worker, now dropping
    text, publishes the kept defect again without the text it would have carried."""
    store = DictStore(json_values=True)
    first = joiner(store, "keep", autoflush=False, keep_outputs=True)
    first.handle(turn(user_text=SECRET), 0, ("turns:0", 1))
    lost = first.handle(judged(verdicts=[verdict("relevance", "fail")]), 0, ("verdicts:0", 2))
    first.flush()
    assert defect_turn(lost)["user_text"] == SECRET
    replay = joiner(store, "drop", autoflush=False, keep_outputs=True)
    replay.handle(turn(user_text=SECRET), 0, ("turns:0", 1))
    again = replay.handle(judged(verdicts=[verdict("relevance", "fail")]), 0, ("verdicts:0", 2))
    ctx = defect_turn(again)
    assert ctx["conversation_id"] == defect_turn(lost)["conversation_id"]
    assert not {*TEXT, *HASHES} & ctx.keys()
