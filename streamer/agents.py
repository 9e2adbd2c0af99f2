"""The stream, top to bottom: chat.raw -> decode -> parse -> route -> publish -> ack.

Failure policy: every record ends on exactly one output topic.
- `oversize`, `not_utf8`, `not_json`, `schema_invalid`: the bytes cannot become a
  `ChatMessage` -> `DeadLetter` with the original bytes and key, on the dead-letter topic.
- `processing_error`: the parser could not attempt the message (longer than the
  context) or raised -> `DeadLetter` as well; the worker goes on.
- `processing_crash`: the parser process died (a native crash in llama.cpp) each
  of `max_parse_crashes` times it had this message -> `DeadLetter` with the
  signal; the worker goes on with a fresh parser process (`parsing/process.py`).
  A parser process that cannot even load the model stops the worker.
- The parser is unsure -> `LowConfidence` on the review topic, with its reasons.
- The broker does not acknowledge an output -> the worker stops with an error and
  the input is not acknowledged, so it is read again after the restart.

Delivery is at-least-once here (`exactly_once.py` is the transactional mode): an input's offset is acknowledged to Faust (which
commits it every `commit_interval_s`) only after its output was written to all
in-sync replicas (acks=all). A crash in between re-parses the message; outputs
carry `message_id` and the source position, so consumers can drop duplicates.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import orjson
from pydantic import ValidationError

from schemas import ChatMessage, DeadLetter, DeadLetterReason, LowConfidence, SourcePosition, Trade
from streamer.settings import Settings

log = logging.getLogger(__name__)

Output = Trade | LowConfidence | DeadLetter


class Undecodable(ValueError):
    """Bytes that cannot become a `ChatMessage`; `reason` is the dead-letter class."""

    def __init__(self, reason: DeadLetterReason, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def source_position(record) -> SourcePosition:
    """Where a Faust `Message` came from (its broker timestamp too, when it has one)."""
    stamp = datetime.fromtimestamp(record.timestamp, timezone.utc) if record.timestamp else None
    return SourcePosition(topic=record.topic, partition=record.partition, offset=record.offset, timestamp=stamp)


# -- decode ---------------------------------------------------------------------------


def decode(value: bytes | None, max_bytes: int, default_timestamp: datetime) -> ChatMessage:
    """Size limit -> UTF-8 -> JSON object -> `ChatMessage`; raises `Undecodable` with the reason.

    A message without a timestamp gets `default_timestamp` (the record's broker
    time) before its id is derived, so a re-read derives the same `message_id`.
    """
    if value is None:
        raise Undecodable("schema_invalid", "the record has no value")
    if len(value) > max_bytes:
        raise Undecodable("oversize", f"{len(value)} bytes, more than max_message_bytes={max_bytes}")
    try:
        value.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Undecodable("not_utf8", f"{err.reason} at byte {err.start}") from None
    try:
        data = orjson.loads(value)
    except orjson.JSONDecodeError as err:
        raise Undecodable("not_json", str(err).splitlines()[0]) from None
    if not isinstance(data, dict):
        raise Undecodable("schema_invalid", f"expected a JSON object, got {type(data).__name__}")
    if data.get("timestamp") is None:
        data["timestamp"] = default_timestamp
    try:
        return ChatMessage.model_validate(data)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "message"
        raise Undecodable("schema_invalid", f"{where}: {first['msg']}") from None


def message_key(message: ChatMessage) -> str:
    """The Kafka key of a message and of its output: same channel, same partition, same order."""
    return message.channel or message.sender or message.message_id


# -- parse ----------------------------------------------------------------------------


def parse_or_dead_letter(parser, message: ChatMessage, position: SourcePosition, payload: bytes,
                         key: bytes | None) -> Output:
    """The parser's result, or a dead letter when it cannot attempt the message or dies on it."""
    from streamer.parsing import ParseError
    from streamer.parsing.process import ParserCrashed, ParserUnavailable

    try:
        return parser.parse(message, position)
    except ParseError as err:
        return DeadLetter.from_bytes(payload, "processing_error", str(err), position, key)
    except ParserCrashed as err:
        log.error("dead-lettering %s at %s:%d@%d: %s", message.message_id, position.topic, position.partition,
                  position.offset, err)
        return DeadLetter.from_bytes(payload, "processing_crash", str(err), position, key)
    except ParserUnavailable:
        raise  # no message can be parsed: stop, leaving this one unacknowledged for the next worker
    except Exception as err:  # a parser bug must cost one message, not the worker
        log.exception("parser failed on %s at %s:%d@%d", message.message_id, position.topic,
                      position.partition, position.offset)
        return DeadLetter.from_bytes(payload, "processing_error", f"{type(err).__name__}: {err}", position, key)


async def parse(parser, executor: ThreadPoolExecutor, message: ChatMessage, position: SourcePosition,
                payload: bytes, key: bytes | None) -> Output:
    """Run the parser in its own thread, so heartbeats and rebalances go on during a generation."""
    return await asyncio.get_running_loop().run_in_executor(
        executor, parse_or_dead_letter, parser, message, position, payload, key)


# -- route and publish ----------------------------------------------------------------


def route(result: Output, topics):
    """Trade -> parsed, LowConfidence -> review, DeadLetter -> dead letters."""
    return {"trade": topics.parsed, "low_confidence": topics.review, "dead_letter": topics.deadletter}[result.kind]


async def publish(topic, key: str | bytes | None, value: Output | bytes) -> None:
    """Send and wait until all in-sync replicas have the record (acks=all); raises if they never do."""
    delivered = await topic.send(key=key, value=value)
    await delivered


def register_agents(app, topics, settings: Settings, parser) -> None:
    """Attach the `parse_chat` agent to `app`; one message at a time, one parser thread."""
    from mode.supervisors import CrashingSupervisor

    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="parser")

    @app.agent(topics.input, name="parse_chat", supervisor_strategy=CrashingSupervisor)
    async def parse_chat(stream):
        async for event in stream.noack().events():  # acked by hand, after the output is safe
            record = event.message
            position = source_position(record)
            try:
                message = decode(record.value, settings.max_message_bytes,
                                 position.timestamp or datetime.now(timezone.utc))
            except Undecodable as bad:
                result = DeadLetter.from_bytes(record.value or b"", bad.reason, bad.detail, position, record.key)
                key = record.key
            else:
                result = await parse(parser, executor, message, position, record.value, record.key)
                key = message_key(message)
            await publish(route(result, topics), key, result)
            await stream.ack(event)
