"""`streamer dev` supervises its worker: a crash is one line and a non-zero exit, and the broker always stops.

Real embedded broker, real worker subprocess; the parser is the stand-in
(`tests/standin_parser.py`): these tests are about processes, not parsing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from standin_parser import CRASHING_AT_LOAD, FACTORY
from streaming_helpers import settings_env

from streamer.settings import Settings
from streamer.streaming.broker import free_port, is_listening

pytestmark = pytest.mark.integration


class Dev:
    """`streamer dev` on free ports, its output in a file."""

    def __init__(self, tmp_path: Path, factory: str = FACTORY):
        self.broker_port, self.web_port = free_port(), free_port()
        settings = Settings(parser_factory=factory, data_dir=tmp_path / "data", web_port=self.web_port,
                            broker_url=f"kafka://127.0.0.1:{self.broker_port}")
        self.log_path = tmp_path / "dev.log"
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "streamer", "dev"], env=settings_env(settings),
                                            stdout=log, stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not is_listening("127.0.0.1", self.web_port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dev never served its web port (status {self.process.poll()}):\n{self.log()}")
            time.sleep(0.2)

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        workers = [int(pid) for pid in children if b"worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 1, children
        return workers[0]

    def wait(self, timeout_s: float = 60.0) -> int:
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail(f"dev did not exit:\n{self.log()}")

    def assert_ports_free(self) -> None:
        assert not is_listening("127.0.0.1", self.broker_port), f"the broker outlived dev:\n{self.log()}"
        assert not is_listening("127.0.0.1", self.web_port), f"the worker outlived dev:\n{self.log()}"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_worker_and_broker_and_exits_zero(tmp_path, signum):
    dev = Dev(tmp_path)
    dev.wait_ready()
    dev.process.send_signal(signum)
    assert dev.wait() == 0, dev.log()
    dev.assert_ports_free()


def test_a_worker_killed_by_sigill_is_one_line_and_a_non_zero_exit(tmp_path):
    dev = Dev(tmp_path)
    dev.wait_ready()
    os.kill(dev.worker_pid(), signal.SIGILL)
    assert dev.wait() != 0
    last = dev.log().strip().splitlines()[-1]
    assert "worker was killed by SIGILL" in last and "Troubleshooting" in last, last
    dev.assert_ports_free()


def test_a_parser_that_dies_loading_the_model_stops_dev_with_the_cause(tmp_path):
    dev = Dev(tmp_path, factory=CRASHING_AT_LOAD)
    assert dev.wait(90) != 0
    assert "parser process was killed by SIGILL (Illegal instruction) while loading the model" in dev.log()
    assert "worker exited with status 1" in dev.log().strip().splitlines()[-1]
    dev.assert_ports_free()
