"""Throughput through Kafka: a real `streamer worker` process, N messages produced at once, every output read back.

`streamer bench --kafka N` runs this after the in-process benchmark, on the
same machine in the same run, and reports the ratio of the two rates: what the
stream costs on top of parsing (consume, IPC to the parser process, publish,
acknowledgements, commits). The worker gets fresh topics on the embedded broker
(or on `--broker`), so nothing else is read or written.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import orjson

from schemas import ChatMessage
from streamer.settings import Settings

READY_TIMEOUT_S = 180.0  # model load + the group's first join


class KafkaBenchError(RuntimeError):
    """The worker died or stopped producing outputs; the message says where its log is."""


def _bench_settings(settings: Settings, broker_url: str) -> Settings:
    from streamer.streaming.broker import free_port

    run = f"bench{uuid.uuid4().hex[:8]}"
    return settings.model_copy(update={
        "broker_url": broker_url, "group_id": run,
        "input_topic": f"{run}.chat.raw", "parsed_topic": f"{run}.trades.parsed",
        "review_topic": f"{run}.trades.review", "deadletter_topic": f"{run}.chat.deadletter",
        "nontrade_topic": f"{run}.chat.nontrade",
        "session_timeout_s": 6.0, "rebalance_timeout_s": 6.0,  # the dev profile: a quick first join
        "web_port": free_port(),
    })


def run_kafka_benchmark(settings: Settings, messages: list[ChatMessage], embedded: bool, progress=None,
                        rate: float | None = None) -> dict:
    """Start a worker, wait until it answers one message, then time `messages` until every output is read back.

    The messages are produced at once (a backlog: throughput), or at `rate` a
    second (a steady stream: latency under sustained load) by a thread while
    this one reads. Latency per message is from its produce call to its output
    being read back, so for a backlog it includes the time spent queueing.
    """
    from confluent_kafka import Consumer, Producer

    from streamer.streaming.kafka import consumer_config, produce, producer_config
    from streamer.streaming.pipeline import Topics
    from streamer.streaming.worker import ensure_pipeline_topics

    broker = None
    if embedded:
        from streamer.streaming.broker import free_port, start_broker

        broker = start_broker(port=free_port())
        settings = _bench_settings(settings, broker.url)
    else:
        settings = _bench_settings(settings, settings.broker_url)
    log_file = tempfile.NamedTemporaryFile(prefix="streamer-bench-worker-", suffix=".log", delete=False)
    worker = None
    try:
        ensure_pipeline_topics(settings)
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
        worker = subprocess.Popen([sys.executable, "-m", "streamer", "worker"], env={**env, **settings.to_env()},
                                  stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True)
        topics = Topics.from_settings(settings)
        # the reader is the stopwatch: Tansu holds a fetch that finds nothing for part of fetch.wait.max.ms
        consumer = Consumer(consumer_config(settings, f"{settings.group_id}-reader", **{"fetch.wait.max.ms": 10}))
        consumer.subscribe(list(topics.outputs()))
        producer = Producer(producer_config(settings, **{"linger.ms": 5}))

        def send(batch: list[ChatMessage], sent: dict[str, float], pace: float | None = None) -> dict[str, float]:
            begin = time.perf_counter()
            for number, message in enumerate(batch):
                if pace:
                    time.sleep(max(0.0, begin + number / pace - time.perf_counter()))
                sent[message.message_id] = time.perf_counter()
                produce(producer, settings.input_topic, message.to_json(), message.message_id)
                producer.poll(0)
            producer.flush(30)
            return sent

        def read(expected: dict[str, float], deadline_s: float, on_read=None) -> tuple[dict[str, float], dict[str, int]]:
            done, by_topic = {}, {}
            last_progress = time.monotonic()
            while len(done) < len(expected):
                if worker.poll() is not None:
                    raise KafkaBenchError(f"the worker exited with status {worker.returncode}; its log: {log_file.name}")
                if time.monotonic() - last_progress > deadline_s:
                    raise KafkaBenchError(f"no output for {deadline_s:.0f} s with {len(expected) - len(done)} "
                                          f"messages unanswered; the worker's log: {log_file.name}")
                for record in consumer.consume(num_messages=500, timeout=0.02):  # returns at the timeout when fewer arrived
                    if record.error():
                        continue
                    message_id = _message_id(record.value())
                    if message_id in expected and message_id not in done:
                        done[message_id] = time.perf_counter()
                        by_topic[record.topic()] = by_topic.get(record.topic(), 0) + 1
                        last_progress = time.monotonic()
                        if on_read:
                            on_read()
            return done, by_topic

        warmup = [ChatMessage(text=messages[0].text, message_id=f"warmup-{uuid.uuid4().hex[:8]}")]
        read(send(warmup, {}), READY_TIMEOUT_S)
        batch = [ChatMessage(text=m.text, timestamp=m.timestamp, message_id=f"m{i}-{uuid.uuid4().hex[:6]}")
                 for i, m in enumerate(messages)]
        sent: dict[str, float] = {}
        expected = dict.fromkeys((m.message_id for m in batch), 0.0)
        started = time.perf_counter()
        sender = threading.Thread(target=send, args=(batch, sent, rate), daemon=True)
        sender.start()
        done, by_topic = read(expected, 120.0, on_read=progress)
        sender.join()
        wall = max(done.values()) - started
        latencies = sorted((done[m] - sent[m]) * 1000 for m in sent)
        consumer.close()
        return {
            "kafka_messages": len(batch), "kafka_produced": f"{rate:g} msg/s" if rate else "all at once",
            "kafka_throughput_msg_s": round(len(batch) / wall, 2),
            "kafka_latency_ms_p50": round(latencies[len(latencies) // 2], 1),
            "kafka_latency_ms_p95": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 1),
            "kafka_outputs": ", ".join(f"{t.split('.', 1)[-1]} {n}" for t, n in sorted(by_topic.items())),
        }
    finally:
        if worker is not None and worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(30)
            except subprocess.TimeoutExpired:
                worker.kill()
        log_file.close()
        if broker is not None:
            broker.stop()
        if worker is not None and worker.returncode in (0, -signal.SIGTERM):
            Path(log_file.name).unlink(missing_ok=True)


def _message_id(value: bytes) -> str | None:
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    return data.get("message_id") or (data.get("message") or {}).get("message_id")
