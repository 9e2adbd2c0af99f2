"""The committed JSON Schema files must match the models (regenerate: python -m schemas)."""

from pathlib import Path

import orjson
import pytest

import schemas
from schemas import SCHEMA_FILES, ChatMessage, DeadLetter, json_schema_text

SCHEMA_DIR = Path(schemas.__file__).parent


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_schema_file_matches_model(name):
    committed = (SCHEMA_DIR / name).read_text()
    assert committed == json_schema_text(SCHEMA_FILES[name]), f"schemas/{name} drifted: run `python -m schemas`"


@pytest.mark.parametrize("payload, message_id", [
    ({"text": "buy 10m cable"}, "msg-dce61e1a835b1854b1709f82"),
    ({"text": "buy 10m cable", "timestamp": "2026-01-02T03:04:05Z"}, "msg-c67ce7e8cca52775762826d1"),
    ({"text": "buy 10m cable", "timestamp": "2026-01-02T03:04:05"}, "msg-c67ce7e8cca52775762826d1"),  # naive is UTC
])
def test_message_id_is_derived_from_text_and_time(payload, message_id):
    """Pinned ids: a re-sent message gets the id it had before, from this version and the next.

    De-duplication and the history diff (results paired by message_id) depend on it.
    """
    assert ChatMessage.model_validate(payload).message_id == message_id


def test_message_id_depends_on_text():
    assert ChatMessage(text="buy 10m cable").message_id != ChatMessage(text="sell 10m cable").message_id


def test_message_id_depends_on_time():
    a = ChatMessage(text="hi", timestamp="2026-01-02T03:04:05Z")
    b = ChatMessage(text="hi", timestamp="2026-01-02T03:04:06Z")
    assert a.message_id != b.message_id


def test_explicit_message_id_is_kept():
    assert ChatMessage(text="x", message_id="abc").message_id == "abc"


@pytest.mark.parametrize("payload", [b"\xff\xfe\x00binary", b'{"text": "ok"}', b""])
def test_dead_letter_keeps_bytes(payload):
    letter = DeadLetter.from_bytes(payload, "not_utf8", "detail")
    again = DeadLetter.model_validate(orjson.loads(letter.to_json()))
    assert again.payload() == payload
