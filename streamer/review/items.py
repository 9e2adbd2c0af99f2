"""Review items: one record of `trades.review`, read, explained in words and highlighted for a person.

A record that does not decode (bad bytes, an old schema) is still an item: the
desk shows its raw bytes and the reviewer can dead-letter it, so one bad record
neither crashes the page nor blocks the queue behind it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from html import escape

from pydantic import ValidationError

from schemas import CONTRACT_FIELDS, LowConfidence, Reason, SourcePosition

FIELD_WORDS = {name: name.replace("_", " ") for name in CONTRACT_FIELDS}

_REASON_WORDS = {
    "low_confidence": "the model is unsure of {field}",
    "ungrounded_span": "the model wrote a {field} that is not in the message",
    "unknown_symbol": "{field} is not a known pair or ticker",
    "unknown_currency": "{field} is not a currency we know",
    "unparseable_value": "{field} could not be read as a value",
    "missing_required_field": "{field} is missing",
    "non_positive_quantity": "the quantity is not positive",
    "multiple_trades": "the message holds several trades",
    "invalid_model_output": "the model's output could not be read",
    "rules_disagree": "the rules read {field} differently",
    "models_disagree": "the second model reads {field} differently",
    "instruction_like": "the message reads like instructions to the parser",
    "limit_exceeded": "over a pre-trade limit",
}
# confidence.disagreements writes "model <repr>, rules <repr>" (or "model <repr>, <second adapter id> <repr>")
_DISAGREEMENT = re.compile(r"^model (?P<model>.+), (?P<who>rules|\S+) (?P<rules>.+)$")


def item_id(position: SourcePosition) -> str:
    """`<topic>/<partition>/<offset>`: the record's place, unique even when a message is parsed twice."""
    return f"{position.topic}/{position.partition}/{position.offset}"


@dataclass
class ReviewItem:
    """A `trades.review` record as the desk holds it; `flagged` is None when the record is malformed."""

    id: str
    position: SourcePosition
    raw: bytes
    flagged: LowConfidence | None = None
    error: str | None = None
    read_at: datetime | None = None
    skipped_by: set[str] = field(default_factory=set)

    @property
    def malformed(self) -> bool:
        return self.flagged is None

    @property
    def arrived(self) -> datetime | None:
        """When the record reached the review topic (its broker timestamp), else when the desk read it."""
        return self.position.timestamp or self.read_at

    @property
    def reason_codes(self) -> list[str]:
        return sorted({r.code for r in self.flagged.reasons}) if self.flagged else ["malformed"]

    @property
    def channel(self) -> str | None:
        return self.flagged.message.channel if self.flagged else None


def read_item(raw: bytes, position: SourcePosition, read_at: datetime | None = None) -> ReviewItem:
    """Decode one review record; never raises: a bad one comes back with `error` set."""
    from streamer.streaming.pipeline import Undecodable, first_error, json_object

    identity = item_id(position)
    try:
        flagged = LowConfidence.model_validate(json_object(raw))
    except Undecodable as err:
        words = {"not_utf8": "not UTF-8", "not_json": "not JSON"}.get(err.reason, "not a LowConfidence record")
        return ReviewItem(identity, position, raw, error=f"{words} ({err.detail})", read_at=read_at)
    except ValidationError as err:
        return ReviewItem(identity, position, raw, error=f"not a LowConfidence record: {first_error(err)}",
                          read_at=read_at)
    return ReviewItem(identity, position, raw, flagged=flagged, read_at=read_at)


def _shown(value: str) -> str:
    """A value as the reason detail wrote it (repr), for people: 'None' reads as empty."""
    return "empty" if value == "None" else value.strip("'\"")


def describe_reason(reason: Reason) -> str:
    """A reason in words, e.g. "rules read tenor as 1M, model left it empty"."""
    name = FIELD_WORDS.get(reason.field or "", reason.field or "a field")
    if reason.code in ("rules_disagree", "models_disagree") and reason.detail:
        match = _DISAGREEMENT.match(reason.detail)
        if match:
            model, rules = _shown(match["model"]), _shown(match["rules"])
            who = "rules" if reason.code == "rules_disagree" else "second model"
            if model == "empty":
                return f"{who} read {name} as {rules}, model left it empty"
            if rules == "empty":
                return f"model read {name} as {model}, {who} found none"
            return f"{who} read {name} as {rules}, model as {model}"
    words = _REASON_WORDS.get(reason.code, reason.code.replace("_", " ")).format(field=name)
    return f"{words} ({reason.detail})" if reason.detail else words


def copied_spans(flagged: LowConfidence) -> dict[str, str]:
    """The message's pieces the model's fields came from, found the way training targets are (best effort)."""
    if flagged.trade is None or flagged.trade.intent == "none":
        return {}
    from streamer.finetune.targets import derive_spans

    expected = flagged.trade.model_dump(include=set(CONTRACT_FIELDS))
    record = {"text": flagged.message.text, "expected": expected}
    if flagged.message.timestamp:
        record["timestamp"] = flagged.message.timestamp.isoformat()
    try:
        spans = derive_spans(record)
    except (LookupError, ValueError):
        return {}
    return {name: span for name, span in spans.items() if span}


def highlighted_html(text: str, spans: dict[str, str]) -> str:
    """The message as HTML with each copied span in a <mark> titled by its field; everything else escaped."""
    marks: list[tuple[int, int, str]] = []
    lowered = text.lower()
    for name, span in spans.items():
        start = lowered.find(span.lower())
        if start < 0 or any(start < end and start + len(span) > begin for begin, end, _ in marks):
            continue
        marks.append((start, start + len(span), name))
    out, at = [], 0
    for begin, end, name in sorted(marks):
        out.append(escape(text[at:begin]))
        out.append(f'<mark title="{escape(FIELD_WORDS.get(name, name))}">{escape(text[begin:end])}</mark>')
        at = end
    out.append(escape(text[at:]))
    return "".join(out)
