"""Live model swap: the mechanics with a stand-in process, then a real `streamer worker` following its registry."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import ClassVar

import orjson
import pytest

from schemas import ChatMessage
from streamer.learning.registry import Registry
from streamer.learning.swap import SwappableParser, SwapRefused
from streamer.parsing.process import ParserUnavailable
from streamer.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "streaming"))  # the worker tests' helpers
from streaming_helpers import (
    WorkerProcess, fresh_stream_settings, outputs_by_source, produce_raw, settings_env, wait_until,
)


@pytest.fixture
def registry(tmp_path) -> Registry:
    """v0 = the shipped adapter; v1 = the same file under a new name (the swap does not need another model)."""
    made = Registry.init(tmp_path / "registry", by="test")
    made.add("v1", made.adapter_path("v0"), parent="v0", by="test")
    return made


def add_corrupt(registry: Registry, version: str, tmp_path: Path) -> None:
    """Garbage bytes registered with their own sha256: verify passes, loading fails."""
    garbage = tmp_path / "garbage" / "adapter.gguf"
    garbage.parent.mkdir(exist_ok=True)
    garbage.write_bytes(b"\x00not a gguf adapter\xff" * 64)
    registry.add(version, garbage, parent="v0", by="test")


# -- the mechanics, with a stand-in for ParserProcess -------------------------------------------------------------

class FakeProcess:
    """Stands in for `ParserProcess`: answers with its version; refuses to load an adapter that is not GGUF."""

    started: ClassVar[list[str]] = []

    def __init__(self, settings: Settings):
        if not Path(settings.adapter_path).read_bytes().startswith(b"GGUF"):
            raise ParserUnavailable(f"adapter file is not GGUF (corrupt or wrong format): {settings.adapter_path}")
        self.version = settings.model_version
        self.description = f"fake {self.version}"
        self.restarts = 0
        self.closed = False
        self.in_batch = threading.Event()
        self.release = threading.Event()
        self.release.set()
        FakeProcess.started.append(self.version)

    def parse_batch(self, messages, sources=None):
        assert not self.closed, "a closed process was asked to parse"
        self.in_batch.set()
        self.release.wait(10)
        return [self.version] * len(messages)

    def parse(self, message, source=None):
        return self.parse_batch([message])[0]

    def close(self, timeout_s: float = 10.0):
        self.closed = True


@pytest.fixture
def swappable(registry):
    FakeProcess.started = []
    lines: list[str] = []
    settings = Settings(registry_dir=registry.path, registry_poll_s=0.05, parser_factory="standin_parser:build")
    parser = SwappableParser(settings, announce=lines.append, start_process=FakeProcess)
    parser.lines = lines
    yield parser
    parser.close()


MESSAGES = [ChatMessage(text="buy 10m cable")] * 2


def wait_for(condition, what: str, timeout_s: float = 10.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    pytest.fail(f"timed out waiting for {what}")


def test_a_promoted_version_takes_over_at_the_next_batch(swappable, registry):
    assert swappable.parse_batch(MESSAGES) == ["v0", "v0"]
    first = swappable._active
    first.release.clear()  # hold a batch in flight while v1 is promoted and loaded
    in_flight = threading.Thread(target=lambda: setattr(first, "result", swappable.parse_batch(MESSAGES)))
    in_flight.start()
    first.in_batch.wait(5)
    registry.promote("v1", by="test")
    wait_for(lambda: swappable._staged is not None, "v1 to load")
    assert not first.closed, "the batch in flight keeps its process"
    first.release.set()
    in_flight.join(5)
    assert first.result == ["v0", "v0"], "never a switch inside a batch"
    assert swappable.parse_batch(MESSAGES) == ["v1", "v1"]
    assert first.closed and swappable.version == "v1" and "model version v1" in swappable.description
    assert any(line.startswith("worker: model swap: v0 -> v1") for line in swappable.lines)


def test_a_version_that_does_not_load_is_refused_once_and_the_old_one_goes_on(swappable, registry, tmp_path):
    add_corrupt(registry, "v2", tmp_path)
    registry.promote("v2", by="test")
    wait_for(lambda: any("refused" in line for line in swappable.lines), "the refusal")
    time.sleep(0.3)  # several polls: no second try
    refusals = [line for line in swappable.lines if "refused" in line]
    assert len(refusals) == 1 and refusals[0].startswith("worker: model swap refused: v2: adapter file is not GGUF")
    assert refusals[0].endswith("; keeping v0")
    assert swappable.parse_batch(MESSAGES) == ["v0", "v0"]
    registry.rollback("v0", by="test")
    registry.promote("v1", by="test")  # a good version after the bad one still swaps in
    wait_for(lambda: swappable._staged is not None, "v1 to load")
    assert swappable.parse_batch(MESSAGES) == ["v1", "v1"]


def test_a_changed_file_is_refused_before_loading(swappable, registry):
    adapter = registry.adapter_path("v1")
    adapter.write_bytes(adapter.read_bytes()[:-1] + b"!")
    raw = orjson.loads(registry.file.read_bytes())
    raw["current"] = "v1"  # by hand, as a mistaken edit would: `promote` itself verifies first
    registry.file.write_bytes(orjson.dumps(raw))
    wait_for(lambda: any("refused" in line for line in swappable.lines), "the refusal")
    [refusal] = [line for line in swappable.lines if "refused" in line]
    assert refusal.startswith(f"worker: model swap refused: v1: adapter file changed: {adapter} has sha256 ")
    assert refusal.endswith(f", the registry recorded {registry.get('v1').adapter_sha256[:12]}; keeping v0")
    assert "v1" not in FakeProcess.started and swappable.parse_batch(MESSAGES) == ["v0", "v0"]


def test_rolling_back_before_the_switch_drops_the_staged_version(swappable, registry):
    registry.promote("v1", by="test")
    wait_for(lambda: swappable._staged is not None, "v1 to load")
    staged = swappable._staged[1]
    registry.rollback("v0", by="test")
    wait_for(lambda: swappable._staged is None, "v1 to be dropped")
    assert staged.closed and swappable.parse_batch(MESSAGES) == ["v0", "v0"]


def test_a_base_model_mismatch_is_refused(registry, tmp_path):
    registry.add("other", registry.adapter_path("v0"), base_model_sha256="0" * 64, by="test")
    registry.promote("other", by="test")
    with pytest.raises(SwapRefused, match=r"version other: trained on base model 000000000000, this worker runs"):
        SwappableParser(Settings(registry_dir=registry.path), start_process=FakeProcess)


def test_close_closes_every_process(swappable, registry):
    registry.promote("v1", by="test")
    wait_for(lambda: swappable._staged is not None, "v1 to load")
    staged, active = swappable._staged[1], swappable._active
    swappable.close()
    assert staged.closed and active.closed and not swappable._watcher.is_alive()


# -- a real worker ------------------------------------------------------------------------------------------------

def chat(text: str) -> tuple[bytes, bytes]:
    return b"fx-1", orjson.dumps({"text": text, "channel": "fx-1", "sender": "desk"})


TEXTS = ["buy 10m cable", "sell 200 AAPL lmt 187.5", "eurusd 1.0848/50", "2 way in 50 usdjpy 6m pls",
         "bid 5m eurjpy at 162.10", "buy 1000 MSFT mkt"]


def model_version(records) -> str | None:
    [record] = records
    return record.json()["provenance"]["model_version"]


def start_worker(default_settings, broker, tmp_path, registry, guarantee: str = "at_least_once") -> WorkerProcess:
    settings = fresh_stream_settings(default_settings, broker, tmp_path).model_copy(
        update={"registry_dir": registry.path, "registry_poll_s": 0.5, "processing_guarantee": guarantee,
                "transaction_batch_size": 2})
    return WorkerProcess(settings, tmp_path / "worker.log").start()


def outputs_for(worker: WorkerProcess, positions) -> dict:
    wanted = set(positions)
    return wait_until(lambda: (found := outputs_by_source(worker.settings)) and wanted <= found.keys() and found,
                      worker, f"outputs for {len(wanted)} inputs")


@pytest.mark.integration
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_worker_swaps_to_a_promoted_version_between_batches(default_settings, broker, tmp_path, registry, guarantee):
    worker = start_worker(default_settings, broker, tmp_path, registry, guarantee)
    try:
        early = produce_raw(worker.settings, [chat(text) for text in TEXTS[:2]])
        outputs_for(worker, early)
        middle = produce_raw(worker.settings, [chat(text) for text in TEXTS[2:4]])
        registry.promote("v1", by="test")  # mid-stream: the middle messages may be parsed by either version
        wait_until(lambda: "model swap: v1 is ready" in worker.log_path.read_text(), worker, "v1 to load")
        late = produce_raw(worker.settings, [chat(text) for text in TEXTS[4:]])
        outputs = outputs_for(worker, early + middle + late)
    finally:
        worker.stop()
    assert set(outputs) == set(early + middle + late), "an output without its input"
    assert all(len(records) == 1 for records in outputs.values()), "a message parsed twice across the switch"
    assert [model_version(outputs[p]) for p in early] == ["v0"] * len(early)
    assert [model_version(outputs[p]) for p in late] == ["v1"] * len(late)
    for partition in {p for p, _ in outputs}:  # one switch: per partition, v0 outputs then v1 outputs
        versions = [model_version(outputs[position]) for position in sorted(outputs) if position[0] == partition]
        assert versions == sorted(versions), versions
    log = worker.log_path.read_text()
    assert "model swap: v0 -> v1" in log and "model version v0 from registry" in log


@pytest.mark.integration
def test_a_worker_refuses_a_corrupt_version_and_keeps_parsing(default_settings, broker, tmp_path, registry):
    add_corrupt(registry, "v2", tmp_path)
    worker = start_worker(default_settings, broker, tmp_path, registry)
    try:
        first = produce_raw(worker.settings, [chat(TEXTS[0])])
        outputs_for(worker, first)
        registry.promote("v2", by="test")
        wait_until(lambda: "model swap refused: v2: " in worker.log_path.read_text(), worker, "the refusal")
        time.sleep(2)  # four polls: the refused version is not tried again
        later = produce_raw(worker.settings, [chat(text) for text in TEXTS[1:3]])
        outputs = outputs_for(worker, first + later)
    finally:
        worker.stop()
    assert all(len(records) == 1 for records in outputs.values())
    assert [model_version(outputs[p]) for p in first + later] == ["v0"] * 3
    refusals = [line for line in worker.log_path.read_text().splitlines() if "model swap refused: v2: " in line]
    assert refusals and all(line.rstrip().endswith("keeping v0") for line in refusals)
    assert len({line[line.index("model swap refused"):] for line in refusals}) == 1
    assert len(refusals) <= 2, "tried again: " + "\n".join(refusals)  # once logged, once announced at most


@pytest.mark.integration
def test_a_worker_does_not_start_on_a_changed_current_file(default_settings, broker, tmp_path, registry):
    import subprocess

    adapter = registry.adapter_path("v0")
    adapter.write_bytes(adapter.read_bytes() + b"tampered")
    settings = fresh_stream_settings(default_settings, broker, tmp_path).model_copy(
        update={"registry_dir": registry.path})
    done = subprocess.run([sys.executable, "-m", "streamer", "worker"], env=settings_env(settings),
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith(
        f"Error: model registry {registry.path}: version v0: adapter file changed: {adapter} has sha256 ")
