"""A message that kills the parser process is dead-lettered, not a poison pill: real broker, stand-in parser.

The stand-in (`tests/standin_parser.py`) kills its own process with SIGILL on
a marker, as llama.cpp's AMX path does; the worker must publish every other
message, dead-letter the marker as `processing_crash` and commit past it.
"""

from __future__ import annotations

import orjson
import pytest
from standin_parser import CRASHING_ON_RESTART, FACTORY
from streaming_helpers import (
    WorkerProcess, committed_offsets, fresh_stream_settings, outputs_by_source, produce_raw, read_all, wait_until,
)

from schemas import DeadLetter
from streamer.settings import Settings

pytestmark = pytest.mark.integration


def chat(text: str, channel: str) -> bytes:
    return orjson.dumps({"text": text, "channel": channel, "timestamp": "2025-03-03T09:00:00Z"})


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_crashing_message_is_dead_lettered_and_every_other_one_published(broker, tmp_path, guarantee):
    settings = fresh_stream_settings(Settings(parser_factory=FACTORY), broker, tmp_path).model_copy(
        update={"processing_guarantee": guarantee, "transaction_batch_size": 4})
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        marker = chat("CRASH buy 10m cable", "fx-1")
        positions = produce_raw(settings, [(b"fx-1", marker)] + [(b"fx-1", chat(f"sell {n}m fiber", "fx-1"))
                                                                 for n in range(1, 11)])
        wanted = set(positions)
        outputs = wait_until(lambda: (found := outputs_by_source(settings)) and wanted <= found.keys() and found,
                             worker, "an output for all 11 inputs")
        committed = wait_until(lambda: (offsets := committed_offsets(settings))
                               and all(offset < offsets[partition] for partition, offset in positions) and offsets,
                               worker, "offsets committed past all 11 inputs")
        assert worker.process.poll() is None, "the worker died with its parser"
    finally:
        worker.stop()

    assert set(outputs) == wanted and all(len(records) == 1 for records in outputs.values())
    letters = [records[0] for records in outputs.values() if records[0].topic == settings.deadletter_topic]
    # the stand-in reads every message as intent none: published, on the non-trade topic
    published = [records[0] for records in outputs.values() if records[0].topic == settings.nontrade_topic]
    assert (len(letters), len(published)) == (1, 10)
    letter = DeadLetter.model_validate(letters[0].json())
    assert letter.error_class == "processing_crash"
    assert "SIGILL" in letter.error_detail and f"{settings.max_parse_crashes} attempts" in letter.error_detail
    assert letter.payload() == marker and letter.source.offset == positions[0][1]
    assert committed[positions[0][0]] > positions[0][1]



@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_parser_that_cannot_be_restarted_stops_the_worker_without_committing_its_message(broker, tmp_path, guarantee):
    settings = fresh_stream_settings(Settings(parser_factory=CRASHING_ON_RESTART), broker, tmp_path).model_copy(
        update={"processing_guarantee": guarantee})
    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        [(partition, offset)] = produce_raw(settings, [(b"fx-1", chat("CRASH buy 10m cable", "fx-1"))])
        assert worker.process.wait(120) != 0
    finally:
        worker.stop()
    assert "killed by SIGILL (Illegal instruction) while loading the model" in worker.log_path.read_text()
    assert committed_offsets(settings)[partition] <= offset, "a message nobody parsed was committed"
    assert read_all(settings, [settings.deadletter_topic, settings.parsed_topic, settings.nontrade_topic]) == []
