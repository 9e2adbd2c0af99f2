"""`streamer worker --exactly-once` end to end: real embedded broker, real bundled model, real signals."""

from __future__ import annotations

import signal

import orjson
import pytest
from streaming_helpers import (
    WorkerProcess, committed_offsets, fresh_stream_settings, group_members, outputs_by_source, produce_raw, read_all,
    wait_until,
)

from streamer.settings import Settings
from streamer.streaming.transactional import transactional_id


def chat(text: str, channel: str) -> bytes:
    return orjson.dumps({"text": text, "channel": channel, "timestamp": "2025-03-03T09:00:00Z"})


@pytest.mark.parametrize("overrides, wanted", [
    ({"group_id": "g", "web_port": 6070}, "g-{host}-6070"),
    ({"group_id": "g", "transactional_id": "desk-7"}, "desk-7"),
])
def test_transactional_id_is_stable_per_worker_slot(overrides, wanted):
    import socket

    assert transactional_id(Settings(**overrides)) == wanted.format(host=socket.gethostname())


@pytest.fixture(scope="module")
def eos_worker(base_settings, broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("eos-worker")
    settings = fresh_stream_settings(base_settings, broker, tmp).model_copy(
        update={"processing_guarantee": "exactly_once", "transaction_batch_size": 3})
    worker = WorkerProcess(settings, tmp / "worker.log").start()
    yield worker
    worker.stop()


def _exactly_what_was_committed(settings) -> dict:
    outputs = outputs_by_source(settings)
    committed = committed_offsets(settings)
    inputs = {(r.partition, r.offset) for r in read_all(settings, [settings.input_topic])}
    assert {p for p in inputs if p[1] < committed[p[0]]} == set(outputs), "outputs and committed offsets differ"
    return outputs


@pytest.mark.integration
def test_sigkill_mid_batch_then_restart_gives_each_input_exactly_one_output(eos_worker):
    settings = eos_worker.settings
    inputs = [(None, chat(f"sell {n}m cable", f"fx-{n % 2}")) for n in range(1, 10)] + [(b"raw", b"not json")]
    positions = produce_raw(settings, inputs)
    wait_until(lambda: set(positions) & outputs_by_source(settings).keys(), eos_worker, "a committed batch")

    assert eos_worker.signal(signal.SIGKILL) == -signal.SIGKILL  # mid-way through parsing the next batch
    eos_worker.start()

    outputs = wait_until(lambda: (found := outputs_by_source(settings)) and set(positions) <= found.keys() and found,
                         eos_worker, "an output for every input after the restart")
    assert set(outputs) == set(positions)
    assert {p: len(records) for p, records in outputs.items() if len(records) != 1} == {}, "an input output twice"
    _exactly_what_was_committed(settings)


@pytest.mark.integration
def test_sigterm_commits_the_batch_in_flight_and_leaves_the_group(eos_worker):
    settings = eos_worker.settings
    batch = produce_raw(settings, [(b"same-channel", chat(f"buy {n}m cable", "fx-9")) for n in (1, 2, 3, 4)])
    wait_until(lambda: batch[0] in outputs_by_source(settings), eos_worker, "the first output of the batch")

    assert eos_worker.signal(signal.SIGTERM) == 0

    outputs = _exactly_what_was_committed(settings)
    assert all(len(records) == 1 for records in outputs.values())
    assert group_members(settings) == 0
