"""Business outcomes of conversations with many signals: every signal counted once, or dropped and counted
(streams/views/outcome_ids.py), and records written before the ids were digests still read."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from streams.emit import SEP
from streams.state import DictStore, encode_json
from streams.views.outcome_ids import MAX_SIGNALS, WIDTH, digest, holds
from tests.streams.test_view_outcomes import IDLE, Run, signal, turn

START = datetime(2026, 11, 2, 8, tzinfo=UTC).timestamp()


def dropped(run: Run, reason: str) -> float:
    return run.value("convowatch_conversation_events_dropped_total", {}, reason=reason)


def duplicates(run: Run) -> float:
    return run.registry.get_sample_value("convowatch_duplicates_total", {"stream": "signals"}) or 0.0


def test_a_resent_signal_counts_once_after_dozens_of_others() -> None:
    # only the first 32 event ids were remembered: the last of 40 thumbs, re-sent, counted twice
    run = Run()
    run.feed(turn("c1", "t1", 0))
    run.feed(*(signal("c1", f"thumb-{i}", 1 + i, "thumbs_up") for i in range(40)))
    run.feed(signal("c1", "thumb-0", 1, "thumbs_up"), signal("c1", "thumb-39", 40, "thumbs_up"))  # re-sent
    assert run.value("convowatch_user_feedback_total", feedback="up") == 40
    assert duplicates(run) == 2


def test_every_order_counts_once_however_many() -> None:
    # only the first 32 order ids were kept, and later orders were not counted at all
    run = Run()
    run.feed(turn("c1", "t1", 0))
    run.feed(*(signal("c1", f"buy-{i}", 1 + i, "purchase", order_id=f"order-{i}") for i in range(40)))
    run.feed(signal("c1", "buy-again", 50, "purchase", order_id="order-39"))  # the same order, reported again
    assert run.kpis()["orders"] == 40
    assert run.value("convowatch_conversations_converted_total", step="purchase") == 1


def test_every_signal_before_the_first_turn_counts_when_it_comes() -> None:
    # facts held before the first turn were capped at 64: the 65th and later were lost without a count
    run = Run()
    run.feed(*(signal("c1", f"ht-{i}", i, "handle_time", handle_time_seconds=10.0) for i in range(80)))
    run.feed(turn("c1", "t1", 90))
    assert run.value("convowatch_handle_time_seconds_count") == 80
    assert run.value("convowatch_handle_time_seconds_sum") == 800.0
    assert dropped(run, "too_many_signals") == dropped(run, "no_turns") == dropped(run, "late") == 0


@pytest.mark.parametrize("turn_first", [True, False])
def test_signals_past_the_cap_are_dropped_and_counted(turn_first: bool) -> None:
    run = Run()
    extra = 20
    ids = [f"{'e' * 240}-{i}" for i in range(MAX_SIGNALS + extra)]  # long ids: the record stays small
    if turn_first:
        run.feed(turn("c1", "t1", 0))
    run.feed(*(signal("c1", event_id, 1, "thumbs_down") for event_id in ids))
    run.feed(signal("c1", ids[0], 1, "thumbs_down"))  # re-sent, counted: a duplicate
    run.feed(signal("c1", ids[-1], 1, "thumbs_down"))  # re-sent, dropped: dropped again
    if not turn_first:
        run.feed(turn("c1", "t1", 2))
    counted = run.value("convowatch_user_feedback_total", feedback="down")
    assert counted == MAX_SIGNALS
    assert dropped(run, "too_many_signals") == extra + 1
    assert duplicates(run) == 1
    assert counted + dropped(run, "too_many_signals") + duplicates(run) == len(ids) + 2  # none lost
    assert run.pipeline.report()["outcomes"]["dropped_too_many_signals"] == extra + 1
    run.pipeline.flush()
    record = run.pipeline.aggregator.store.get(f"conversation{SEP}c1")
    assert len(encode_json(record)) < 25_000  # 512 ids of 244 characters in full: 128 KB


def test_signals_of_a_conversation_without_turns_are_dropped_once_each() -> None:
    run = Run()
    run.feed(*(signal("c1", f"s-{i}", 0, "agent_handoff") for i in range(MAX_SIGNALS + 3)))
    assert dropped(run, "too_many_signals") == 3
    run.tick(IDLE + 100)  # c1 closes without a turn: the signals it counted are dropped then
    assert dropped(run, "no_turns") == MAX_SIGNALS
    assert dropped(run, "too_many_signals") == 3


def test_records_written_before_digests_are_read() -> None:
    # as the previous version stored them (ids in full, lists "ev" and "o"), and a restart recovers them
    store = DictStore()
    old = {
        "c1": {"p": None, "seg": ["shopper", "shop-v1", "chat"], "last": START + 2, "end": None, "f": ["buy"]}
        | {"o": ["o-1"], "ev": ["e1"], "src": {"in": [3, 0]}, "sig": 1},
        "c2": {"p": None, "seg": None, "last": START, "end": None, "f": [], "o": [], "ev": ["e0"]}
        | {"src": {"in": [1, 0]}, "pend": [["feedback", "up"]], "sig": 1},
    }
    for cid, entry in old.items():
        store.put(f"conversation{SEP}{cid}", entry, None)
    store.put(f"conversation_wm{SEP}None", {"p": None, "wm": START + 2}, None)
    run = Run(store)
    run.offset = 3
    run.feed(
        signal("c1", "e1", 3, "purchase", order_id="o-1"),  # re-sent
        signal("c1", "e2", 4, "purchase", order_id="o-1"),  # the same order again
        signal("c1", "e3", 5, "purchase", order_id="o-2"),
        signal("c2", "e0", 3, "thumbs_up"),  # re-sent before the first turn
        turn("c2", "t9", 6),
    )
    assert run.kpis()["orders"] == 1  # o-2
    assert duplicates(run) == 2
    assert run.value("convowatch_user_feedback_total", feedback="up") == 1  # held, now counted
    assert run.kpis()["started"] == 1  # c2
    run.pipeline.flush()
    for cid in ("c1", "c2"):
        record = store.get(f"conversation{SEP}{cid}")
        assert "ev" not in record and "o" not in record
    run.tick(6 + IDLE + 100)
    assert run.kpis()["closed"] == 2


def test_a_digest_is_found_only_where_one_starts() -> None:
    first, second = digest("e1"), digest("e2")
    assert len(first) == len(second) == WIDTH and first != second
    digests = first + second
    assert holds(digests, first) and holds(digests, second)
    straddling = digests[WIDTH // 2 : WIDTH // 2 + WIDTH]  # the end of one and the start of the next
    assert not holds(digests, straddling)
    assert holds(digests + straddling, straddling)
