"""`streamer produce` and `streamer consume` as a user runs them, against the embedded broker."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import datetime, timezone

import orjson
import pytest

from schemas import ChatMessage, derive_message_id
from streamer.ingest.produce import with_timestamp

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=timezone.utc)
EARLIER = datetime(2024, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamer", *args], input=stdin, capture_output=True, timeout=120)


@pytest.mark.parametrize("message, timestamp, message_id", [
    (ChatMessage(text="buy 10m cable"), NOW, derive_message_id("buy 10m cable", NOW)),
    (ChatMessage(text="buy 10m cable", message_id="chat-7"), NOW, "chat-7"),
    (ChatMessage(text="buy 10m cable", timestamp=EARLIER), EARLIER, derive_message_id("buy 10m cable", EARLIER)),
])
def test_with_timestamp_stamps_unstamped_messages_and_rederives_only_derived_ids(message, timestamp, message_id):
    stamped = with_timestamp(message, NOW)
    assert (stamped.timestamp, stamped.message_id) == (timestamp, message_id)


@pytest.mark.integration
def test_produce_sends_good_lines_reports_bad_ones_and_consume_prints_them(broker, tmp_path):
    topic = f"produce-{uuid.uuid4().hex[:8]}"
    chat = tmp_path / "chat.txt"
    chat.write_bytes(b'buy 10m cable\n\n{"text": "sell 5 btc", "channel": "crypto", "timestamp": "2025-01-01T00:00:00Z"}\n'
                     b'{"text": ""}\n\xff\xfe\n{broken\n')

    produced = run("produce", "--file", str(chat), "--broker", broker.url, "--topic", topic)

    assert produced.returncode == 1  # bad lines are an error, after the good ones were sent
    err = produced.stderr.decode()
    for line in (f"{chat}:4: not a ChatMessage", f"{chat}:5: not UTF-8", f"{chat}:6: invalid JSON"):
        assert line in err
    assert f"2 sent to {topic}, 3 bad lines, 0 not delivered" in err
    sent_ids = produced.stdout.decode().split()

    consumed = run("consume", topic, "--broker", broker.url, "--idle", "2")

    assert consumed.returncode == 0, consumed.stderr
    messages = [ChatMessage.model_validate(orjson.loads(line)) for line in consumed.stdout.splitlines()]
    assert sorted(m.message_id for m in messages) == sorted(sent_ids)
    plain, given = sorted(messages, key=lambda m: m.channel is not None)
    assert plain.timestamp is not None and plain.message_id == derive_message_id(plain.text, plain.timestamp)
    assert (given.channel, given.timestamp) == ("crypto", datetime(2025, 1, 1, tzinfo=timezone.utc))


@pytest.mark.integration
@pytest.mark.parametrize("args, message", [
    (["consume", "no-such-topic", "--idle", "1"], "topic 'no-such-topic' does not exist"),
    (["produce", "--broker", "kafka://127.0.0.1:1"], "no broker listens at kafka://127.0.0.1:1"),
])
def test_streaming_commands_fail_with_one_line(broker, args, message):
    if "--broker" not in args:
        args = [*args, "--broker", broker.url]
    proc = run(*args, stdin=b"buy 10m cable\n")
    err = proc.stderr.decode()
    assert proc.returncode != 0 and message in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
