"""`streamer produce`: chat lines (plain text or ChatMessage JSONL) onto the input topic.

Each good line becomes one `ChatMessage` record keyed by channel (see
`pipeline.message_key`), stamped with the time it was read when it has no
timestamp, and sent with an idempotent acks=all producer. Bad lines are
reported with their line number and not sent; a record the broker does not
acknowledge is reported too. Nothing is dropped without a line on stderr.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import IO, Callable

from schemas import ChatMessage, derive_message_id
from streamer.settings import Settings
from streamer.streaming.pipeline import message_key


@dataclass
class ProduceReport:
    sent: int = 0
    bad_lines: int = 0
    undelivered: int = 0
    message_ids: list[str] = field(default_factory=list)


def with_timestamp(message: ChatMessage, now: datetime) -> ChatMessage:
    """Stamp a message that has no time; its id is derived again unless the sender chose it."""
    if message.timestamp is not None:
        return message
    data = message.model_dump()
    data["timestamp"] = now
    if message.message_id == derive_message_id(message.text, None):
        data["message_id"] = ""
    return ChatMessage.model_validate(data)


def produce_messages(
    settings: Settings,
    stream: IO[bytes],
    name: str,
    on_error: Callable[[str], None],
    on_line: Callable[[int], None] = lambda number: None,
    flush_timeout_s: float = 30.0,
) -> ProduceReport:
    """Send every good line of `stream` to the input topic and wait for the broker's acknowledgements."""
    from confluent_kafka import Producer

    from streamer.ingest.lines import read_message_lines
    from streamer.streaming.kafka import produce, producer_config

    report = ProduceReport()
    producer = Producer(producer_config(settings))

    def delivered(number: int, message_id: str):
        def callback(err, record) -> None:
            if err is None:
                report.sent += 1
                report.message_ids.append(message_id)
            else:
                report.undelivered += 1
                on_error(f"{name}:{number}: not delivered ({err.str()})")
        return callback

    for number, message, error in read_message_lines(stream, name):
        if message is not None:
            message = with_timestamp(message, datetime.now(timezone.utc))
            value = message.to_json()
            if len(value) > settings.max_message_bytes:
                error = f"{name}:{number}: {len(value)} bytes, more than max_message_bytes={settings.max_message_bytes}"
        if error:
            report.bad_lines += 1
            on_error(error)
        else:
            refused = produce(producer, settings.input_topic, value, message_key(message),
                              delivered(number, message.message_id))
            if refused is not None:
                report.undelivered += 1
                on_error(f"{name}:{number}: not sent ({refused.str()})")
        on_line(number)
    left = producer.flush(flush_timeout_s)
    if left:
        report.undelivered += left
        on_error(f"{left} records unacknowledged after {flush_timeout_s:.0f} s; is the broker at {settings.broker_url} up?")
    return report
