"""The desk's pure decision logic: edits, the records a decision writes, claims, commit positions."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from schemas import ChatMessage, LowConfidence, Reason, SourcePosition, Trade
from streamer.review.decisions import (
    ClaimBook, CommitTracker, FieldErrors, ReviewState, accepted_trade, claim_record, correction, edited_fields,
)
from streamer.review.items import read_item

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)
ORDER = {"intent": "order", "side": "buy", "asset_class": "fx_spot", "symbol": "EURUSD", "quantity": "10000000"}


@pytest.mark.parametrize("form, field, expected", [
    (ORDER, "quantity", 10_000_000.0),
    ({**ORDER, "quantity": "10,000,000"}, "quantity", 10_000_000.0),
    ({**ORDER, "symbol": " eurusd "}, "symbol", "EURUSD"),
    ({**ORDER, "currency": "eur"}, "currency", "EUR"),
    ({**ORDER, "tenor": "3m"}, "tenor", "3M"),
    ({**ORDER, "price": "-0.35"}, "price", -0.35),  # prices can be negative (rates, spreads)
    ({**ORDER, "counterparty": ""}, "counterparty", None),
    ({"intent": "none"}, "side", None),
])
def test_an_edit_becomes_contract_fields(form, field, expected):
    assert getattr(edited_fields(form), field) == expected


@pytest.mark.parametrize("form, bad_field, words", [
    ({**ORDER, "quantity": "-5"}, "quantity", "positive"),
    ({**ORDER, "quantity": "0"}, "quantity", "positive"),
    ({**ORDER, "quantity": "ten"}, "quantity", "not a number"),
    ({**ORDER, "price": "nan"}, "price", "not a number"),
    ({**ORDER, "currency": "XYZ"}, "currency", "ISO 4217"),
    ({**ORDER, "side": "long"}, "side", "Input should be"),
    ({**ORDER, "intent": "maybe"}, "intent", "Input should be"),
    ({**ORDER, "intent": ""}, "intent", "Input should be"),
    ({"intent": "none", "symbol": "EURUSD"}, "symbol", "must be empty"),
])
def test_a_bad_edit_is_refused_with_the_fields_error(form, bad_field, words):
    with pytest.raises(FieldErrors) as refused:
        edited_fields(form)
    assert words in refused.value.errors[bad_field]


def flagged_item(offset: int = 7):
    message = ChatMessage(text="buy 10m eurusd 3m", channel="fx-desk", sender="ann", timestamp=T0)
    model = Trade(intent="order", side="buy", symbol="EURUSD", quantity=1e7, confidence=0.4)
    flagged = LowConfidence(message_id=message.message_id, message=message, trade=model, confidence=0.4,
                            reasons=[Reason(code="rules_disagree", field="tenor", detail="model None, rules '3M'")])
    return read_item(flagged.to_json(), SourcePosition(topic="trades.review", partition=1, offset=offset))


def test_an_accepted_trade_carries_the_reviewer_the_time_and_the_models_output():
    item = flagged_item()
    fields = edited_fields({**ORDER, "asset_class": "fx_forward", "tenor": "3M"})
    trade = accepted_trade(item.flagged.trade, item.flagged.message_id, item.id, fields, "ann", T0)
    assert (trade.tenor, trade.confidence, trade.message_id) == ("3M", 1.0, item.flagged.message_id)
    assert trade.review.reviewer == "ann" and trade.review.decided_at == T0
    assert trade.review.review_of == item.flagged.message_id and trade.review.item == "trades.review/1/7"
    assert trade.review.model_output.tenor is None and trade.review.model_output.quantity == 1e7


@pytest.mark.parametrize("decision, corrected", [
    ("accept", {"intent": "order", "tenor": "3M"}),
    ("not_trade", {"intent": "none", "tenor": None}),
    ("skip", None),
])
def test_a_correction_holds_message_model_output_fields_reviewer_time_and_reasons(decision, corrected):
    item = flagged_item()
    fields = edited_fields({**ORDER, "tenor": "3M"}) if decision == "accept" else None
    record = correction(item, decision, "ann", T0, fields)
    assert record.message.text == "buy 10m eurusd 3m" and record.model_output.symbol == "EURUSD"
    assert (record.reviewer, record.decided_at, record.decision) == ("ann", T0, decision)
    assert [r.code for r in record.reasons] == ["rules_disagree"]
    if corrected is None:
        assert record.corrected is None
    else:
        assert {k: getattr(record.corrected, k) for k in corrected} == corrected


def test_a_malformed_item_is_dead_lettered_with_its_bytes():
    item = read_item(b'{"kind": "low_confidence", "old": 1}', SourcePosition(topic="trades.review", partition=0,
                                                                             offset=3))
    record = correction(item, "dead_letter", "ann", T0)
    assert item.malformed and "not a LowConfidence record" in item.error
    assert record.message is None and record.corrected is None
    assert record.raw_b64 == "eyJraW5kIjogImxvd19jb25maWRlbmNlIiwgIm9sZCI6IDF9"


def state(kind, reviewer="ann", desk="d1", at=0, ttl=300):
    when = T0 + timedelta(seconds=at)
    if kind == "claim":
        return claim_record("i", reviewer, desk, when, ttl)
    return ReviewState(kind=kind, item="i", reviewer=reviewer, desk=desk, at=when,
                       decision="accept" if kind == "decided" else None)


@pytest.mark.parametrize("log, now, holder", [
    ([], 0, None),
    ([state("claim")], 1, "ann"),
    ([state("claim"), state("claim", "bob", "d2", at=1)], 2, "ann"),            # the first live claim wins
    ([state("claim", ttl=10), state("claim", "bob", "d2", at=11)], 12, "bob"),  # a lapsed claim loses it
    ([state("claim", ttl=10)], 11, None),
    ([state("claim"), state("claim", "ann", "d2", at=1)], 2, "ann"),            # same name, other desk: still held
    ([state("claim"), state("release")], 1, None),
    ([state("claim"), state("release", "bob", "d2")], 1, "ann"),                # only the holder releases
    ([state("claim"), state("skipped")], 1, None),
    ([state("claim"), state("decided"), state("claim", "bob", "d2", at=1)], 2, None),  # decided stays decided
])
def test_claims_are_decided_by_log_order(log, now, holder):
    book = ClaimBook()
    for record in log:
        book.apply(record)
    claim = book.holder("i", T0 + timedelta(seconds=now))
    assert (claim.reviewer if claim else None) == holder
    if len(log) > 1 and log[1].desk == "d2" and holder == "ann":
        assert claim.desk == "d1"


def test_decisions_per_hour_count_decided_and_skipped():
    book = ClaimBook()
    for record in [state("claim"), state("skipped", at=1), state("claim", at=2), state("decided", at=3)]:
        book.apply(record)
    assert [s.kind for s in book.decisions_since(T0)] == ["skipped", "decided"]
    assert book.decisions_since(T0 + timedelta(seconds=3))[0].kind == "decided"


@pytest.mark.parametrize("read, closed, positions", [
    ([], [], {}),
    ([(0, 0), (0, 1), (0, 2)], [], {0: 0}),
    ([(0, 0), (0, 1), (0, 2)], [(0, 0)], {0: 1}),
    ([(0, 0), (0, 1), (0, 2)], [(0, 1)], {0: 0}),                  # never past an undecided record
    ([(0, 0), (0, 1), (0, 2)], [(0, 0), (0, 1), (0, 2)], {0: 3}),
    ([(0, 4), (1, 9)], [(1, 9)], {0: 4, 1: 10}),
    ([(0, 0), (0, 3)], [(0, 0), (0, 3)], {0: 4}),                  # gaps (transaction markers) are fine
])
def test_the_commit_position_is_the_oldest_open_record(read, closed, positions):
    tracker = CommitTracker()
    for partition, offset in read:
        tracker.read(partition, offset)
    for partition, offset in closed:
        tracker.close(partition, offset)
    assert tracker.positions() == positions
