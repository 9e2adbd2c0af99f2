"""The rule-based baseline on clear messages: what each rule reads, same result types as Parser."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from schemas import ChatMessage, LowConfidence, Trade
from streamer.parsing.rules import RuleBasedParser, second_opinion


@pytest.fixture(scope="module")
def rules() -> RuleBasedParser:
    return RuleBasedParser()


@pytest.mark.parametrize("text, expected", [
    ("buy 10m cable 1w @ 1.2710",
     dict(intent="order", side="buy", asset_class="fx_forward", symbol="GBPUSD", quantity=1e7, currency="GBP",
          price=1.271, tenor="1W", order_type=None)),
    ("2 way in 50 usdjpy 6m pls",
     dict(intent="rfq", side="two_way", asset_class="fx_forward", symbol="USDJPY", quantity=5e7, tenor="6M")),
    ("sell 200 AAPL lmt 187.5 for GS",
     dict(intent="order", side="sell", asset_class="equity", symbol="AAPL", quantity=200, price=187.5,
          order_type="limit", counterparty="GS", currency=None)),
    ("eurusd 1.0848/50",
     dict(intent="quote", side="two_way", asset_class="fx_spot", symbol="EURUSD", bid=1.0848, ask=1.085, price=None)),
    ("cancel the 2w/3m gbpusd swap",
     dict(intent="cancel", asset_class="fx_swap", symbol="GBPUSD", tenor="3M")),
    ("sell 100 TYZ5 at 110-16", dict(intent="order", side="sell", asset_class="future", symbol="TYZ5", price=110.5)),
    ("PAY 5Y SOFR 40MM AT MKT",
     dict(intent="order", side="buy", asset_class="rates_swap", symbol="SOFR", quantity=4e7, tenor="5Y",
          order_type="market")),
    ("buy 2 btc", dict(intent="order", side="buy", asset_class="crypto", symbol="BTCUSD", quantity=2)),
    ("need an offer in 25 aussie", dict(intent="rfq", side="buy", asset_class="fx_spot", symbol="AUDUSD",
                                        quantity=2.5e7)),
    ("usdinr 6m ndf pricing in 20 please", dict(intent="rfq", side="two_way", asset_class="fx_forward",
                                                symbol="USDINR", quantity=2e7, tenor="6M")),
    ("cable looking heavy into the close", dict(intent="none", side=None, symbol=None, quantity=None)),
    ("morning all", dict(intent="none", symbol=None)),
    ("short 5k gme at mkt", dict(intent="order", side="sell", asset_class="equity", symbol="GME", quantity=5000,
                                 order_type="market")),
    ("sell 30 ym dec stop 42100", dict(intent="order", side="sell", asset_class="future", symbol="YM DEC", price=42100,
                                       order_type="stop")),
    ("buy 5mm T 4 1/8 11/32 at 98-24+", dict(intent="order", side="buy", asset_class="bond", symbol="T 4 1/8 11/32",
                                             quantity=5e6, price=98.765625)),
    ("buy 5k oz xauusd limit 2330", dict(intent="order", asset_class="commodity", symbol="XAUUSD", quantity=5000)),
    ("did the 10m cable from yesterday settle?", dict(intent="none", symbol=None)),
    ("pls pull my aussie bid", dict(intent="cancel", side="buy", symbol="AUDUSD")),
    ("B/S 100 EURUSD TOM/NEXT", dict(intent="order", side="buy", asset_class="fx_swap", symbol="EURUSD", tenor="TN")),
    ("sn/1m in 100 usdjpy", dict(intent="rfq", side="two_way", asset_class="fx_swap", symbol="USDJPY", tenor="1M")),
    ("we can receive 4y estr at 2.31 in 30mm", dict(intent="quote", side="sell", asset_class="rates_swap", price=2.31)),
    ("client wants to buy 75k AAPL, can you work it with a limit of 190.50", dict(intent="order", side="buy")),
])
def test_clear_messages(rules, text, expected):
    result = rules.parse(text)
    assert isinstance(result, Trade), getattr(result, "reasons", None)
    assert {k: getattr(result, k) for k in expected} == pytest.approx(expected)
    assert result.confidence == 1.0
    assert result.provenance.model == "rule-based-baseline"


def test_value_date_resolves_against_the_message_timestamp(rules):
    message = ChatMessage(text="buy 9m eurusd value 30 april", timestamp=datetime(2026, 1, 5, tzinfo=timezone.utc))
    result = rules.parse(message)
    assert (result.asset_class, result.tenor) == ("fx_forward", "2026-04-30")


def test_missing_required_field_goes_to_review(rules):
    result = rules.parse("cancel")                      # a cancel needs nothing: published
    assert isinstance(result, Trade) and result.intent == "cancel"
    result = rules.parse("buy cable")                   # an order without a quantity: flagged, with the reason
    assert isinstance(result, LowConfidence)
    assert result.confidence == 0.0 and result.trade.symbol == "GBPUSD"
    assert [(r.code, r.field) for r in result.reasons] == [("missing_required_field", "quantity")]


@pytest.mark.parametrize("text, expected", [
    # a value date is a tenor, not a 32nds price ("09-30")
    ("NatWest buying 8 eurgbp value 2026-09-30", dict(tenor="2026-09-30", price=None, quantity=8e6)),
    # "a 2 way" asks for a two-sided price: 2 is no price
    ("Mercuria asking for a 2 way in 30 COH6", dict(intent="rfq", price=None, quantity=30)),
    # an option's strike is no price, and the "1m"/"3m" before it is a tenor, not an amount
    ("can u show 1m 1.28 cable calls in 30", dict(price=None, quantity=3e7, tenor="1M")),
    ("cxl the usdcad 3m 1.38 put order for Balyasny", dict(intent="cancel", price=None, quantity=None, tenor="3M")),
    ("usdjpy 1m 150 strike px?", dict(quantity=None, tenor="1M")),
    ("eurusd 1m 25d rr 0.35/0.55", dict(quantity=None, tenor="1M", bid=0.35, ask=0.55)),
    ("usdjpy 3m 25 delta rr px", dict(quantity=None, tenor="3M")),
    ("sell 5 usdchf 2w 0.90 puts at 0.45", dict(price=0.45, quantity=5e6, tenor="2W")),
    ("buy 20 cable 1.30 calls 3 month", dict(price=None, quantity=2e7)),
    # "mkt" in an rfq asks for a market; in an order it is a market order
    ("mkt in 50 FGBL Z5?", dict(intent="rfq", order_type=None)),
    ("hey can you make me a market in 200k ISP IM", dict(intent="rfq", order_type=None)),
    ("mkt order: buy 500 oz gold", dict(intent="order", order_type="market")),
])
def test_what_is_not_a_price_an_amount_or_an_order_type(text, expected):
    fields = second_opinion(text, datetime(2026, 6, 1, tzinfo=timezone.utc).date())
    assert {k: fields[k] for k in expected} == pytest.approx(expected)


@pytest.mark.parametrize("text, expected", [
    ("buy .5 btc", dict(intent="order", side="buy", asset_class="crypto", symbol="BTCUSD", quantity=0.5)),
    ("sell 1/2 btc at 91k", dict(side="sell", symbol="BTCUSD", quantity=0.5, price=91000)),
    ("mine 3/4 eth", dict(side="buy", symbol="ETHUSD", quantity=0.75)),
    ("Sell 12 Bitcoins at mkt", dict(side="sell", asset_class="crypto", symbol="BTCUSD", quantity=12,
                                     order_type="market")),
    ("BUY 2 BITCOIN", dict(symbol="BTCUSD", quantity=2)),
    ("sell 40 ethers", dict(symbol="ETHUSD", quantity=40)),
    ("Rec 3Y €STR 75M", dict(side="sell", asset_class="rates_swap", symbol="ESTR", quantity=7.5e7, tenor="3Y")),
    ("pay 7y €str 20mm", dict(side="buy", symbol="ESTR", quantity=2e7, tenor="7Y")),
    # "vs" before a name marks the counterparty, in any case; it is never part of the name
    ("Pay 5Y Euribor Vs Natwest 50M", dict(side="buy", asset_class="rates_swap", symbol="EURIBOR", quantity=5e7,
                                           tenor="5Y", counterparty="Natwest")),
    ("PAY 5Y EURIBOR VS NATWEST 50M", dict(symbol="EURIBOR", counterparty="NATWEST")),
    ("sell 15 cable vs Lloyds", dict(symbol="GBPUSD", counterparty="Lloyds")),
    ("Buy 8 Aussie For Westpac", dict(symbol="AUDUSD", counterparty="Westpac")),
    # the pair around its amount, and a pair from its two legs (side of the base in the market-order pair)
    ("buy eur 10m vs chf", dict(side="buy", asset_class="fx_spot", symbol="EURCHF", quantity=1e7, currency="EUR")),
    ("Buy EUR Sell JPY 5M", dict(side="buy", symbol="EURJPY", quantity=5e6, currency="EUR")),
    ("Sell GBP buy USD 3M", dict(side="sell", symbol="GBPUSD", quantity=3e6, currency="GBP")),
    ("buy jpy sell eur 4m", dict(side="sell", symbol="EURJPY", quantity=4e6, currency="EUR")),
])
def test_phrasings_the_normalizer_reads(rules, text, expected):
    result = rules.parse(text)
    assert isinstance(result, Trade), getattr(result, "reasons", None)
    assert {k: getattr(result, k) for k in expected} == pytest.approx(expected)


@pytest.mark.parametrize("text, expected", [
    # a fraction after a number is a bond price's handle, a slashed pair of numbers a maturity or date: no amounts
    ("buy 5mm T 4.5 05/34 at 101 1/2", dict(symbol="T 4.5 05/34", quantity=5e6)),
    ("sell 10mm UST 10Y 99 3/4", dict(symbol="UST 10Y", quantity=1e7)),
    ("buy 5mm T 4 1/2 05/34", dict(symbol="T 4 1/2 05/34", quantity=5e6)),
    ("mine 5 eurusd value 20/03", dict(symbol="EURUSD", quantity=5e6)),
    ("sell 20 usdchf @ .8812 vs JPM", dict(quantity=2e7, counterparty="JPM")),
])
def test_fractions_and_dates_that_are_no_amount(text, expected):
    fields = second_opinion(text, datetime(2026, 6, 1, tzinfo=timezone.utc).date())
    assert {k: fields[k] for k in expected} == pytest.approx(expected)
