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


@pytest.mark.parametrize("payload, same_id_as", [
    ({"text": "buy 10m cable"}, {"text": "buy 10m cable"}),
    ({"text": "buy 10m cable", "timestamp": "2026-01-02T03:04:05"}, {"text": "buy 10m cable", "timestamp": "2026-01-02T03:04:05Z"}),
])
def test_message_id_is_derived_deterministically(payload, same_id_as):
    assert ChatMessage.model_validate(payload).message_id == ChatMessage.model_validate(same_id_as).message_id


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
