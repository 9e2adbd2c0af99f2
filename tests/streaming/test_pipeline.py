"""The stream's deterministic stages: decode (each failure reason), keying, routing, one record end to end."""

from __future__ import annotations

from datetime import datetime, timezone

import orjson
import pytest

from schemas import ChatMessage, DeadLetter, LowConfidence, SourcePosition, Trade
from streamer.settings import Settings
from streamer.streaming.pipeline import Topics, Undecodable, decode, message_key, process

RECORD_TIME = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)
LIMIT = 200


@pytest.mark.parametrize("value, reason, detail", [
    (None, "schema_invalid", "no value"),
    (b"x" * (LIMIT + 1), "oversize", f"{LIMIT + 1} bytes"),
    (b'{"text": "caf\xe9"}', "not_utf8", "invalid continuation byte at byte 13"),
    (b"buy 10m cable", "not_json", "unexpected character"),
    (b'{"text": "buy', "not_json", "unexpected end of data"),
    (b'["buy 10m cable"]', "schema_invalid", "expected a JSON object, got list"),
    (b'{"text": ""}', "schema_invalid", "text: String should have at least 1 character"),
    (b'{"channel": "fx"}', "schema_invalid", "text: Field required"),
    (b'{"text": "hi", "timestamp": "yesterday"}', "schema_invalid", "timestamp:"),
])
def test_decode_names_the_reason_for_each_bad_input(value, reason, detail):
    with pytest.raises(Undecodable) as caught:
        decode(value, LIMIT, RECORD_TIME)
    assert caught.value.reason == reason
    assert detail in caught.value.detail


def test_decode_fills_a_missing_timestamp_from_the_record_before_deriving_the_id():
    message = decode(b'{"text": "buy 10m cable", "channel": "fx"}', LIMIT, RECORD_TIME)
    assert message.timestamp == RECORD_TIME
    assert message.message_id == ChatMessage(text="buy 10m cable", timestamp=RECORD_TIME).message_id


@pytest.mark.parametrize("fields", [
    {"timestamp": "2024-01-02T03:04:05Z"},    # the sender's time wins over the record's
    {"message_id": "chat-42"},                 # the sender's id is kept
])
def test_decode_keeps_what_the_sender_gave(fields):
    sent = {"text": "buy 10m cable", **fields}
    message = decode(orjson.dumps(sent), LIMIT, RECORD_TIME)
    assert message.model_dump(mode="json", include=set(fields)) == fields


@pytest.mark.parametrize("fields, key", [
    ({"channel": "fx-desk", "sender": "alice"}, "fx-desk"),
    ({"sender": "alice"}, "alice"),
    ({}, ChatMessage(text="buy 10m cable").message_id),
])
def test_message_key_is_channel_then_sender_then_message_id(fields, key):
    assert message_key(ChatMessage(text="buy 10m cable", **fields)) == key


NONE = Trade(intent="none", confidence=0.95)


@pytest.mark.parametrize("result, topic", [
    (Trade(intent="order", confidence=0.9), "P"),
    (Trade(intent="rfq", confidence=0.9), "P"),
    (Trade(intent="cancel", confidence=0.9), "P"),
    (NONE, "N"),                                            # chatter: not on the booking topic
    (LowConfidence(message_id="m", message=ChatMessage(text="x"), confidence=0.1, reasons=[]), "R"),
    (LowConfidence(message_id="m", message=ChatMessage(text="gm"), trade=NONE, confidence=0.1, reasons=[]), "R"),
    (DeadLetter.from_bytes(b"\xff", "not_utf8", "invalid start byte at byte 0"), "D"),
])
def test_route_sends_each_kind_to_its_topic(result, topic):
    assert Topics("I", "P", "R", "D", "N").route(result) == topic


def test_topics_from_settings():
    settings = Settings(input_topic="in", parsed_topic="p", review_topic="r", deadletter_topic="d", nontrade_topic="n")
    topics = Topics.from_settings(settings)
    assert (topics.all(), topics.outputs()) == (["in", "p", "r", "d", "n"], ["p", "r", "d", "n"])


POSITION = SourcePosition(topic="chat.raw", partition=0, offset=5, timestamp=RECORD_TIME)


@pytest.mark.parametrize("value, kind, error_class, key", [
    (b'{"text": "hello", "channel": "fx"}', "trade", None, b"fx"),        # keyed by the message
    (b'{"text": "FAIL", "sender": "bob"}', "dead_letter", "processing_error", b"bob"),  # the parser raised
    (b"not json", "dead_letter", "not_json", b"record-key"),             # undecodable: the record's own key
])
def test_process_gives_one_result_and_its_key_for_every_record(value, kind, error_class, key, tmp_path):
    from standin_parser import StandInParser

    result, out_key = process(value, b"record-key", POSITION, StandInParser(Settings(data_dir=tmp_path)), LIMIT)
    assert (result.kind, getattr(result, "error_class", None), out_key) == (kind, error_class, key)
    assert result.source == POSITION
    if kind == "dead_letter":
        assert result.payload() == value
