"""`streamer worker` end to end: real embedded broker, real bundled model, real signals."""

from __future__ import annotations

import signal
import urllib.error
import urllib.request
from base64 import b64encode
from datetime import datetime, timezone

import orjson
import pytest
from streaming_helpers import (
    WorkerProcess, committed_offsets, fresh_stream_settings, group_members, output_topics, outputs_by_source,
    produce_raw, read_all, wait_until,
)

from schemas import ChatMessage, DeadLetter
from streamer.streaming.broker import is_listening

pytestmark = pytest.mark.integration


def chat(text: str, channel: str, timestamp: str | None = "2025-03-03T09:00:00Z") -> bytes:
    return orjson.dumps({"text": text, "channel": channel, "sender": "desk", "timestamp": timestamp})


VALID = [
    chat("buy 10m cable", "fx-1"),
    chat("sell 200 AAPL lmt 187.5", "eq-1"),
    chat("eurusd 1.0848/50", "fx-1", timestamp=None),  # stamped from the record's broker time
    chat("2 way in 50 usdjpy 6m pls", "fx-2"),
    chat("cxl my eurusd order", "fx-1", timestamp=None),
    chat("morning all, quiet today", "chat"),
]
TOO_LONG_FOR_CONTEXT = chat("buy 10m cable " * 900, "fx-1")  # ~12 KiB: under the size limit, over n_ctx
BAD = {
    b"buy 10m cable (plain text, not JSON)": "not_json",
    b"\xff\xfe not utf-8 \xc3\x28": "not_utf8",
    b'{"text": ""}': "schema_invalid",
    b'["a", "list"]': "schema_invalid",
    chat("x" * 20000, "fx-1"): "oversize",
    TOO_LONG_FOR_CONTEXT: "processing_error",
}


@pytest.fixture(scope="module")
def running_worker(base_settings, broker, tmp_path_factory):
    """One worker on fresh topics for this module's tests, in file order; each test leaves it running
    (the SIGKILL test restarts it) except the last, which stops it with SIGTERM."""
    tmp = tmp_path_factory.mktemp("worker")
    worker = WorkerProcess(fresh_stream_settings(base_settings, broker, tmp), tmp / "worker.log").start()
    yield worker
    worker.stop()


def test_every_input_lands_on_exactly_one_output_topic(running_worker):
    settings = running_worker.settings
    inputs = [(b"fx-1", value) for value in VALID] + [(b"raw-key", value) for value in BAD]
    positions = produce_raw(settings, inputs)
    wanted = set(positions)

    outputs = wait_until(lambda: (found := outputs_by_source(settings)) and wanted <= found.keys() and found,
                         running_worker, f"outputs for {len(wanted)} inputs")

    assert set(outputs) == wanted  # count in = count out, nothing extra
    records = {position: outputs[position] for position in positions}
    assert all(len(found) == 1 for found in records.values()), "a record was published twice without a crash"
    input_records = {(r.partition, r.offset): r for r in read_all(settings, [settings.input_topic])}
    for (key, value), position in zip(inputs, positions):
        output = records[position][0]
        body = output.json()
        if value in BAD:
            assert output.topic == settings.deadletter_topic
            letter = DeadLetter.model_validate(body)
            assert (letter.error_class, letter.payload(), letter.key_b64) == (BAD[value], value, b64encode(key).decode())
        else:
            assert output.topic in (settings.parsed_topic, settings.review_topic, settings.nontrade_topic)
            sent = orjson.loads(value)
            if sent["timestamp"] is None:
                input_record = input_records[position]
                sent["timestamp"] = datetime.fromtimestamp(input_record.timestamp_ms / 1000, timezone.utc)
            assert body["message_id"] == ChatMessage.model_validate(sent).message_id
            assert output.key == sent["channel"].encode()  # keyed by channel: per-channel order


@pytest.mark.parametrize("body, status, reason", [
    (orjson.dumps({"text": "buy 5m fiber", "channel": "webhook"}), 202, None),
    (b"buy 5m fiber", 400, "not_json"),
    (b"\xff\xfe", 400, "not_utf8"),
    (b'{"channel": "webhook"}', 400, "schema_invalid"),
    (orjson.dumps({"text": "x" * 9000, "channel": "x" * 9000}), 413, "oversize"),  # over the stream's limit
])
def test_http_ingest_accepts_with_202_and_rejects_with_4xx(running_worker, body, status, reason):
    settings = running_worker.settings
    wait_until(lambda: is_listening(settings.web_host, settings.web_port), running_worker, "the web server")
    request = urllib.request.Request(f"http://{settings.web_host}:{settings.web_port}/ingest", data=body,
                                     method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            got_status, answer = response.status, orjson.loads(response.read())
    except urllib.error.HTTPError as err:
        got_status, answer = err.code, orjson.loads(err.read())
    assert got_status == status, answer
    if status == 202:
        message_id = answer["message_id"]
        ingested = [r.json() for r in read_all(settings, [settings.input_topic]) if r.key == b"webhook"]
        assert message_id in {m["message_id"] for m in ingested}
        wait_until(lambda: any(r.json().get("message_id") == message_id
                               for r in read_all(settings, output_topics(settings))),
                   running_worker, f"the output of {message_id}")
    else:
        assert answer["error"].startswith(reason) and "\n" not in answer["error"]


def test_sigkill_mid_stream_then_restart_loses_nothing(running_worker):
    settings = running_worker.settings
    batch = produce_raw(settings, [(None, chat(f"sell {n}m cable", f"fx-{n % 2}")) for n in range(1, 5)])
    wait_until(lambda: set(batch) & outputs_by_source(settings).keys(), running_worker, "an output before the kill")

    assert running_worker.signal(signal.SIGKILL) == -signal.SIGKILL
    running_worker.start()

    outputs = wait_until(lambda: (found := outputs_by_source(settings)) and set(batch) <= found.keys() and found,
                         running_worker, "an output for every input after the restart")
    for position in batch:  # duplicates are allowed, but they must be the same result of the same message
        assert len({(r.topic, r.json()["message_id"]) for r in outputs[position]}) == 1


def test_sigterm_finishes_the_message_in_flight_commits_and_leaves_the_group(running_worker):
    settings = running_worker.settings
    batch = produce_raw(settings, [(b"same-channel", chat(f"buy {n}m cable", "fx-9")) for n in (1, 2, 3)])
    wait_until(lambda: batch[0] in outputs_by_source(settings), running_worker, "the first output of the batch")

    assert running_worker.signal(signal.SIGTERM) == 0

    done = set(outputs_by_source(settings))
    assert len(done & set(batch)) >= 2, "the message in flight at SIGTERM was not finished"
    committed = committed_offsets(settings)
    inputs = {(r.partition, r.offset) for r in read_all(settings, [settings.input_topic])}
    assert {p for p in inputs if p[1] < committed[p[0]]} == done  # committed exactly what was published
    assert group_members(settings) == 0
