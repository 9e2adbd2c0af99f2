"""What a reviewer's decision produces, and who may decide: pure logic, no Kafka, no HTTP.

- `edited_fields` turns a submitted form into `TradeFields`, refusing a value the
  contract or the desk's checks reject, field by field;
- `accepted_trade` and `correction` build the records an accept publishes;
- `ClaimBook` replays the desk's state topic in log order: the first live claim on an
  item wins, so two desks reading the same log agree on one holder;
- `CommitTracker` says how far the review consumer may commit: up to the oldest
  record still open in each partition, never past an undecided one.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

from schemas import CONTRACT_FIELDS, Correction, Decision, ReviewProvenance, Trade, TradeFields
from streamer.parsing.normalize import ISO_CURRENCIES

NUMERIC_FIELDS = ("quantity", "price", "bid", "ask")
CLOSING_DECISIONS: frozenset[str] = frozenset({"accept", "not_trade", "dead_letter"})


class FieldErrors(ValueError):
    """A submitted edit the desk refuses; `errors` maps each bad field to its message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{name}: {message}" for name, message in errors.items()))
        self.errors = errors


def edited_fields(form: Mapping[str, str]) -> TradeFields:
    """The reviewer's fields, validated by the `TradeFields` contract plus the checks the parser applies."""
    values: dict[str, object] = {}
    errors: dict[str, str] = {}
    for name in CONTRACT_FIELDS:
        raw = (form.get(name) or "").strip()
        if not raw:
            values[name] = None
        elif name in NUMERIC_FIELDS:
            try:
                values[name] = float(raw.replace(",", "").replace("_", ""))
            except ValueError:
                errors[name] = f"not a number: {raw!r}"
        elif name in ("symbol", "currency", "tenor"):
            values[name] = " ".join(raw.upper().split())
        else:
            values[name] = raw
    if values.get("quantity") is not None and not values["quantity"] > 0:  # type: ignore[operator]
        errors["quantity"] = "must be positive"
    for name in ("price", "bid", "ask"):
        if values.get(name) is not None and values[name] != values[name]:  # NaN
            errors[name] = "not a number"
    currency = values.get("currency")
    if currency is not None and currency not in ISO_CURRENCIES:
        errors["currency"] = f"not an ISO 4217 currency we know: {currency!r}"
    if values.get("intent") == "none":
        errors.update({name: "must be empty when intent is none" for name in CONTRACT_FIELDS
                       if name != "intent" and values.get(name) is not None and name not in errors})
    try:
        fields = TradeFields.model_validate({k: v for k, v in values.items() if k not in errors})
    except ValidationError as err:
        for problem in err.errors():
            name = str(problem["loc"][0]) if problem["loc"] else "intent"
            errors.setdefault(name, problem["msg"])
        raise FieldErrors(errors) from None
    if errors:
        raise FieldErrors(errors)
    return fields


def accepted_trade(flagged_trade: Trade | None, message_id: str, item: str, fields: TradeFields, reviewer: str,
                   decided_at: datetime, provenance=None, source=None) -> Trade:
    """The corrected trade for `trades.parsed`: the reviewer's fields, confidence 1, and where it came from."""
    model_output = TradeFields.model_validate(flagged_trade.model_dump(include=set(CONTRACT_FIELDS))) \
        if flagged_trade else None
    return Trade(
        **fields.model_dump(), message_id=message_id, confidence=1.0, field_confidence={},
        provenance=provenance, source=source,
        review=ReviewProvenance(review_of=message_id, item=item, reviewer=reviewer, decided_at=decided_at,
                                model_output=model_output),
    )


def correction(item, decision: Decision, reviewer: str, decided_at: datetime,
               corrected: TradeFields | None = None) -> Correction:
    """The `trades.corrections` record of one decision on a `review.items.ReviewItem`."""
    flagged = item.flagged
    if decision == "not_trade":
        corrected = TradeFields(intent="none")
    elif decision != "accept":
        corrected = None
    return Correction(
        correction_id=f"{item.id}@{decided_at.isoformat()}", item=item.id,
        message_id=flagged.message_id if flagged else None, message=flagged.message if flagged else None,
        model_output=flagged.trade if flagged else None, decision=decision, corrected=corrected,
        reviewer=reviewer, decided_at=decided_at, reasons=list(flagged.reasons) if flagged else [],
        raw_b64=None if flagged else base64.b64encode(item.raw).decode(),
    )


StateKind = Literal["claim", "release", "decided", "skipped"]


class ReviewState(BaseModel):
    """One record of the desk's state topic (keyed by item): claims, releases and decisions, in log order."""

    model_config = ConfigDict(extra="forbid")

    kind: StateKind
    item: str
    reviewer: str
    desk: str
    at: datetime
    expires_at: datetime | None = None
    decision: Decision | None = None


@dataclass
class Claim:
    reviewer: str
    desk: str
    expires_at: datetime

    def held_by(self, reviewer: str, desk: str) -> bool:
        return self.reviewer == reviewer and self.desk == desk


@dataclass
class ClaimBook:
    """Who holds each item and which are decided, replayed from the state topic in its log order."""

    claims: dict[str, Claim] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)
    history: list[ReviewState] = field(default_factory=list)  # decisions and skips of the last `HISTORY`
    HISTORY = timedelta(hours=1)

    def apply(self, state: ReviewState) -> None:
        """Take one state record; a claim while another reviewer's claim is live (by the record's own time) loses."""
        if state.kind in ("decided", "skipped"):
            self.history.append(state)
            if self.history[0].at < state.at - self.HISTORY:
                self.history = [kept for kept in self.history if kept.at >= state.at - self.HISTORY]
        if state.item in self.decided:
            return
        current = self.claims.get(state.item)
        if state.kind == "claim":
            if current is None or current.held_by(state.reviewer, state.desk) or current.expires_at <= state.at:
                self.claims[state.item] = Claim(state.reviewer, state.desk, state.expires_at or state.at)
        elif state.kind in ("release", "skipped"):
            if current is not None and current.held_by(state.reviewer, state.desk):
                del self.claims[state.item]
        elif state.kind == "decided":
            self.decided.add(state.item)
            self.claims.pop(state.item, None)

    def holder(self, item: str, now: datetime) -> Claim | None:
        """The live claim on `item`, if any."""
        claim = self.claims.get(item)
        return claim if claim is not None and claim.expires_at > now else None

    def decisions_since(self, since: datetime) -> list[ReviewState]:
        return [state for state in self.history if state.at >= since]


def claim_record(item: str, reviewer: str, desk: str, now: datetime, ttl_s: float) -> ReviewState:
    return ReviewState(kind="claim", item=item, reviewer=reviewer, desk=desk, at=now,
                       expires_at=now + timedelta(seconds=ttl_s))


@dataclass
class CommitTracker:
    """Per partition: records read and records closed; the safe commit position is the oldest still open."""

    open: dict[int, set[int]] = field(default_factory=dict)
    last_read: dict[int, int] = field(default_factory=dict)

    def read(self, partition: int, offset: int) -> None:
        self.open.setdefault(partition, set()).add(offset)
        self.last_read[partition] = max(offset, self.last_read.get(partition, -1))

    def close(self, partition: int, offset: int) -> None:
        self.open.get(partition, set()).discard(offset)

    def positions(self) -> dict[int, int]:
        """The offset each partition may commit: nothing before it is open."""
        return {partition: min(self.open[partition]) if self.open.get(partition) else last + 1
                for partition, last in self.last_read.items()}
