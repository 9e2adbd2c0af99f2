"""The at-least-once worker: a Faust app whose agent runs the pipeline and acks each input after its output.

Delivery: an input's offset is acknowledged to Faust (which commits it every
`commit_interval_s`) only after its output was written to all in-sync replicas
(acks=all). A crash in between re-parses the message; outputs carry
`message_id` and the source position, so consumers can drop duplicates.
(`transactional.py` is the exactly-once mode.)

Values travel as orjson bytes of the pydantic models in `schemas` (codec
`pydantic-orjson`), never Faust's default JSON codec. The input topic is read
as raw bytes so that undecodable records reach the dead-letter topic unchanged.
The parser runs in one worker thread (llama.cpp itself in the parser process),
so heartbeats, rebalances and the web server go on during a long generation.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import faust
import orjson
from faust.serializers import codecs
from pydantic import BaseModel

from schemas import SourcePosition
from streamer.settings import Settings
from streamer.streaming.metrics import WorkerMetrics
from streamer.streaming.pipeline import OUTPUT_ROLES, Output, Topics, process_batch

CODEC = "pydantic-orjson"
LOG_COUNTS_EVERY_S = 60.0


class PydanticOrjsonCodec(codecs.Codec):
    """Encodes a `schemas` model with its own `to_json()`; decodes to plain JSON values."""

    def _dumps(self, obj) -> bytes:
        return obj.to_json() if isinstance(obj, BaseModel) else orjson.dumps(obj)

    def _loads(self, s: bytes):
        return orjson.loads(s)


codecs.register(CODEC, PydanticOrjsonCodec())


def _with_fetch_max_wait(fetch_max_wait_ms: int) -> None:
    """Make Faust's aiokafka consumers ask the broker to hold an empty fetch at most this long.

    faust-streaming 0.15 hard-codes fetch_max_wait_ms=1500 and has no setting
    for it. Apache Kafka answers a waiting fetch as soon as data arrives, but
    Tansu (the embedded broker) measured ~550 ms per message with 1500 and
    ~2 ms with 100. aiokafka reads the value when the consumer starts, so it is
    set on the consumer Faust has just built, before that.
    """
    from faust.transport.drivers import aiokafka as driver

    thread_class = driver.AIOKafkaConsumerThread
    if not hasattr(thread_class, "_streamer_create_worker_consumer"):
        thread_class._streamer_create_worker_consumer = thread_class._create_worker_consumer

        def create_worker_consumer(self, transport):
            consumer = self._streamer_create_worker_consumer(transport)
            consumer._fetch_max_wait_ms = thread_class._streamer_fetch_max_wait_ms
            return consumer

        thread_class._create_worker_consumer = create_worker_consumer
    thread_class._streamer_fetch_max_wait_ms = fetch_max_wait_ms


def create_app(settings: Settings) -> faust.App:
    """A Faust app whose consumer group is `group_id`, acks=all, committing only acknowledged work."""
    from streamer.streaming.security import faust_credentials

    _with_fetch_max_wait(settings.fetch_max_wait_ms)
    return faust.App(
        settings.group_id,
        broker=settings.broker_url,
        broker_credentials=faust_credentials(settings),  # TLS/SASL, as every confluent-kafka client gets them
        autodiscover=False,
        key_serializer="raw",
        value_serializer=CODEC,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",  # a new group must not skip what was sent before it joined
        producer_acks=-1,
        producer_request_timeout=settings.publish_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        stream_wait_empty=True,  # on rebalance and shutdown, finish the message in flight first
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        datadir=str(settings.data_dir),
    )


def declare_topics(app: faust.App, settings: Settings) -> Topics[faust.TopicT]:
    """The pipeline's topics on `app`: raw bytes in, pydantic-orjson out."""
    names = Topics.from_settings(settings)

    def output(name: str) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer=CODEC, partitions=settings.topic_partitions)

    return Topics(
        input=app.topic(names.input, key_serializer="raw", value_serializer="raw", partitions=settings.topic_partitions),
        parsed=output(names.parsed), review=output(names.review), deadletter=output(names.deadletter),
        nontrade=output(names.nontrade),
    )


def source_position(record) -> SourcePosition:
    """Where a Faust `Message` came from (its broker timestamp too, when it has one)."""
    stamp = datetime.fromtimestamp(record.timestamp, timezone.utc) if record.timestamp else None
    return SourcePosition(topic=record.topic, partition=record.partition, offset=record.offset, timestamp=stamp)


async def publish(topic, key: str | bytes | None, value: Output | bytes) -> None:
    """Send and wait until all in-sync replicas have the record (acks=all); raises if they never do."""
    delivered = await topic.send(key=key, value=value)
    await delivered


def register_agents(app: faust.App, topics: Topics[faust.TopicT], settings: Settings, parser,
                    metrics: WorkerMetrics | None = None) -> WorkerMetrics:
    """Attach the `parse_chat` agent to `app`: micro-batches of up to `batch_max_messages`, one parser thread.

    Each batch is counted in `metrics` (a new `WorkerMetrics` when not given) once its outputs are acknowledged.
    """
    from mode.supervisors import CrashingSupervisor

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parser")
    metrics = metrics or WorkerMetrics.for_worker(settings, parser)
    published = metrics.published

    @app.timer(interval=LOG_COUNTS_EVERY_S)
    async def log_counts():
        if published:
            app.log.info("published since start: %s", ", ".join(f"{role} {published[role]}" for role in OUTPUT_ROLES))

    @app.agent(topics.input, name="parse_chat", supervisor_strategy=CrashingSupervisor)
    async def parse_chat(stream):
        loop = asyncio.get_running_loop()
        async for batch in micro_batches(stream.noack().events(), settings.batch_max_messages,
                                         settings.batch_max_wait_ms / 1000):
            records = [(event.message.value, event.message.key, source_position(event.message)) for event in batch]
            started = time.perf_counter()
            results = await loop.run_in_executor(executor, process_batch, records, parser, settings.max_message_bytes)
            parse_s = time.perf_counter() - started
            sent = [await topics.route(result).send(key=key, value=result) for result, key in results]
            for delivered in sent:  # every output on all in-sync replicas (acks=all) before any input is acked
                await delivered
            metrics.record_batch(results, parse_s, getattr(parser, "restarts", 0))
            for event in batch:
                await stream.ack(event)

    return metrics


async def micro_batches(events, max_messages: int, max_wait_s: float):
    """Lists of up to `max_messages` events: the first waits as long as it takes, the rest at most `max_wait_s`.

    A pending read is never cancelled (that would break the stream's
    iterator); one still waiting when the batch closes becomes the first event
    of the next batch. Nothing is acknowledged here.
    """
    iterator = events.__aiter__()
    pending = None
    while True:
        try:
            first = await (pending if pending is not None else iterator.__anext__())
        except StopAsyncIteration:
            return
        pending = None
        batch = [first]
        deadline = asyncio.get_running_loop().time() + max_wait_s
        while len(batch) < max_messages:
            pending = asyncio.ensure_future(iterator.__anext__())
            left = deadline - asyncio.get_running_loop().time()
            done, _ = await asyncio.wait({pending}, timeout=max(left, 0.001))
            if not done:
                break
            try:
                batch.append(pending.result())
            except StopAsyncIteration:
                yield batch
                return
            pending = None
        yield batch


def run(settings: Settings, parser) -> None:
    """Consume until SIGTERM/SIGINT (graceful: finish the message in flight, commit, leave the group)."""
    from streamer.ingest.http import register_ingest
    from streamer.streaming.health import register_probes

    app = create_app(settings)
    topics = declare_topics(app, settings)
    metrics = register_agents(app, topics, settings, parser)
    register_probes(app, metrics, parser, settings)  # GET /metrics, /health, /ready
    register_ingest(app, topics.input, settings)
    faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()
