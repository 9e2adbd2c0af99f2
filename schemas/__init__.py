"""The data contracts of tradechat-streamer.

These pydantic v2 models are the interface between every stage: producers write
`ChatMessage`, the parser emits `Trade` or `LowConfidence`, the stream routes
undecodable input to `DeadLetter`, and the review desk writes each reviewer's
decision as a `Correction` (a reviewed trade carries `ReviewProvenance`). Each model has a committed JSON Schema file
beside this module (`python -m schemas` rewrites them; a test fails on drift).
Field names and values of `TradeFields` are a contract read by other tools.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime, timezone
from typing import Literal, Union

import orjson
from pydantic import BaseModel, ConfigDict, Field, model_validator

SCHEMA_VERSION = "1.2"  # 1.1: Trade.review (optional) and Correction, for the review desk; 1.2: reason models_disagree
# and Provenance.second_opinion (optional)

Intent = Literal["order", "rfq", "quote", "cancel", "none"]
Side = Literal["buy", "sell", "two_way"]
AssetClass = Literal[
    "fx_spot", "fx_forward", "fx_swap", "fx_option", "equity", "bond",
    "rates_swap", "future", "crypto", "commodity",
]
OrderType = Literal["market", "limit", "stop"]

INTENTS: tuple[str, ...] = Intent.__args__
SIDES: tuple[str, ...] = Side.__args__
ASSET_CLASSES: tuple[str, ...] = AssetClass.__args__
ORDER_TYPES: tuple[str, ...] = OrderType.__args__

ReasonCode = Literal[
    "low_confidence",          # a field's model probability is under the threshold
    "ungrounded_span",         # the model emitted text that is not in the message
    "unknown_symbol",          # the symbol is not a known pair/ticker shape
    "unknown_currency",        # not an ISO 4217 code we know
    "unparseable_value",       # a span the normalizer cannot turn into a value
    "missing_required_field",  # the intent needs a field the model left null
    "non_positive_quantity",
    "multiple_trades",         # one message, several trades: not supported yet
    "invalid_model_output",    # generation ended without a complete object
    "rules_disagree",          # the rule-based cross-check reads this field differently
    "models_disagree",         # the second-opinion adapter reads this field differently
    "instruction_like",        # the text reads as instructions to the parser (role markers, field syntax, "do not book")
    "limit_exceeded",          # over a pre-trade limit (size, notional, price band) of the limits file
]

DeadLetterReason = Literal[
    "oversize", "not_utf8", "not_json", "schema_invalid", "processing_error",
    "processing_crash",  # the parser process died (SIGILL, SIGSEGV, abort) on this message max_parse_crashes times
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> bytes:
        """Serialize with orjson (the stream's codec), dropping nothing."""
        return orjson.dumps(self.model_dump(mode="json"))


def utc(ts: datetime) -> datetime:
    """Naive timestamps are taken as UTC, so ids and replays are reproducible."""
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts


def derive_message_id(text: str, timestamp: datetime | None) -> str:
    """Deterministic id from content and time, so re-sent messages de-duplicate."""
    stamp = utc(timestamp).isoformat() if timestamp else ""
    digest = hashlib.sha256(f"{stamp}\x1f{text}".encode()).hexdigest()
    return f"msg-{digest[:24]}"


class ChatMessage(_Model):
    """A raw chat or RFQ message as it arrives on `chat.raw`."""

    model_config = ConfigDict(extra="ignore")

    message_id: str = Field(default="", description="Derived from text and timestamp when empty.")
    text: str = Field(min_length=1)
    sender: str | None = None
    channel: str | None = None
    timestamp: datetime | None = None
    source: str | None = Field(default=None, description="Where the message came from: a chat platform, a file, `cli`.")

    @model_validator(mode="after")
    def _fill_id(self) -> "ChatMessage":
        if self.timestamp is not None:
            self.timestamp = utc(self.timestamp)
        if not self.message_id:
            self.message_id = derive_message_id(self.text, self.timestamp)
        return self


class SourcePosition(_Model):
    """Where a record was read from, so consumers can de-duplicate and trace."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime | None = None


class Provenance(_Model):
    model: str
    model_sha256: str
    adapter: str | None = None
    prompt_version: str
    schema_version: str = SCHEMA_VERSION
    latency_ms: float
    prompt_tokens_evaluated: int = Field(description="Prompt tokens llama.cpp had to evaluate (the rest came from the KV cache).")
    generated_tokens: int
    model_version: str | None = Field(default=None, description="the model registry version, when the worker runs one")
    second_opinion: str | None = Field(default=None, description="the second-opinion adapter that also read the "
                                       "message (its disagreements are models_disagree reasons); null when none ran")


class TradeFields(_Model):
    """The contract fields of one trade, exactly as downstream tools read them."""

    intent: Intent
    side: Side | None = None
    asset_class: AssetClass | None = None
    symbol: str | None = None
    quantity: float | None = None
    currency: str | None = None
    price: float | None = None
    bid: float | None = None
    ask: float | None = None
    order_type: OrderType | None = None
    tenor: str | None = None
    counterparty: str | None = None


CONTRACT_FIELDS: tuple[str, ...] = tuple(TradeFields.model_fields)


class ReviewProvenance(_Model):
    """Who published a reviewed trade, from which review item, and what the model had said."""

    review_of: str = Field(description="The message_id of the reviewed message.")
    item: str = Field(description="The review record it resolves: `<topic>/<partition>/<offset>`.")
    reviewer: str
    decided_at: datetime
    model_output: TradeFields | None = Field(description="The model's fields as flagged; null if unreadable.")


class Trade(TradeFields):
    """A parsed trade, published to `trades.parsed`."""

    kind: Literal["trade"] = "trade"
    message_id: str | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    field_confidence: dict[str, float] = Field(default_factory=dict)
    provenance: Provenance | None = None
    source: SourcePosition | None = None
    review: ReviewProvenance | None = Field(default=None, description="Set when a reviewer published this trade.")


class Reason(_Model):
    code: ReasonCode
    field: str | None = None
    detail: str | None = None


class LowConfidence(_Model):
    """A message the parser is not sure about, published to `trades.review`."""

    kind: Literal["low_confidence"] = "low_confidence"
    message_id: str
    message: ChatMessage
    trade: Trade | None = Field(default=None, description="Best effort; null when the model output could not be read.")
    confidence: float = Field(ge=0.0, le=1.0)
    reasons: list[Reason]
    provenance: Provenance | None = None
    source: SourcePosition | None = None


class DeadLetter(_Model):
    """Input that could not be decoded or processed, kept byte for byte."""

    kind: Literal["dead_letter"] = "dead_letter"
    payload_b64: str = Field(description="The original record value, base64: lossless.")
    payload_text: str | None = Field(default=None, description="The value as text when it is UTF-8, for people.")
    key_b64: str | None = None
    error_class: DeadLetterReason
    error_detail: str
    source: SourcePosition | None = None
    failed_at: datetime
    schema_version: str = SCHEMA_VERSION

    @classmethod
    def from_bytes(
        cls, payload: bytes, error_class: DeadLetterReason, error_detail: str,
        source: SourcePosition | None = None, key: bytes | None = None,
    ) -> "DeadLetter":
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            text = None
        return cls(
            payload_b64=base64.b64encode(payload).decode(),
            payload_text=text,
            key_b64=base64.b64encode(key).decode() if key is not None else None,
            error_class=error_class,
            error_detail=error_detail,
            source=source,
            failed_at=datetime.now(timezone.utc),
        )

    def payload(self) -> bytes:
        return base64.b64decode(self.payload_b64)


Decision = Literal["accept", "not_trade", "skip", "dead_letter"]


class Correction(_Model):
    """One reviewer decision on one review item, published to `trades.corrections` (the learning loop's input)."""

    kind: Literal["correction"] = "correction"
    correction_id: str = Field(description="`<item>@<decided_at>`: unique per decision.")
    item: str = Field(description="The review record decided: `<topic>/<partition>/<offset>`.")
    message_id: str | None = None
    message: ChatMessage | None = Field(default=None, description="The original message; null for a malformed record.")
    model_output: Trade | None = Field(default=None, description="The trade as the model gave it, when it gave one.")
    decision: Decision
    corrected: TradeFields | None = Field(
        default=None, description="accept: the fields as published; not_trade: intent none; skip/dead_letter: null.",
    )
    reviewer: str
    decided_at: datetime
    reasons: list[Reason] = Field(default_factory=list, description="Why the parser sent it to review.")
    raw_b64: str | None = Field(default=None, description="dead_letter: the malformed record's bytes, base64.")
    schema_version: str = SCHEMA_VERSION


ParseResult = Union[Trade, LowConfidence]

SCHEMA_FILES: dict[str, type[BaseModel]] = {
    "chat_message.schema.json": ChatMessage,
    "trade.schema.json": Trade,
    "low_confidence.schema.json": LowConfidence,
    "dead_letter.schema.json": DeadLetter,
    "correction.schema.json": Correction,
}


def json_schema_text(model: type[BaseModel]) -> str:
    """The committed form of a model's JSON Schema (stable key order, newline)."""
    return orjson.dumps(model.model_json_schema(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode() + "\n"
