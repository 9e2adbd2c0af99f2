"""The stream's one path, top to bottom: record -> decode -> parse (or dead-letter) -> route.

Every runner calls `process` for each input record and publishes the result to
`topics.route(result)`: the Faust worker (`faust_worker.py`, at-least-once),
the transactional worker (`transactional.py`, exactly-once), `streamer
reprocess` (`history/reprocess.py`); HTTP ingest (`ingest/http.py`) checks its
bodies with the same `decode`. What differs between runners is only how
offsets are committed.

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
- The parser is sure the message holds no trade (intent `none`: "gm all") -> the
  `Trade` goes to the non-trade topic, so the parsed topic carries trades only.
- The broker does not acknowledge an output -> the worker stops with an error and
  the input is not acknowledged, so it is read again after the restart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Generic, TypeVar

import orjson
from pydantic import ValidationError

from schemas import ChatMessage, DeadLetter, DeadLetterReason, LowConfidence, SourcePosition, Trade
from streamer.settings import Settings

log = logging.getLogger(__name__)

Output = Trade | LowConfidence | DeadLetter
T = TypeVar("T")


OUTPUT_ROLES = ("parsed", "review", "deadletter", "nontrade")  # `Topics.role` values, in `outputs()` order


@dataclass(frozen=True)
class Topics(Generic[T]):
    """The pipeline's five topics, as names (`Topics.from_settings`) or as a client's topic objects."""

    input: T
    parsed: T
    review: T
    deadletter: T
    nontrade: T

    @classmethod
    def from_settings(cls, settings: Settings) -> Topics[str]:
        return cls(settings.input_topic, settings.parsed_topic, settings.review_topic, settings.deadletter_topic,
                   settings.nontrade_topic)

    def route(self, result: Output) -> T:
        """The topic `result` goes to (see `role`)."""
        return getattr(self, self.role(result))

    @staticmethod
    def role(result: Output) -> str:
        """Trade -> parsed (chatter, intent none -> nontrade), LowConfidence -> review, DeadLetter -> deadletter.

        A booking consumer of the parsed topic sees only orders, RFQs, quotes and cancels.
        """
        if result.kind == "trade" and result.intent == "none":
            return "nontrade"
        return {"trade": "parsed", "low_confidence": "review", "dead_letter": "deadletter"}[result.kind]

    def outputs(self) -> list[T]:
        return [getattr(self, role) for role in OUTPUT_ROLES]

    def all(self) -> list[T]:
        return [self.input, *self.outputs()]


class Undecodable(ValueError):
    """Bytes that cannot become a `ChatMessage`; `reason` is the dead-letter class."""

    def __init__(self, reason: DeadLetterReason, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


# -- decode ---------------------------------------------------------------------------


def json_object(value: bytes) -> dict:
    """UTF-8 -> JSON -> an object: the steps every record of ours is read through; raises `Undecodable`."""
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
    return data


def first_error(err: ValidationError, what: str = "record") -> str:
    """A pydantic error in one line: where the first problem is, and what it is."""
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or what
    more = f" ({err.error_count()} errors)" if err.error_count() > 1 else ""
    return f"{where}: {first['msg']}{more}"


def decode(value: bytes | None, max_bytes: int, default_timestamp: datetime) -> ChatMessage:
    """Size limit -> UTF-8 -> JSON object -> `ChatMessage`; raises `Undecodable` with the reason.

    A message without a timestamp gets `default_timestamp` (the record's broker
    time) before its id is derived, so a re-read derives the same `message_id`.
    """
    if value is None:
        raise Undecodable("schema_invalid", "the record has no value")
    if len(value) > max_bytes:
        raise Undecodable("oversize", f"{len(value)} bytes, more than max_message_bytes={max_bytes}")
    data = json_object(value)
    if data.get("timestamp") is None:
        data["timestamp"] = default_timestamp
    try:
        return ChatMessage.model_validate(data)
    except ValidationError as err:
        raise Undecodable("schema_invalid", first_error(err, "message")) from None


def message_key(message: ChatMessage) -> str:
    """The Kafka key of a message and of its output: same channel, same partition, same order."""
    return message.channel or message.sender or message.message_id


# -- parse ----------------------------------------------------------------------------


def result_or_dead_letter(outcome: Output | Exception, message: ChatMessage, position: SourcePosition,
                          payload: bytes, key: bytes | None) -> Output:
    """A parse outcome as what is published: the result itself, or the dead letter its failure calls for."""
    from streamer.parsing import ParseError
    from streamer.parsing.process import ParserCrashed, ParserUnavailable

    if not isinstance(outcome, BaseException):
        return outcome
    if isinstance(outcome, ParseError):
        return DeadLetter.from_bytes(payload, "processing_error", str(outcome), position, key)
    if isinstance(outcome, ParserCrashed):
        log.error("dead-lettering %s at %s:%d@%d: %s", message.message_id, position.topic, position.partition,
                  position.offset, outcome)
        return DeadLetter.from_bytes(payload, "processing_crash", str(outcome), position, key)
    if isinstance(outcome, ParserUnavailable) or not isinstance(outcome, Exception):
        raise outcome  # no message can be parsed: stop, leaving this one unacknowledged for the next worker
    # a parser bug must cost one message, not the worker
    log.error("parser failed on %s at %s:%d@%d", message.message_id, position.topic, position.partition,
              position.offset, exc_info=outcome)
    return DeadLetter.from_bytes(payload, "processing_error", f"{type(outcome).__name__}: {outcome}", position, key)


# -- one record -----------------------------------------------------------------------


def process(value: bytes | None, key: bytes | None, position: SourcePosition, parser,
            max_bytes: int) -> tuple[Output, bytes | None]:
    """One input record -> (its result, the output's key); never raises for bad input or a parser failure.

    A dead letter of undecodable bytes keeps the record's own key; any other
    result is keyed by its message (`message_key`), so a channel's results stay
    on one partition, in order. The same as `process_batch` of one record.
    """
    return process_batch([(value, key, position)], parser, max_bytes)[0]


def process_batch(records: list[tuple[bytes | None, bytes | None, SourcePosition]], parser,
                  max_bytes: int) -> list[tuple[Output, bytes | None]]:
    """`process` for several (value, key, position) records, the decodable ones parsed together.

    The parser's `parse_batch` runs llama.cpp on the whole batch at once; each
    record still gets exactly one result, in order, and a failure costs only
    its own record.
    """
    outputs: list[tuple[Output, bytes | None] | None] = [None] * len(records)
    decoded: list[tuple[int, ChatMessage]] = []
    for index, (value, key, position) in enumerate(records):
        try:
            decoded.append((index, decode(value, max_bytes, position.timestamp or datetime.now(timezone.utc))))
        except Undecodable as bad:
            outputs[index] = DeadLetter.from_bytes(value or b"", bad.reason, bad.detail, position, key), key
    if decoded:
        from streamer.parsing.process import parse_batch

        messages = [message for _, message in decoded]
        positions = [records[index][2] for index, _ in decoded]
        try:
            outcomes = parse_batch(parser, messages, positions)
        except Exception as err:  # the whole call failed: every message's outcome (ParserUnavailable re-raises)
            outcomes = [err] * len(messages)
        for (index, message), outcome in zip(decoded, outcomes):
            value, key, position = records[index]
            outputs[index] = (result_or_dead_letter(outcome, message, position, value, key),
                              message_key(message).encode())
    return outputs
