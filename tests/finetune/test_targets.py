"""Training targets: spans grounded in the message so the parser's normalizer gives back `expected`."""

from __future__ import annotations

from collections import Counter

import pytest

from streamer.finetune.targets import candidate_spans, extraction_for

NULLS = dict(side=None, asset_class=None, symbol=None, quantity=None, currency=None, price=None, bid=None, ask=None,
             order_type=None, tenor=None, counterparty=None)


def record(text: str, **expected) -> dict:
    return {"text": text, "expected": {**NULLS, **expected}}


# (record, spans the target must hold)
DERIVED = [
    (record("buy 10m cable 1w @ 1.2710", intent="order", side="buy", asset_class="fx_forward", symbol="GBPUSD",
            quantity=10_000_000, currency="GBP", price=1.271, tenor="1W"),
     {"symbol": "cable", "quantity": "10m", "currency": None, "price": "1.2710", "tenor": "1w"}),
    (record("Kaufe 10 Mio EURUSD", intent="order", side="buy", asset_class="fx_spot", symbol="EURUSD",
            quantity=10_000_000, currency="EUR"),
     {"symbol": "EURUSD", "quantity": "10 Mio"}),  # the multiplier word stays with the amount
    (record("eurusd 1.0848/50", intent="quote", side="two_way", asset_class="fx_spot", symbol="EURUSD",
            currency="EUR", bid=1.0848, ask=1.085),
     {"bid": "1.0848", "ask": "50", "price": None}),  # a quote's sides are pieces of one slashed word
    (record("buy $10mm UST 10Y lmt 99-08", intent="order", side="buy", asset_class="bond", symbol="UST 10Y",
            quantity=10_000_000, currency="USD", price=99.25, order_type="limit"),
     {"symbol": "UST 10Y", "quantity": "10mm", "currency": "$", "price": "99-08"}),
    (record("get me long 10 dollar yen asap", intent="order", side="buy", asset_class="fx_spot", symbol="USDJPY",
            quantity=10_000_000, currency="USD"),
     {"symbol": "dollar yen", "quantity": "10"}),  # the whole slang name, not just "yen"
    (record("sell GBPUSD sn/3w swap in 200", intent="order", side="sell", asset_class="fx_swap", symbol="GBPUSD",
            quantity=200_000_000, currency="GBP", tenor="3W"),
     {"tenor": "3w", "quantity": "200"}),  # the far leg
    (record("rec 2y sofr at 3.95 lmt w/ Barclays.", intent="order", side="sell", asset_class="rates_swap",
            symbol="SOFR", price=3.95, order_type="limit", tenor="2Y", counterparty="Barclays"),
     {"symbol": "sofr", "price": "3.95", "tenor": "2y", "counterparty": "Barclays"}),  # punctuation trimmed
    (record("ESZ5 lmt buy 10 @5300", intent="order", side="buy", asset_class="future", symbol="ESZ5", quantity=10,
            price=5300, order_type="limit"),
     {"price": "5300", "quantity": "10"}),  # "@" is not part of the price
    ({**record("buy 10m eurusd 15 dec", intent="order", side="buy", asset_class="fx_forward", symbol="EURUSD",
               quantity=10_000_000, currency="EUR", tenor="2025-12-15"), "timestamp": "2025-06-01T09:00:00+00:00"},
     {"tenor": "15 dec"}),  # dates resolve against the message's timestamp
    (record("my px eurgbp 0.8565-68", intent="quote", side="two_way", asset_class="fx_spot", symbol="EURGBP",
            currency="EUR", bid=0.8565, ask=0.8568),
     {"bid": "0.8565", "ask": "68"}),  # a dashed quote written as one word
    (record("aussie .6610/15", intent="quote", side="two_way", asset_class="fx_spot", symbol="AUDUSD",
            currency="AUD", bid=0.661, ask=0.6615),
     {"symbol": "aussie", "bid": ".6610", "ask": "15"}),  # the leading decimal point stays
    (record("HSBC's order: buy 5 cable", intent="order", side="buy", asset_class="fx_spot", symbol="GBPUSD",
            quantity=5_000_000, currency="GBP", counterparty="HSBC"),
     {"counterparty": "HSBC's"}),  # the normalizer drops the possessive
    (record("buy .5 btc", intent="order", side="buy", asset_class="crypto", symbol="BTCUSD", quantity=0.5),
     {"quantity": ".5", "symbol": "btc"}),
    (record("sell 1/2 btc at 88k", intent="order", side="sell", asset_class="crypto", symbol="BTCUSD", quantity=0.5,
            price=88000), {"quantity": "1/2", "price": "88k"}),
    (record("Sell 4 Bitcoins", intent="order", side="sell", asset_class="crypto", symbol="BTCUSD", quantity=4),
     {"symbol": "Bitcoins", "quantity": "4"}),
    (record("Rec 2Y €STR 40M", intent="order", side="sell", asset_class="rates_swap", symbol="ESTR",
            quantity=40_000_000, tenor="2Y"), {"symbol": "€STR", "quantity": "40M"}),
    (record("Pay 5Y Euribor Vs Natwest 50M", intent="order", side="buy", asset_class="rates_swap", symbol="EURIBOR",
            quantity=50_000_000, tenor="5Y", counterparty="Natwest"),
     {"symbol": "Euribor", "counterparty": "Natwest"}),  # "Vs" is no part of the name
    (record("buy eur 10m vs chf", intent="order", side="buy", asset_class="fx_spot", symbol="EURCHF",
            quantity=10_000_000, currency="EUR"), {"symbol": "eur 10m vs chf", "quantity": "10m"}),
    (record("Buy EUR Sell JPY 5M", intent="order", side="buy", asset_class="fx_spot", symbol="EURJPY",
            quantity=5_000_000, currency="EUR"), {"symbol": "EUR Sell JPY", "quantity": "5M"}),
    # near misses: a coupon fraction stays in the bond's name, a day/month is a value date
    (record("buy 5mm T 4 1/2 05/34 at 99-16", intent="order", side="buy", asset_class="bond", symbol="T 4 1/2 05/34",
            quantity=5_000_000, price=99.5), {"quantity": "5mm", "price": "99-16"}),
    ({**record("buy 10m eurusd value 20/03", intent="order", side="buy", asset_class="fx_forward", symbol="EURUSD",
               quantity=10_000_000, currency="EUR", tenor="2026-03-20"), "timestamp": "2026-01-05T09:00:00+00:00"},
     {"quantity": "10m", "tenor": "20/03"}),
]


@pytest.mark.parametrize("rec, spans", DERIVED, ids=[r["text"] for r, _ in DERIVED])
def test_spans_are_derived_for_annotated_records(rec, spans):
    failures = Counter()
    target = extraction_for(rec, failures)
    assert target is not None, failures
    for name, span in spans.items():
        assert getattr(target, name) == span, name
    assert target.intent == rec["expected"]["intent"] and target.side == rec["expected"]["side"]
    assert target.to_json_text().startswith('{"intent":"') and " " not in target.to_json_text().split('"symbol"')[0]


NOT_GROUNDED = [
    (record("sell 10 of the usual at mkt", intent="order", side="sell", asset_class="fx_spot", symbol="GBPUSD",
            quantity=10_000_000, currency="GBP", order_type="market"), "ungrounded:symbol"),
    (record("buy 10m cable", intent="order", side="buy", asset_class="fx_spot", symbol="GBPUSD",
            quantity=20_000_000, currency="GBP"), "ungrounded:quantity"),
    ({**record("buy 10m cable", intent="order", side="buy", asset_class="fx_spot", symbol="GBPUSD",
               quantity=10_000_000, currency="GBP"),
      "spans": {"symbol": "cable", "quantity": "5m"}}, "mismatch:quantity"),  # synthetic spans are checked too
    (record("", intent="order"), "no_text_or_intent"),
]


@pytest.mark.parametrize("rec, reason", NOT_GROUNDED, ids=[reason for _, reason in NOT_GROUNDED])
def test_records_without_a_faithful_target_are_counted_not_trained(rec, reason):
    failures = Counter()
    assert extraction_for(rec, failures) is None
    assert failures == Counter({reason: 1})


def test_synthetic_spans_are_used_verbatim():
    rec = {**record("Paid 5602.75 For 25 Esh5", intent="order", side="buy", asset_class="future", symbol="ESH5",
                    quantity=25, price=5602.75),
           "spans": {"symbol": "Esh5", "quantity": "25", "price": "5602.75"}}
    target = extraction_for(rec)
    assert (target.symbol, target.quantity, target.price) == ("Esh5", "25", "5602.75")


@pytest.mark.parametrize("text, intent, pair, quantity, expected_side, written_side", [
    ("sell 7m jpyusd", "order", "USDJPY", 7_000_000, "buy", "sell"),   # selling JPY against USD is buying USDJPY
    ("buy 5 cadusd", "order", "USDCAD", 5_000_000, "sell", "buy"),
    ("Buy JPY sell EUR 5M", "order", "EURJPY", 5_000_000, "sell", "buy"),  # a pair from its legs, reversed
    ("Sell GBP buy USD 3M", "order", "GBPUSD", 3_000_000, "sell", "sell"),
    ("cxl my usdjpy", "cancel", "USDJPY", None, None, None),           # no side: nothing to flip
])
def test_a_reversed_pair_keeps_the_side_as_written(text, intent, pair, quantity, expected_side, written_side):
    """The model copies the side as written; the normalizer flips it with the pair (docs/CONVENTIONS.md)."""
    rec = record(text, intent=intent, side=expected_side, asset_class="fx_spot", symbol=pair, currency=pair[:3],
                 quantity=quantity)
    target = extraction_for(rec)
    assert target is not None and target.side == written_side


def test_intent_none_has_every_field_null():
    target = extraction_for(record("cable looking heavy into the close", intent="none"))
    assert target.to_json_text() == (
        '{"intent":"none","side":null,"asset_class":null,"symbol":null,"quantity":null,"currency":null,"price":null,'
        '"bid":null,"ask":null,"order_type":null,"tenor":null,"counterparty":null,"multiple_trades":false}'
    )


def test_multiple_trades_flag_is_carried():
    rec = {**record("buy 3 eth + 40 sol at mkt", intent="order", side="buy", asset_class="crypto", symbol="ETHUSD",
                    quantity=3, order_type="market"), "multiple_trades": True}
    assert extraction_for(rec).multiple_trades is True


@pytest.mark.parametrize("text, first, contains", [
    ("eurusd 1.0848/50", "1.0848", {"50", "eurusd", "1.0848/50", "eurusd 1.0848/50"}),
    ("buy $5m (AAPL)!", "$", {"5m", "$5m", "AAPL", "buy $5m (AAPL"}),
    ("bund 100.42-100.48", "bund", {"100.42", "100.48", "100.42-100.48"}),
])
def test_candidate_spans_shortest_first(text, first, contains):
    spans = candidate_spans(text)
    assert len(spans[0]) <= len(first) and contains <= set(spans)
    assert [len(s.split()) for s in spans] == sorted(len(s.split()) for s in spans)
