"""The desk's queue against the real embedded broker: decisions publish, commit, survive restarts, and one
item is never accepted twice."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timezone

import pytest
from conftest import put_on_review
from streaming_helpers import read_all

from schemas import ChatMessage, LowConfidence, Reason, Trade
from streamer.review.decisions import edited_fields
from streamer.review.queue import ReviewError, ReviewQueue

pytestmark = pytest.mark.integration


def flagged(text: str) -> bytes:
    message = ChatMessage(text=text, channel="fx-desk", sender="ann", timestamp=datetime.now(timezone.utc))
    trade = Trade(intent="order", side="buy", asset_class="fx_spot", symbol="EURUSD", quantity=1e7, confidence=0.3)
    return LowConfidence(message_id=message.message_id, message=message, trade=trade, confidence=0.3,
                         reasons=[Reason(code="rules_disagree", field="tenor", detail="model None, rules '3M'")]).to_json()


def open_ids(queue: ReviewQueue, count: int, timeout_s: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ids = [item.id for item in queue.open_items()]
        if len(ids) >= count:
            return ids
        time.sleep(0.1)
    return [item.id for item in queue.open_items()]


def committed(settings) -> int:
    from confluent_kafka import Consumer, TopicPartition

    from streamer.streaming.kafka import consumer_config

    consumer = Consumer(consumer_config(settings, settings.review_group_id))
    try:
        (position,) = consumer.committed([TopicPartition(settings.review_topic, 0)], timeout=10)
        return position.offset
    finally:
        consumer.close()


def test_decisions_publish_commit_and_a_restarted_desk_neither_loses_nor_repeats_them(desk_settings):
    s = desk_settings
    put_on_review(s, [flagged("buy 10m eurusd 3m"), flagged("buy 5m eurusd"), b"\xff not a record"])
    first = ReviewQueue(s).start()
    try:
        accepted, left_open, malformed = open_ids(first, 3)
        first.decide(accepted, "ann", "accept", edited_fields(
            {"intent": "order", "side": "buy", "asset_class": "fx_forward", "symbol": "EURUSD",
             "quantity": "10000000", "tenor": "3M"}))
        first.decide(malformed, "ann", "dead_letter")
        assert committed(s) == 1  # past the accepted item, not past the open one behind it
        assert [item.id for item in first.open_items()] == [left_open]
    finally:
        first.close()

    second = ReviewQueue(s).start()
    try:
        assert open_ids(second, 1) == [left_open]
        time.sleep(1.0)  # everything after the committed offset has been read again by now
        assert [item.id for item in second.open_items()] == [left_open]
        second.decide(left_open, "bob", "not_trade")
        assert committed(s) == 3 and second.open_items() == []
    finally:
        second.close()

    (trade,) = [r.json() for r in read_all(s, [s.parsed_topic])]
    assert (trade["tenor"], trade["review"]["reviewer"], trade["review"]["item"]) == ("3M", "ann", accepted)
    assert trade["review"]["model_output"]["tenor"] is None
    corrections = {r.json()["item"]: r.json() for r in read_all(s, [s.corrections_topic])}
    assert {item: c["decision"] for item, c in corrections.items()} == {
        accepted: "accept", malformed: "dead_letter", left_open: "not_trade"}
    assert corrections[left_open]["corrected"]["intent"] == "none" and corrections[left_open]["reviewer"] == "bob"
    (letter,) = [r.json() for r in read_all(s, [s.deadletter_topic])]
    assert letter["error_class"] == "schema_invalid" and letter["payload_b64"] == "/yBub3QgYSByZWNvcmQ="


def test_two_desks_never_both_accept_one_item(desk_settings):
    s = desk_settings
    put_on_review(s, [flagged("buy 10m eurusd")])
    desks = [ReviewQueue(s, desk_id="desk-a").start(), ReviewQueue(s, desk_id="desk-b").start()]
    try:
        (item,) = open_ids(desks[0], 1)
        assert open_ids(desks[1], 1) == [item]
        fields = edited_fields({"intent": "order", "side": "buy", "symbol": "EURUSD", "quantity": "1e7"})
        outcomes: dict[str, str] = {}
        start = threading.Barrier(2)

        def accept(desk: ReviewQueue, reviewer: str) -> None:
            start.wait()
            try:
                desk.decide(item, reviewer, "accept", fields)
                outcomes[reviewer] = "accepted"
            except ReviewError as refused:
                outcomes[reviewer] = str(refused)

        threads = [threading.Thread(target=accept, args=(desk, name)) for desk, name in zip(desks, ["ann", "bob"])]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert sorted(outcomes.values())[0] == "accepted", outcomes
        assert "being reviewed by" in sorted(outcomes.values())[1] or "already decided" in sorted(outcomes.values())[1]
    finally:
        for desk in desks:
            desk.close()
    assert len(read_all(s, [s.parsed_topic])) == 1
    assert [r.json()["decision"] for r in read_all(s, [s.corrections_topic])] == ["accept"]


def test_a_skip_is_recorded_and_the_item_comes_back_last_for_that_reviewer(desk_settings):
    s = desk_settings
    put_on_review(s, [flagged("buy 1m eurusd"), flagged("sell 2m eurusd")])
    desk = ReviewQueue(s).start()
    try:
        first, second = open_ids(desk, 2)
        desk.decide(first, "ann", "skip")
        assert [item.id for item in desk.open_items()] == [first, second]  # still open, oldest first
        assert desk.next_item("ann").id == second and desk.next_item("bob").id == first
        assert committed(s) <= 0  # nothing decided: nothing committed past the first item
    finally:
        desk.close()
    (record,) = [r.json() for r in read_all(s, [s.corrections_topic])]
    assert (record["decision"], record["reviewer"], record["corrected"]) == ("skip", "ann", None)
