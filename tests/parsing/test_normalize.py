"""Table tests for the deterministic normalizer (docs/CONVENTIONS.md)."""

from datetime import date

import pytest

from streamer.parsing.normalize import (
    NormalizationError, adjacent_currency, asked_side, closing_side, offers_a_swap_level, stated_market,
    implied_asset_class, prefix_counterparty, is_grounded, normalize_counterparty, whole_name, normalize_currency,
    normalize_extraction, normalize_price, normalize_quantity, normalize_quote, normalize_symbol, normalize_tenor,
    split_amount_currency, split_pair_tenor,
)

REF = date(2026, 11, 25)


@pytest.mark.parametrize("span, asset_class, expected", [
    ("cable", "fx_spot", "GBPUSD"),
    ("Fiber", "fx_forward", "EURUSD"),
    ("swissy", "fx_spot", "USDCHF"),
    ("aussie", "fx_spot", "AUDUSD"),
    ("kiwi", "fx_option", "NZDUSD"),
    ("loonie", "fx_spot", "USDCAD"),
    ("dollar yen", "fx_spot", "USDJPY"),
    ("euro yen", "fx_swap", "EURJPY"),
    ("eur/usd", "fx_spot", "EURUSD"),
    ("EUR USD", "fx_spot", "EURUSD"),
    ("usdeur", "fx_spot", "EURUSD"),
    ("jpy/usd", "fx_spot", "USDJPY"),
    ("usdmxn", "fx_spot", "USDMXN"),
    ("eur vs gbp", "fx_spot", "EURGBP"),
    ("cabel", "fx_spot", "GBPUSD"),
    ("câble", "fx_spot", "GBPUSD"),
    ("btc", "crypto", "BTCUSD"),
    ("Bitcoin", "crypto", "BTCUSD"),
    ("eth/usdt", "crypto", "ETHUSDT"),
    ("ethusdt", "crypto", "ETHUSDT"),
    ("sol-eur", "crypto", "SOLEUR"),
    ("ethbtc", "crypto", "ETHBTC"),
    ("l'estr", "rates_swap", "ESTR"),  # French elision
    ("d’eurgbp", "fx_spot", "EURGBP"),
    ("aapl", "equity", "AAPL"),
    ("$tsla", "equity", "TSLA"),
    ("ESZ5", "future", "ESZ5"),
    ("ust  10y", "bond", "UST 10Y"),
    ("gold", "commodity", "GOLD"),
    ("sofr", "rates_swap", "SOFR"),
    ("bitcoins", "crypto", "BTCUSD"), ("BITCOINS", "crypto", "BTCUSD"), ("BITCOIN", "crypto", "BTCUSD"),
    ("Ethers", "crypto", "ETHUSD"), ("ether", "crypto", "ETHUSD"),
    ("€STR", "rates_swap", "ESTR"), ("€str", "rates_swap", "ESTR"), ("l'€str", "rates_swap", "ESTR"),
    # an amount between the currencies, and a pair written as its two legs; market order either way
    ("eur 10m vs chf", "fx_spot", "EURCHF"), ("EUR 2.5 MIO VS SEK", "fx_forward", "EURSEK"),
    ("chf 10m vs eur", "fx_spot", "EURCHF"), ("EUR Sell JPY", "fx_spot", "EURJPY"),
    ("GBP buy USD", "fx_spot", "GBPUSD"), ("jpy sell eur", "fx_spot", "EURJPY"),
])
def test_symbol(span, asset_class, expected):
    assert normalize_symbol(span, asset_class) == expected


@pytest.mark.parametrize("span, asset_class", [("banana", "fx_spot"), ("eurx", "fx_spot"), ("usdusd", "fx_spot"),
                                               ("dogecoinz", "crypto")])
def test_symbol_unknown(span, asset_class):
    with pytest.raises(NormalizationError) as err:
        normalize_symbol(span, asset_class)
    assert err.value.code == "unknown_symbol"


@pytest.mark.parametrize("span, asset_class, expected", [
    ("10m", "fx_spot", 10_000_000),
    ("10mm", "fx_forward", 10_000_000),
    ("10 mio", "fx_spot", 10_000_000),
    ("10 bucks", "fx_spot", 10_000_000),
    ("10 millones", "fx_spot", 10_000_000),
    ("1 yard", "fx_spot", 1_000_000_000),
    ("a yard", "fx_spot", 1_000_000_000),
    ("1bn", "bond", 1_000_000_000),
    ("500k", "fx_spot", 500_000),
    ("1,200", "equity", 1200),
    ("2.5m", "fx_spot", 2_500_000),
    ("2,5 Mio", "fx_spot", 2_500_000),
    ("25", "fx_spot", 25_000_000),
    ("50", "fx_forward", 50_000_000),
    ("200", "equity", 200),
    ("200 shares", "equity", 200),
    ("10 lots", "future", 10),
    ("2 btc", "crypto", 2),
    ("0.5", "crypto", 0.5),
    ("5k oz", "commodity", 5000),
    ("$5m", "bond", 5_000_000),
    ("10 mio eur", "bond", 10_000_000),
    ("1.200.000", "equity", 1_200_000),
    ("3.000 acciones", "equity", 3000),
    ("500 onzas", "commodity", 500),
    ("1.000 Unzen", "commodity", 1000),
    ("20 barriles", "commodity", 20),
    ("25 milioni", "fx_spot", 25_000_000),
    ("3 mln", "bond", 3_000_000),
    ("quarter yard", "fx_spot", 250_000_000), ("a quarter yard", "fx_spot", 250_000_000),
    ("twenty mio", "fx_spot", 20_000_000), ("twenty five mio", "bond", 25_000_000), ("half yard", "fx_spot", 5e8),
    # no leading digit, simple fractions
    (".5", "crypto", 0.5), (".5 btc", "crypto", 0.5), (".25 bitcoins", "crypto", 0.25), (".5", "fx_spot", 500_000),
    ("1/2", "crypto", 0.5), ("1/4 btc", "crypto", 0.25), ("3/4 ETH", "crypto", 0.75), ("1/2 yard", "fx_spot", 5e8),
    ("3/4", "fx_spot", 750_000), ("2 bitcoins", "crypto", 2),
])
def test_quantity(span, asset_class, expected):
    assert normalize_quantity(span, asset_class) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("span, code", [("0", "non_positive_quantity"), ("lots", "unparseable_value"),
                                        ("10 zebras", "unparseable_value"),
                                        # a bond's price handle or maturity, a date: no amounts
                                        ("101 1/2", "unparseable_value"), ("99 3/4", "unparseable_value"),
                                        ("20/03", "unparseable_value"), ("05/34", "unparseable_value"),
                                        ("2/3", "unparseable_value")])
def test_quantity_errors(span, code):
    with pytest.raises(NormalizationError) as err:
        normalize_quantity(span, "equity")
    assert err.value.code == code


@pytest.mark.parametrize("span, expected", [
    ("1.2710", 1.2710), ("@ 1.2710", 1.2710), ("at 187.5", 187.5), ("67k", 67000), ("99-16", 99.5),
    ("99-16+", 99.515625), ("99-162", 99.5078125), ("101-00", 101.0), ("$187.50", 187.5), ("1,0850", 1.085), (".5930", 0.593), ("-110", -110.0), ("+4.5", 4.5),
    ("2.340,50", 2340.5), ("4.78%", 4.78), ("99'16", 99.5),
])
def test_price(span, expected):
    assert normalize_price(span) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("span", ["99-33", "cheap", "1.2.3", "10:30"])  # a time of day is no 32nds price
def test_price_errors(span):
    with pytest.raises(NormalizationError):
        normalize_price(span)


@pytest.mark.parametrize("bid, ask, expected", [
    ("1.0848", "50", (1.0848, 1.0850)),
    ("1.0848", "1.0850", (1.0848, 1.0850)),
    ("1.2798", "02", (1.2798, 1.2802)),
    ("150.25", "28", (150.25, 150.28)),
    ("99-16", "18", (99.5, 99.5625)),
    ("187.4", "187.6", (187.4, 187.6)),
    ("17.0520", "0620", (17.052, 17.062)),
    (".5930", "35", (0.593, 0.5935)),
    ("-110", "-108", (-110.0, -108.0)),
    ("212.5", "214", (212.5, 214.0)),  # swap points: a whole ask, not a short form
])
def test_quote(bid, ask, expected):
    assert normalize_quote(bid, ask) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("bid, ask", [("212.5", "990"), ("99-16", "33")])
def test_quote_errors(bid, ask):
    with pytest.raises(NormalizationError):
        normalize_quote(bid, ask)


@pytest.mark.parametrize("span, expected", [
    ("spot", "SPOT"), ("tom", "TOM"), ("t/n", "TN"), ("o/n", "ON"), ("overnight", "ON"), ("s/n", "SN"),
    ("1w", "1W"), ("1 week", "1W"), ("2 weeks", "2W"), ("3mth", "3M"), ("3 months", "3M"), ("6m", "6M"),
    ("1y", "1Y"), ("10yr", "10Y"), ("one month", "1M"), ("3 mois", "3M"), ("1w/2w", "2W"), ("sn/1m", "1M"),
    ("15 dec", "2026-12-15"), ("dec 15th", "2026-12-15"), ("3 jan", "2027-01-03"), ("25 nov", "2026-11-25"),
    ("15/12", "2026-12-15"), ("2027-03-19", "2027-03-19"), ("15 Dec 2027", "2027-12-15"), ("15. Dez", "2026-12-15"),
    ("12/15", "2026-12-15"), ("12/15/27", "2027-12-15"), ("05/06", "2027-06-05"),  # month first only when it must be
    ("tom-next", "TN"), ("spot-next", "SN"), ("3 mesi", "3M"), ("10 anni", "10Y"), ("2 settimane", "2W"),
])
def test_tenor(span, expected):
    assert normalize_tenor(span, REF) == expected


@pytest.mark.parametrize("span, asset_class, expected", [
    ("10J", "rates_swap", "10Y"), ("10 j.", "bond", "10Y"), ("5y/10j", "rates_swap", "10Y"),  # German Jahre
    ("10j", "fx_forward", "10D"), ("10j", None, "10D"),                                         # French jours
    ("10 jahre", "rates_swap", "10Y"), ("1w", "rates_swap", "1W"),
])
def test_tenor_by_asset_class(span, asset_class, expected):
    assert normalize_tenor(span, REF, asset_class) == expected


@pytest.mark.parametrize("span, expected", [
    ("Citi", "Citi"), (" GS ", "GS"), ("Barclays.", "Barclays"), ("BofA's", "BofA"), ("JPM’s", "JPM"),
    ("Brevan Howard", "Brevan Howard"), ("intesa", "intesa"),
    ("CIBC'S", "CIBC"),
    # a party described but not named is no counterparty
    ("client", None), ("Corporate", None), ("a real money account", None), ("the EM desk", None), ("ops", None),
    ("my PA", None), ("pension fund client", None), ("central bank", None), ("a UK insurer", None),
    ("an LDI scheme", None), ("EBS", None), ("360T", None), ("voice broker", None), ("Tullett", None),
    # a real name made partly of those words stays
    ("Flow Traders", "Flow Traders"), ("danske bank", "danske bank"), ("Bank of America", "Bank of America"),
    ("Man Group", "Man Group"), ("Union", "Union"),
])
def test_counterparty(span, expected):
    assert normalize_counterparty(span) == expected


@pytest.mark.parametrize("span, text, expected", [
    ("Millenn", "HF client Millennium selling 40 eurusd", "Millennium"),  # stopped inside a word
    ("Agricole", "Credit Agricole - buy 20 eurjpy", "Credit Agricole"),
    ("Mitsui Trust", "Sumitomo Mitsui Trust - bid 100 usdjpy", "Sumitomo Mitsui Trust"),
    ("Abu Dhabi", "Abu Dhabi Investment Authority asking for a 2 way", "Abu Dhabi Investment Authority"),
    ("Danske", "Danske Bank wants to sell 50 eurdkk", "Danske Bank"),
    # not widened: acronyms, lower case, chat words and roles around a name, a span not in the text
    ("MS", "Show MS a bid in 25 kiwi", "MS"), ("Nomura", "Ask Nomura for a px", "Nomura"),
    ("DZ Bank", "Kunde DZ Bank: verkaufe 25 Mio EURCHF", "DZ Bank"), ("Citi", "sell 10 cable for Citi Thanks", "Citi"),
    ("citi", "w/ citi pls", "citi"), ("Jess", "Jess - Standard Chartered want to lift", "Jess"),
    ("Nomura", "for Nomura USDJPY 5", "Nomura"), ("Rabe", "s/b 150 eurusd w/ Rabo", "Rabe"),
    ("MS", "sell 10k MSFT for MS", "MS"),
    ("Jane Street", "Jane Street Asks: Looking For A Price In 1.5m Ust 2y Thx", "Jane Street"),
    # "vs" marks the other side of a trade in any case; it is never part of the name
    ("Natwest", "Pay 5Y Euribor Vs Natwest 50M", "Natwest"), ("Natwest", "pay 5y euribor vs Natwest 50m", "Natwest"),
    ("NATWEST", "PAY 5Y EURIBOR VS NATWEST 50M", "NATWEST"), ("Lloyds", "Rec 10Y Sonia Against Lloyds", "Lloyds"),
    ("Agricole", "Sell 20 Cable Versus Credit Agricole", "Credit Agricole"),
])
def test_whole_name(span, text, expected):
    assert whole_name(span, text) == expected


@pytest.mark.parametrize("span", ["soonish", "31 feb", "32/01", "13/13"])
def test_tenor_errors(span):
    with pytest.raises(NormalizationError):
        normalize_tenor(span, REF)


@pytest.mark.parametrize("span, expected", [("eur", "EUR"), ("$", "USD"), ("£", "GBP"), ("USD", "USD"),
                                            ("euros", "EUR"), ("nok", "NOK")])
def test_currency(span, expected):
    assert normalize_currency(span) == expected


def test_currency_unknown():
    with pytest.raises(NormalizationError) as err:
        normalize_currency("xyz")
    assert err.value.code == "unknown_currency"


@pytest.mark.parametrize("span, expected", [("$5m", ("5m", "USD")), ("10 mio eur", ("10 mio", "EUR")),
                                            ("10m", ("10m", None))])
def test_split_amount_currency(span, expected):
    assert split_amount_currency(span) == expected


@pytest.mark.parametrize("span, text, expected", [
    ("cable", "Buy 10m CABLE 1w", True), ("10m", "buy 10m  cable", True), ("euros", "buy eurusd", False),
    ("1 w", "buy 1w", False),
])
def test_grounding(span, text, expected):
    assert is_grounded(span, text) is expected


RAW = {"intent": "order", "side": "buy", "asset_class": "fx_forward", "symbol": "cable", "quantity": "10m",
       "currency": None, "price": "1.2710", "bid": None, "ask": None, "order_type": None, "tenor": "1w",
       "counterparty": None, "multiple_trades": False}


@pytest.mark.parametrize("changes, text, fields, reasons", [
    ({}, "buy 10m cable 1w @ 1.2710",
     {"symbol": "GBPUSD", "quantity": 1e7, "currency": "GBP", "price": 1.271, "tenor": "1W"}, []),
    ({"intent": "none"}, "cable looks heavy", {"side": None, "symbol": None, "quantity": None}, []),
    ({"intent": "rfq", "side": None, "price": None}, "px in 10m cable 1w?", {"side": "two_way"}, []),
    ({"symbol": "euros"}, "buy 10m cable 1w @ 1.2710", {"symbol": None},
     [("ungrounded_span", "symbol"), ("unknown_symbol", "symbol")]),
    ({"symbol": "jpyusd", "side": "sell"}, "sell 10m jpyusd 1w @ 1.2710", {"symbol": "USDJPY", "side": "buy"}, []),
    ({"quantity": "0"}, "buy 0 cable 1w @ 1.2710 x", {"quantity": None}, [("non_positive_quantity", "quantity")]),
    # FX amounts are in the pair's base, so a currency span the model made up cannot fail
    ({"currency": "$"}, "buy 10m cable 1w @ 1.2710", {"currency": "GBP"}, []),
    ({"currency": "zzz"}, "buy 10m cable 1w @ 1.2710", {"currency": "GBP"}, []),
    ({"asset_class": "equity", "symbol": "AAPL", "tenor": None, "quantity": "10k", "currency": "zzz"},
     "buy 10k AAPL @ 1.2710", {"currency": None}, [("ungrounded_span", "currency"), ("unknown_currency", "currency")]),
    # a pair from its legs: the side is the base currency's in the market-order pair
    ({"symbol": "EUR Sell JPY", "quantity": "5M", "tenor": None, "price": None}, "Buy EUR Sell JPY 5M",
     {"symbol": "EURJPY", "side": "buy", "quantity": 5e6, "currency": "EUR"}, []),
    ({"symbol": "GBP buy USD", "side": "sell", "quantity": "3M", "tenor": None, "price": None}, "Sell GBP buy USD 3M",
     {"symbol": "GBPUSD", "side": "sell", "currency": "GBP"}, []),
    ({"symbol": "JPY sell EUR", "quantity": "5M", "tenor": None, "price": None}, "Buy JPY sell EUR 5M",
     {"symbol": "EURJPY", "side": "sell", "currency": "EUR"}, []),
    ({"symbol": "eur 10m vs chf", "tenor": None, "price": None}, "buy eur 10m vs chf",
     {"symbol": "EURCHF", "side": "buy", "quantity": 1e7, "currency": "EUR"}, []),
    ({"symbol": "chf vs eur", "tenor": None, "price": None}, "buy 10m chf vs eur",
     {"symbol": "EURCHF", "side": "sell"}, []),  # a reversed pair flips with "vs" between, as without it
    ({"asset_class": "crypto", "symbol": "btc", "quantity": "1/2", "tenor": None, "price": None}, "sell 1/2 btc",
     {"quantity": 0.5, "currency": None}, []),
    # right after a number a fraction is a bond price's handle: no amount, and a reason to look
    ({"asset_class": "bond", "symbol": "T 4.5 05/34", "quantity": "1/2", "tenor": None, "price": None},
     "buy T 4.5 05/34 at 101 1/2", {"quantity": None}, [("unparseable_value", "quantity")]),
    # "J": Jahre for a swap or bond (German), jours for FX (French)
    ({"asset_class": "rates_swap", "symbol": "ESTR", "tenor": "10J", "price": None}, "zahle 10m EUR 10J ESTR Swap",
     {"tenor": "10Y"}, []),
    ({"asset_class": "rates_swap", "symbol": "ESTR", "tenor": "10 j.", "price": None}, "zahle 10m EUR 10 j. ESTR",
     {"tenor": "10Y"}, []),
    ({"asset_class": "rates_swap", "symbol": "ESTR", "tenor": "10 jahre", "price": None}, "10m EUR ESTR 10 jahre",
     {"tenor": "10Y"}, []),
    # a currency is no symbol outside FX: a swap or bond "named" EUR goes to review
    ({"asset_class": "rates_swap", "symbol": "EUR", "tenor": "10J", "price": None}, "zahle 10m EUR 10J Swap",
     {"symbol": None, "tenor": "10Y"}, [("unknown_symbol", "symbol")]),
    ({"tenor": "10j"}, "achète 10m cable 10j @ 1.2710", {"tenor": "10D"}, []),
    # closing a position: the phrase decides the side, whatever the model read
    ({"side": "sell", "tenor": None, "price": None}, "get me out of my cable short, 10m", {"side": "buy"}, []),
    ({"side": "buy", "quantity": "10", "tenor": None, "price": None}, "flatten my cable pls - long 10 from this morning",
     {"side": "sell"}, []),
    # what the symbol says wins over the model's asset class; an exchange code alone is no symbol
    ({"asset_class": "equity", "symbol": "ZN", "quantity": "20", "tenor": None, "price": None}, "sell 20 ZN pls",
     {"asset_class": "future", "symbol": "ZN", "quantity": 20}, []),
    ({"asset_class": "commodity", "symbol": "C US", "quantity": "15k", "tenor": None, "price": None},
     "buy 15k C US", {"asset_class": "equity", "symbol": "C US"}, []),
    ({"asset_class": "equity", "symbol": "Ln", "quantity": "1,500", "tenor": None, "price": None},
     "Sell 1,500 Bp Ln At Market", {"symbol": None}, [("unknown_symbol", "symbol")]),
])
def test_normalize_extraction(changes, text, fields, reasons):
    result = normalize_extraction({**RAW, **changes}, text, REF)
    for name, value in fields.items():
        assert result.fields[name] == (pytest.approx(value) if isinstance(value, float) else value)
    assert [(code, field) for code, field, _ in result.reasons] == reasons


@pytest.mark.parametrize("span, expected", [
    ("cable", "fx"), ("FIBER", "fx"), ("eur/nok", "fx"), ("usd jpy", "fx"), ("sol", "crypto"), ("BTC/USDT", "crypto"),
    ("aapl", None), ("ust 10y", None), ("eur", None), ("usdt", None), ("gold", None),
    ("eur 10m vs chf", "fx"), ("EUR Sell JPY", "fx"), ("Bitcoins", "crypto"),
    # futures codes: rates and index roots alone or with a month, energy and metals only with one
    ("ZN", "future"), ("zf", "future"), ("FGBL Z5", "future"), ("fesx dec", "future"), ("TYH6", "future"),
    ("CLZ5", "future"), ("cl", None), ("us", None), ("si", None),
    # a ticker with an exchange code is a listed share; a tenor before one is not a ticker
    ("C US", "equity"), ("sap gy", "equity"), ("7203 JT", "equity"), ("5y us", None), ("UST 10Y", None),
    ("T 4.5 05/34", None),
])
def test_implied_asset_class(span, expected):
    assert implied_asset_class(span) == expected


@pytest.mark.parametrize("span, expected", [
    ("cable 1 year outright", ("cable", "1 year")), ("aud 2 months", ("aud", "2 months")),
    ("eurusd 3m fwd", ("eurusd", "3m")), ("dollar yen tom", ("dollar yen", "tom")), ("usd/jpy o/n", ("usd/jpy", "o/n")),
    ("cable", ("cable", None)), ("UST 10Y", ("UST 10Y", None)), ("gold 3m", ("gold 3m", None)),
    ("eur usd", ("eur usd", None)),
])
def test_split_pair_tenor(span, expected):
    assert split_pair_tenor(span) == expected


@pytest.mark.parametrize("changes, text, fields", [
    ({"symbol": "cable 1 year", "tenor": None, "quantity": "5", "price": None}, "sell 5 cable 1 year outright",
     {"symbol": "GBPUSD", "tenor": "1Y", "asset_class": "fx_forward", "currency": "GBP"}),
    ({"symbol": "aud 2 months", "tenor": "2 months", "asset_class": "fx_forward", "quantity": "3 mio", "price": None},
     "buy 3 mio aud 2 months",
     {"symbol": "AUDUSD", "tenor": "2M", "asset_class": "fx_forward"}),
    ({"asset_class": "equity", "symbol": "SAN", "quantity": "3.000", "tenor": None, "price": None},
     "vendo 3.000 acciones de SAN",
     {"quantity": 3000.0, "symbol": "SAN"}),
])
def test_spans_cut_badly_are_read_as_meant(changes, text, fields):
    result = normalize_extraction({**RAW, **changes}, text, REF)
    assert {name: result.fields[name] for name in fields} == fields
    assert result.reasons == []


def test_a_tenor_split_off_the_symbol_is_scored_by_the_symbol():
    result = normalize_extraction({**RAW, "symbol": "cable 1 year", "tenor": None}, "sell 5 cable 1 year", REF)
    assert result.derived_from["tenor"] == ("symbol",)


def test_an_fx_currency_is_scored_by_the_pair():
    result = normalize_extraction(RAW, "buy 10m cable 1w @ 1.2710", REF)
    assert result.derived_from["currency"] == ("symbol",)


@pytest.mark.parametrize("changes, asset_class, derived", [
    ({"asset_class": "bond", "symbol": "cable", "tenor": None}, "fx_spot", ("symbol",)),
    ({"asset_class": "equity", "symbol": "cable", "tenor": "1w"}, "fx_forward", ("symbol", "tenor")),
    ({"asset_class": "fx_forward", "tenor": None}, "fx_spot", ("asset_class", "tenor")),
    ({"asset_class": "fx_spot", "tenor": "1w"}, "fx_forward", ("asset_class", "tenor")),
    ({"asset_class": "fx_forward", "tenor": "1w"}, "fx_forward", None),
    ({"asset_class": "fx_swap", "tenor": "1w"}, "fx_swap", None),
    ({"asset_class": "commodity", "symbol": "btc", "tenor": None, "quantity": "10"}, "crypto", ("symbol",)),
])
def test_asset_class_follows_the_instrument_and_value_date(changes, asset_class, derived):
    result = normalize_extraction({**RAW, **changes}, "buy 10m cable btc 1w @ 1.2710", REF)
    assert result.fields["asset_class"] == asset_class
    assert result.derived_from.get("asset_class") == derived


@pytest.mark.parametrize("text, expected", [
    ("get me out of the stocky short, 7 bucks, at best", "buy"),
    ("flatten my eurnok pls - long 12 since yday", "sell"),
    ("Close Out My Short 600 LULU At 318.50 Or Better", "buy"),
    ("unwind the 5y sofr payer, 80m", "sell"),              # a payer pays fixed: a buy, so closing it sells
    ("take me out of the 6y estr receiver, eur 40m", "buy"),
    ("stop loss on 20 gbpjpy at 190.40, I'm long", "sell"),  # a price's decimal point is no sentence end
    ("kill the stop on my brent short", "buy"),
    ("Copper 3M Long, Get Me Out Of 250T At 9,610", "sell"),
    ("Unwind My 50M USDJPY 3M Outright, I Was Long", "sell"),
    ("cover half my tsla short pls", "buy"),
    ("get me flat in aussie, im long 20", "sell"),
    ("take profit on the 10 eurchf long at .9520", "sell"),
    ("short 40 wti mar, take it off at 70.10", "buy"),
    ("buy 10m cable at 1.2710", None),
    ("how long till the close?", None),
    ("as long as you close it today", None),
    ("long weekend, closing early", None),
    ("short date swap in 50 eurusd", None),
    ("cover for me. i'm long lunch", None),                      # not across a sentence's end
    ("Take Me Out Of 3K ORCL At Best", "sell"),                  # a holding with no position word is long
    ("pls cxl the take-out on my 600 ADBE", "sell"),
    ("where can u get us out of 4k oz silver?", "sell"),
    ("get me out of 6k HOOD, i was short", "buy"),               # a position word decides
    ("im out of ideas, buy 5 cable", None),                      # not a holding
    ("flatten my NQM7 longs", "sell"),                           # positions in the plural
    ("cover the shorts in 3k HOOD", "buy"),
])
def test_closing_side(text, expected):
    assert closing_side(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("gs: need an offer in 40 eurjpy", "gs"),
    ("Nordea: 2 way 15 eurdkk, SEB: same", "Nordea"),            # only the opening speaker
    ("[Macquarie] sell 8 aussie at best", "Macquarie"),
    ("Standard Chartered : bid 25 usdinr 1m ndf", "Standard Chartered"),
    ("BNPP:buy 4 cable", "BNPP"),
    ("ldn_fx_ak: buy 4 cable", None),                              # a person's handle
    ("[10:42] gs: buy 4 cable", None),                             # a time stamp opens it
    ("re: your cable offer", None),
    ("ops: pls confirm the eurusd fixing", None),
    ("buy 4 cable for GS", None),                                  # named later: the model's to read
    ("Goldman Sachs Asset Mgmt: sell 10k SPY", None),              # not a listed name as a whole
])
def test_prefix_counterparty(text, expected):
    assert prefix_counterparty(text) == expected


@pytest.mark.parametrize("model_counterparty, expected", [(None, "rbc"), ("Citadel", "Citadel")])
def test_an_opening_bank_fills_a_counterparty_the_model_left_out(model_counterparty, expected):
    text = "rbc: buy 10m cable 1w @ 1.2710 for Citadel"
    result = normalize_extraction({**RAW, "counterparty": model_counterparty}, text, REF)
    assert result.fields["counterparty"] == expected
    assert result.derived_from.get("counterparty") == (("intent",) if model_counterparty is None else None)


@pytest.mark.parametrize("span, text, expected", [
    ("25m", "rec 25m chf 6y saron", "CHF"),
    ("40mm", "pay USD 40mm 9y sofr at 3.80", "USD"),
    ("60m", "we'd receive 11y euribor in €60m", "EUR"),
    ("3 millions", "je paie 3 millions d'euros 4 ans estr", "EUR"),
    ("2bn", "6y tona 1.10/1.13 in 2bn yen", "JPY"),
    ("30 million", "pay 4y sonia in 30 million sterling", "GBP"),
    ("4k", "buy 4k ASML NA at 690", None),                           # no currency next to the amount
    ("300", "sell 300 oz silver", None),                             # a unit, not a currency
    ("5m", "pay 5m 7y sofr, 5m more later", None),                   # twice in the text: whose currency?
    ("8", "8 $ in the jar", None),                                   # a symbol after the amount is no notation
    ("15m", "pay 15m 2y sofr usd", None),                            # not next to the amount
])
def test_adjacent_currency(span, text, expected):
    assert adjacent_currency(span, text) == expected


@pytest.mark.parametrize("raw, text, currency", [
    ({"intent": "order", "side": "sell", "asset_class": "rates_swap", "symbol": "saron", "quantity": "25m",
      "tenor": "6y"}, "rec 25m chf 6y saron", "CHF"),
    ({"intent": "order", "side": "buy", "asset_class": "fx_spot", "symbol": "eurchf", "quantity": "25m"},
     "buy 25m chf vs eur", "EUR"),                                   # FX: always the pair's base
])
def test_a_currency_written_next_to_the_amount_fills_one_the_model_left_out(raw, text, currency):
    result = normalize_extraction(raw, text, REF)
    assert result.fields["currency"] == currency


@pytest.mark.parametrize("text, fields", [
    ("silver choice 29.75 in 5k oz", {"price": None, "bid": 29.75, "ask": 29.75, "side": "two_way"}),
    ("silver 29.75 in 5k oz", {"price": 29.75, "bid": None, "ask": None, "side": "sell"}),   # no choice: as read
])
def test_a_choice_price_is_a_two_way_quote_at_one_level(text, fields):
    raw = {"intent": "quote", "side": "sell", "asset_class": "commodity", "symbol": "silver", "quantity": "5k oz",
           "price": "29.75"}
    result = normalize_extraction(raw, text, REF)
    assert {name: result.fields[name] for name in fields} == fields


@pytest.mark.parametrize("text, expected", [
    ("sell 300 NVDA at mkt", True),
    ("buy 2 btc @ market pls", True),
    ("lift 40 aussie at best", True),
    ("mkt order: sell 1k oz silver", True),
    ("achète 5 millions eurchf au marché", True),
    ("vendo 3 millones usdmxn a mercado", True),
    ("kaufe 2 Mio EURUSD bestens", True),
    ("compra 10 mio eurusd al meglio", True),
    ("compra 4 ETH al mejor precio", True),
    ("move the 3k AMD buy to lmt 150 from mkt", False),               # a bare "mkt" is no order type
    ("buy 20 cable at 1.2710", False),
])
def test_stated_market(text, expected):
    assert stated_market(text) is expected


@pytest.mark.parametrize("intent, model_order_type, expected", [
    ("order", None, "market"), ("order", "limit", "limit"), ("rfq", None, None)])
def test_an_order_stated_at_market_fills_the_type_the_model_left_out(intent, model_order_type, expected):
    raw = {**RAW, "intent": intent, "order_type": model_order_type, "price": None}
    result = normalize_extraction(raw, "buy 10m cable 1w at mkt", REF)
    assert result.fields["order_type"] == expected


@pytest.mark.parametrize("text, expected", [
    ("we'd rec 4y sonia at 3.88 in 60m", True),
    ("I can pay 12y estr 2.51", True),
    ("we would receive 6y saron 0.58, chf 30m", True),
    ("can pay 15y sofr 3.97 in 25m", True),
    ("where would they pay 9y sofr?", False),                       # asks
    ("who can rec eur 40m 3y estr", False),
    ("pay 4y sonia 3.88 in 60m", False),                            # an order
])
def test_offers_a_swap_level(text, expected):
    assert offers_a_swap_level(text) is expected


@pytest.mark.parametrize("text, intent", [("we'd rec 4y sonia at 3.88 in 60m", "quote"),
                                          ("rec 4y sonia at 3.88 in 60m", "order")])
def test_a_swap_level_offered_is_a_quote(text, intent):
    raw = {"intent": "order", "side": "sell", "asset_class": "rates_swap", "symbol": "sonia", "quantity": "60m",
           "price": "3.88", "tenor": "4y"}
    assert normalize_extraction(raw, text, REF).fields["intent"] == intent


@pytest.mark.parametrize("span, expected", [
    ("saron chf", "SARON"), ("USD SOFR", "SOFR"), ("10y sonia", "SONIA"), ("€STR", "ESTR"), ("euribor 6m", "EURIBOR"),
    ("OIS", "OIS"),                                                 # no index named: as written
])
def test_a_rates_swap_symbol_is_the_bare_index(span, expected):
    assert normalize_symbol(span, "rates_swap") == expected


@pytest.mark.parametrize("span, asset_class, expected", [
    ("BNP FP VS SOCGEN", "equity", "BNP FP"), ("DBR 2.6 08/34 vs. ubs", "bond", "DBR 2.6 08/34"),
    ("eth vs usdt", "crypto", "ETHUSDT"),                           # a crypto pair keeps its quote currency
])
def test_vs_and_a_name_are_no_part_of_a_symbol(span, asset_class, expected):
    assert normalize_symbol(span, asset_class) == expected


@pytest.mark.parametrize("text, expected", [
    ("Was ist dein Brief in 25 Mio EURNOK?", "buy"),               # the other side's offer: a buyer asks
    ("lettera per 3 mio eurchf?", "buy"),
    ("Geld für 2 Mio GBPCHF?", "sell"),
    ("Geld/Brief für 1.000 BAS GY", None),                          # both: a two-way price
    ("where would you pay me 6y sonia in 30m", "sell"),            # you pay, I receive
    ("where do u receive 9y sofr, 60m?", "buy"),
    ("what would you pay for 10m OAT 3 05/33?", "sell"),
    ("where can they pay 5y estr?", None),                         # a client's side is the model's to read
    ("px in 20 cable", None),
])
def test_asked_side(text, expected):
    assert asked_side(text) == expected
