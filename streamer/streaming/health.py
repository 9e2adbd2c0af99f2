"""GET /metrics, /health and /ready on a worker's web server (web_host:web_port), the same answers in both runners.

- `/metrics`: the worker's `WorkerMetrics` in Prometheus' text format.
- `/health`: 200 while the process runs and its consuming loop (Faust agent, transactional loop) has not died;
  503 `{"error": "<why>"}` otherwise. For a liveness probe: restart on failure.
- `/ready`: 200 once the parser has its model loaded and the consumer has input partitions assigned;
  503 `{"error": "<why>"}` otherwise. For a readiness probe: a worker beyond the partition count is
  never ready, by design (it holds no partition to work on).

The Faust worker serves them on Faust's own web server (`register_probes`, like
POST /ingest); the exactly-once worker has no web server, so `ProbeServer`
serves them from a daemon thread. Both answer through `Probes.respond`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
from prometheus_client import CONTENT_TYPE_LATEST

from streamer.settings import Settings
from streamer.streaming.metrics import WorkerMetrics, consumer_lag

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
HEALTH_PATH = "/health"
READY_PATH = "/ready"
JSON = "application/json"

Check = Callable[[], "str | None"]  # None when fine, else the reason in one line


def parser_problem(parser) -> str | None:
    """Why `parser` cannot parse yet, or None (`ParserProcess.description` is set once its child has the model)."""
    if parser is None or not getattr(parser, "description", ""):
        return "the parser has not loaded its model"
    return None


def assignment_problem(partitions, topic: str) -> str | None:
    return None if partitions else f"no partition of {topic} is assigned to this worker"


class Probes:
    """What GET /metrics, /health and /ready answer, from the metrics and two checks."""

    def __init__(self, metrics: WorkerMetrics, alive: Check, ready: Check):
        self.metrics = metrics
        self.alive = alive
        self.ready = ready

    def respond(self, path: str) -> tuple[int, str, bytes]:
        """(status, content type, body) for GET `path`; 404 for any other path."""
        if path == METRICS_PATH:
            return 200, CONTENT_TYPE_LATEST, self.metrics.exposition()
        check = {HEALTH_PATH: self.alive, READY_PATH: self.ready}.get(path)
        if check is None:
            return 404, JSON, orjson.dumps({"error": f"no page {path}"})
        try:
            problem = check()
        except Exception as err:  # a probe must answer, whatever the client library raised
            problem = f"{type(err).__name__}: {err}"
        if problem is None:
            return 200, JSON, orjson.dumps({"status": "ok"})
        return 503, JSON, orjson.dumps({"error": problem})


# -- the Faust worker -------------------------------------------------------------------


def register_probes(app, metrics: WorkerMetrics, parser, settings: Settings) -> Probes:
    """Serve the three pages on `app`'s web server and refresh the lag gauge every `lag_refresh_s`."""
    from faust.web import View

    def alive() -> str | None:
        down = [name for name, agent in app.agents.items() if agent.crashed or not agent.started]
        return f"agent {', '.join(down)} is not running" if down else None

    def ready() -> str | None:
        partitions = [tp for tp in app.consumer.assignment() if tp.topic == settings.input_topic]
        return parser_problem(parser) or assignment_problem(partitions, settings.input_topic)

    probes = Probes(metrics, alive, ready)

    def page(path: str):
        class Probe(View):
            async def get(self, request):
                status, content_type, body = probes.respond(path)
                # not content_type=: aiohttp refuses a charset in it, and the exposition's type carries one
                return self.bytes(body, status=status, headers={"Content-Type": content_type})

        Probe.__name__ = Probe.__qualname__ = f"Probe{path.strip('/').title()}"
        app.page(path)(Probe)

    for path in (METRICS_PATH, HEALTH_PATH, READY_PATH):
        page(path)

    @app.timer(interval=settings.lag_refresh_s)
    async def refresh_consumer_lag():
        await refresh_faust_lag(app.consumer, settings.input_topic, metrics)

    return probes


async def refresh_faust_lag(consumer, topic: str, metrics: WorkerMetrics) -> None:
    """Lag of each `topic` partition Faust's consumer holds: its high watermark - the offset Faust last committed.

    `_committed_offset` is Faust's own record of what it committed (read from
    the broker on assignment, updated on each commit; faust-streaming 0.15.3
    has no public accessor), so the refresh costs one ListOffsets request.
    """
    try:
        partitions = {tp for tp in consumer.assignment() if tp.topic == topic}  # not Faust's own assignor topic
        if not partitions:
            metrics.set_consumer_lag({})
            return
        highs = await consumer.highwaters(*partitions)
        committed = {tp: consumer._committed_offset.get(tp) for tp in partitions}
        unset = [tp for tp, offset in committed.items() if offset is None]
        starts = await consumer.earliest_offsets(*unset) if unset else {}
    except Exception as err:  # a broker hiccup must not stop the timer; the gauge keeps its last values
        log.warning("consumer lag not refreshed: %s", err)
        return
    metrics.set_consumer_lag(consumer_lag({(tp.topic, tp.partition): high for tp, high in highs.items()},
                                          {(tp.topic, tp.partition): o for tp, o in committed.items()},
                                          {(tp.topic, tp.partition): o for tp, o in starts.items()}))


# -- the exactly-once worker ------------------------------------------------------------


class ProbeServer:
    """The three pages on host:port from a daemon thread; `close()` stops it."""

    def __init__(self, probes: Probes, host: str, port: int):
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                status, content_type, body = probes.respond(self.path.split("?", 1)[0])
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format, *args):  # no access log: Prometheus scrapes every few seconds
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)  # OSError when the port is taken
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="probes", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)
