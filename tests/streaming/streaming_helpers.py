"""Helpers for the streaming tests: settings on fresh topics, a worker subprocess, readers, offsets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from streamer.settings import Settings

WAIT_S = 120.0  # generous: the machine is shared; no test asserts on time


def fresh_stream_settings(base_settings: Settings, broker, tmp_path: Path, partitions: int = 2) -> Settings:
    from streamer.streaming.broker import free_port
    from streamer.streaming.kafka import ensure_topics
    from streamer.streaming.pipeline import Topics

    run = uuid.uuid4().hex[:8]
    settings = base_settings.model_copy(update={
        "broker_url": broker.url,
        "input_topic": f"t{run}.chat.raw",
        "parsed_topic": f"t{run}.trades.parsed",
        "review_topic": f"t{run}.trades.review",
        "deadletter_topic": f"t{run}.chat.deadletter",
        "nontrade_topic": f"t{run}.chat.nontrade",
        "topic_partitions": partitions,
        "group_id": f"t{run}",
        "session_timeout_s": 6.0,
        "rebalance_timeout_s": 6.0,
        "web_port": free_port(),
        "data_dir": tmp_path / "streamer-data",
    })
    ensure_topics(settings, Topics.from_settings(settings).all())
    return settings


HERE = Path(__file__).resolve().parent


def settings_env(settings: Settings) -> dict[str, str]:
    """`settings` as the STREAMER_* environment a subprocess reads them from (and the stand-in parser importable)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH")]))  # standin_parser
    return {**env, **settings.to_env()}


@dataclass
class WorkerProcess:
    """`streamer worker` as a subprocess, so tests can SIGKILL and SIGTERM it."""

    settings: Settings
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self) -> "WorkerProcess":
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen([sys.executable, "-m", "streamer", "worker"],
                                            env=settings_env(self.settings), stdout=log, stderr=subprocess.STDOUT)
        return self

    def signal(self, signum: int, timeout_s: float = 60.0) -> int:
        self.process.send_signal(signum)
        return self.process.wait(timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp_ms: int

    def json(self) -> dict:
        return orjson.loads(self.value)


def read_all(settings: Settings, topics: list[str], idle_s: float = 1.0) -> list[Record]:
    """Every record now on `topics`: read by assignment (no group, nothing committed) until `idle_s` of silence.

    Not bounded by watermarks: Tansu reports the high watermark as the last
    batch's base offset + 1, which undercounts multi-record batches.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from streamer.streaming.kafka import consumer_config

    consumer = Consumer(consumer_config(settings, f"{settings.group_id}-reader"))
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for topic in topics
                         for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions])
        records: list[Record] = []
        message = consumer.poll(2 * idle_s)  # the first fetch takes ~0.5 s
        while message is not None:
            if not message.error():
                records.append(Record(message.topic(), message.partition(), message.offset(),
                                      message.key(), message.value(), message.timestamp()[1]))
            message = consumer.poll(idle_s)
        return records
    finally:
        consumer.close()


def output_topics(settings: Settings) -> list[str]:
    return [settings.parsed_topic, settings.review_topic, settings.deadletter_topic, settings.nontrade_topic]


def outputs_by_source(settings: Settings) -> dict[tuple[int, int], list[Record]]:
    """Output records grouped by the input position (partition, offset) they came from."""
    grouped: dict[tuple[int, int], list[Record]] = {}
    for record in read_all(settings, output_topics(settings)):
        source = record.json()["source"]
        assert source["topic"] == settings.input_topic
        grouped.setdefault((source["partition"], source["offset"]), []).append(record)
    return grouped


def wait_until(condition, worker: WorkerProcess, what: str, timeout_s: float = WAIT_S):
    """Poll `condition` until it returns something truthy; fail with the worker's log otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if worker.process.poll() is not None:
            pytest.fail(f"worker exited with {worker.process.returncode} while waiting for {what}:\n{worker.log_tail()}")
        time.sleep(0.5)
    pytest.fail(f"timed out waiting for {what}:\n{worker.log_tail()}")


def produce_raw(settings: Settings, values: list[tuple[bytes | None, bytes]]) -> list[tuple[int, int]]:
    """Send (key, value) byte pairs to the input topic; return their (partition, offset)."""
    from confluent_kafka import Producer

    from streamer.streaming.kafka import producer_config

    positions: list[tuple[int, int] | None] = [None] * len(values)
    producer = Producer(producer_config(settings))
    for index, (key, value) in enumerate(values):
        def delivered(err, message, index=index):
            assert err is None, err
            positions[index] = (message.partition(), message.offset())
        producer.produce(settings.input_topic, key=key, value=value, on_delivery=delivered)
    assert producer.flush(30) == 0
    return positions


def committed_offsets(settings: Settings) -> dict[int, int]:
    """The group's committed offset per input partition (0 where nothing is committed)."""
    from confluent_kafka import Consumer, TopicPartition

    from streamer.streaming.kafka import consumer_config

    consumer = Consumer(consumer_config(settings, settings.group_id))
    try:
        partitions = consumer.list_topics(settings.input_topic, timeout=10).topics[settings.input_topic].partitions
        committed = consumer.committed([TopicPartition(settings.input_topic, p) for p in partitions], timeout=10)
        return {tp.partition: max(tp.offset, 0) for tp in committed}
    finally:
        consumer.close()


def group_members(settings: Settings) -> int:
    from confluent_kafka.admin import AdminClient

    from streamer.streaming.kafka import bootstrap_servers

    admin = AdminClient({"bootstrap.servers": bootstrap_servers(settings)})
    description = admin.describe_consumer_groups([settings.group_id], request_timeout=10)[settings.group_id].result()
    return len(description.members)
