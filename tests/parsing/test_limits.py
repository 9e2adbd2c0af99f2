"""Pre-trade limits: the shipped defaults, what goes over, and a bad file named with its line."""

from __future__ import annotations

import pytest

from streamer.parsing.limits import DEFAULT_LIMITS, LimitsError, load_limits

FILE = """\
[asset_class.fx_spot]
max_quantity = 1_000_000_000

[symbol.AAPL]
max_quantity = 100_000
max_notional = 20_000_000
price_band = { reference = 190.0, max_deviation_pct = 15 }

[asset_class.rates_swap]
max_quantity = 5_000_000_000

[usd_per_unit]
JPY = 0.0067
"""


@pytest.fixture
def limits(tmp_path):
    path = tmp_path / "limits.toml"
    path.write_text(FILE)
    return load_limits(path)


@pytest.mark.parametrize("fields, expected", [
    ({"asset_class": "fx_spot", "symbol": "EURUSD", "quantity": 1e9}, []),                  # at the limit: fine
    ({"asset_class": "fx_spot", "symbol": "EURUSD", "quantity": 1.5e9},
     [("quantity", "quantity 1,500,000,000 over max_quantity 1,000,000,000 of asset_class.fx_spot (limits.toml:1)")]),
    ({"asset_class": "fx_forward", "quantity": 5e9}, []),                                   # no rule for it in this file
    ({"asset_class": "equity", "symbol": "aapl", "quantity": 200_000, "price": 190.0}, [
        ("quantity", "quantity 200,000 over max_quantity 100,000 of symbol.AAPL (limits.toml:4)"),
        ("quantity", "notional 38,000,000 (quantity x price) over max_notional 20,000,000 of symbol.AAPL (limits.toml:4)"),
    ]),
    ({"asset_class": "equity", "symbol": "AAPL", "quantity": 10, "price": 250.0},
     [("price", "price 250 is 31.6% from the reference 190, over max_deviation_pct 15 of symbol.AAPL (limits.toml:4)")]),
    ({"asset_class": "equity", "symbol": "AAPL", "quantity": None, "price": None}, []),      # nothing to compare
    # a currency next to the amount makes it money: held to max_notional, never to the share count
    ({"asset_class": "equity", "symbol": "AAPL", "quantity": 5e6, "currency": "USD", "price": 190.0}, []),
    ({"asset_class": "equity", "symbol": "AAPL", "quantity": 25e6, "currency": "USD"},
     [("quantity", "notional 25,000,000 USD (a cash amount) over max_notional 20,000,000 of symbol.AAPL (limits.toml:4)")]),
    ({"asset_class": "fx_spot", "symbol": "EURUSD", "quantity": 1.5e9, "currency": "EUR"},  # FX: always the dealt amount
     [("quantity", "quantity 1,500,000,000 over max_quantity 1,000,000,000 of asset_class.fx_spot (limits.toml:1)")]),
    # money in a currency listed under usd_per_unit is compared in dollars; counts and unlisted currencies as written
    ({"asset_class": "rates_swap", "symbol": "TONA", "quantity": 20e9, "currency": "JPY"}, []),
    ({"asset_class": "rates_swap", "symbol": "TONA", "quantity": 1e12, "currency": "JPY"},
     [("quantity", "quantity 1,000,000,000,000 JPY (≈ 6,700,000,000 USD at 0.0067) over max_quantity 5,000,000,000 of "
                   "asset_class.rates_swap (limits.toml:9)")]),
    ({"asset_class": "rates_swap", "symbol": "SOFR", "quantity": 20e9, "currency": "USD"},
     [("quantity", "quantity 20,000,000,000 over max_quantity 5,000,000,000 of asset_class.rates_swap (limits.toml:9)")]),
    ({"asset_class": "fx_spot", "symbol": "USDJPY", "quantity": 100e9, "currency": "JPY"}, []),   # "sell 100 yards of yen"
    ({"asset_class": "equity", "symbol": "AAPL", "quantity": 2e9, "currency": "JPY"}, []),        # a cash amount: 13.4m USD
    ({"asset_class": "equity", "symbol": "AAPL", "quantity": 200_000, "currency": None}, [
        ("quantity", "quantity 200,000 over max_quantity 100,000 of symbol.AAPL (limits.toml:4)")]),
])
def test_exceeded(limits, fields, expected):
    assert limits.exceeded(fields) == expected


def test_shipped_defaults_stop_any_fx_order_over_a_yard():
    limits = load_limits("default")
    assert limits.path == DEFAULT_LIMITS
    for asset_class in ("fx_spot", "fx_forward", "fx_swap", "fx_option"):
        assert limits.exceeded({"asset_class": asset_class, "quantity": 1_000_000_001})
        assert not limits.exceeded({"asset_class": asset_class, "quantity": 1_000_000_000})


@pytest.mark.parametrize("fields, over", [
    ({"asset_class": "crypto", "symbol": "XRPUSD", "quantity": 25_000}, False),       # a coin worth cents
    ({"asset_class": "crypto", "symbol": "BTCUSD", "quantity": 600}, True),           # a coin worth 100k
    ({"asset_class": "crypto", "symbol": "BTCUSD", "quantity": 2e6, "currency": "USD"}, False),  # "$2m BTC"
    ({"asset_class": "crypto", "symbol": "BTCUSD", "quantity": 2e9, "currency": "USD"}, True),
    ({"asset_class": "equity", "symbol": "AZN", "quantity": 4e6, "currency": "GBP"}, False),      # "sell £4m of AZN"
    ({"asset_class": "equity", "symbol": "AZN", "quantity": 4e6}, True),                          # 4m shares
    ({"asset_class": "commodity", "symbol": "GOLD", "quantity": 2e9, "currency": "USD"}, True),
    ({"asset_class": "rates_swap", "symbol": "TONA", "quantity": 20e9, "currency": "JPY"}, False),  # "rec 20bn jpy 10y tona"
    ({"asset_class": "bond", "symbol": "JGB", "quantity": 10e9, "currency": "JPY"}, False),
    ({"asset_class": "bond", "symbol": "JGB", "quantity": 100e9, "currency": "JPY"}, True),        # $670m of face value
    ({"asset_class": "fx_spot", "symbol": "EURSEK", "quantity": 1e9, "currency": "EUR"}, False),
    ({"asset_class": "fx_spot", "symbol": "EURUSD", "quantity": 1.5e9, "currency": "EUR"}, True),  # majors as written
])
def test_shipped_defaults_count_coins_and_cash_sensibly(fields, over):
    assert bool(load_limits("default").exceeded(fields)) is over


@pytest.mark.parametrize("setting", ["none", "off", "NONE"])
def test_none_means_no_limits(setting):
    assert load_limits(setting) is None


@pytest.mark.parametrize("text, message", [
    ("[asset_class.fx_spot]\nmax_quantity = \n", "limits.toml: Invalid value (at line 2, column 16)"),
    ("[asset_class.fx_spot]\nmax_quantity = -5\n", "limits.toml, line 2: asset_class.fx_spot.max_quantity: Input should be greater than 0"),
    ("# limits\n[asset_class.fx_spt]\nmax_quantity = 5\n", "limits.toml, line 2: asset_class.fx_spt: Input should be"),
    ("[symbol.EURUSD]\nmax_qty = 5\n", "limits.toml, line 2: symbol.EURUSD.max_qty: Extra inputs are not permitted"),
    ("[usd_per_unit]\nyen = 0.0067\n", "limits.toml, line 2: usd_per_unit.yen: String should match pattern"),
    ("[usd_per_unit]\nJPY = 0\n", "limits.toml, line 2: usd_per_unit.JPY: Input should be greater than 0"),
    ("[asset_class.fx_spot]\nmax_quantity = 'lots'\n", "limits.toml, line 2: asset_class.fx_spot.max_quantity: Input should be a valid number"),
])
def test_a_malformed_file_is_one_line_naming_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "limits.toml"
    path.write_text(text)
    with pytest.raises(LimitsError) as caught:
        load_limits(path)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(LimitsError, match="No such file"):
        load_limits(tmp_path / "nope.toml")
