"""Synthetic labelled trader chat, for fine-tuning the extraction model.

A grammar of trader phrasing (templates with slots) is filled with instruments,
amounts, tenors, prices and counterparties, then roughened with casing, typos
and chat noise. Each record carries the contract values (`expected`, following
docs/CONVENTIONS.md) and the verbatim `spans` the model learns to copy. Spans
are cut out of the final text by offset, so a label can never point at words
the message does not contain. All randomness comes from one
`random.Random(seed)`: a seed names a dataset, and a shorter run is a prefix
of a longer one.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable, Iterator

from schemas import CONTRACT_FIELDS

SPAN_FIELDS: tuple[str, ...] = ("symbol", "quantity", "currency", "price", "bid", "ask", "tenor", "counterparty")

INTENT_WEIGHTS = {"order": 32, "rfq": 22, "quote": 16, "cancel": 10, "none": 20}
# FX is half the traffic on the desks this parser serves.
ASSET_CLASS_WEIGHTS = {
    "fx_spot": 25, "fx_forward": 12, "fx_swap": 6, "fx_option": 7,
    "equity": 10, "bond": 8, "rates_swap": 7, "future": 8, "crypto": 9, "commodity": 8,
}
CANCEL_WITHOUT_INSTRUMENT = 0.06

_MONTH_ABBR = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_MONTH_NAME = ("january", "february", "march", "april", "may", "june", "july", "august", "september",
               "october", "november", "december")


def _pick(rng: random.Random, options):
    """One option; a dict is read as option -> weight."""
    if isinstance(options, dict):
        return rng.choices(list(options), weights=list(options.values()))[0]
    return options[rng.randrange(len(options))]


def _number_text(value: Decimal | float | int) -> str:
    """2.5 -> '2.5', 10 -> '10' (no exponent, no trailing zeros)."""
    return format(Decimal(str(value)).normalize(), "f")


# --- prices ----------------------------------------------------------------------


@dataclass(frozen=True)
class Decimals:
    """Prices written as decimals around a typical level; `tick` in units of the last place."""

    mid: float
    places: int
    tick: int = 1
    spread_ticks: tuple[int, int] = (1, 20)
    jitter: float = 0.03
    commas: bool = False  # 67,250
    kilo: bool = False  # 67k, 67.5k

    def _units(self, rng: random.Random) -> int:
        level = self.mid * (1 + rng.uniform(-self.jitter, self.jitter))
        units = round(level * 10**self.places / self.tick) * self.tick
        return max(units, self.tick)

    def _text(self, units: int, commas: bool) -> str:
        value = Decimal(units).scaleb(-self.places)
        return f"{value:,.{self.places}f}" if commas else f"{value:.{self.places}f}"

    def _value(self, units: int) -> float:
        return float(Decimal(units).scaleb(-self.places))

    def price(self, rng: random.Random) -> tuple[str, float]:
        units = self._units(rng)
        if self.kilo and rng.random() < 0.35:
            thousands = Decimal(round(self._value(units) / 100)) / 10
            return f"{_number_text(thousands)}k", float(thousands * 1000)
        commas = self.commas and self._value(units) >= 1000 and rng.random() < 0.5
        return self._text(units, commas), self._value(units)

    def quote(self, rng: random.Random) -> tuple[str, float, str, float]:
        """Bid and ask; the ask is often written short ('1.0848/50'), completed from the bid."""
        bid = self._units(rng)
        ask = bid + rng.randint(*self.spread_ticks) * self.tick
        commas = self.commas and self._value(bid) >= 1000 and rng.random() < 0.5
        bid_text, ask_text = self._text(bid, commas), self._text(ask, commas)
        if self.places >= 2 and not commas and ask - bid < 100 and rng.random() < 0.6:
            ask_text = ask_text[-2:]
        return bid_text, self._value(bid), ask_text, self._value(ask)


@dataclass(frozen=True)
class ThirtySeconds:
    """Treasury prices in 32nds: 99-16, 99-16+ (half a 32nd), 99-162 (eighths of a 32nd)."""

    handle: int
    spread: int = 2

    def price(self, rng: random.Random) -> tuple[str, float]:
        whole = self.handle + rng.randint(-self.spread, self.spread)
        ticks = rng.randint(0, 31)
        style = rng.random()
        if style < 0.6:
            return f"{whole}-{ticks:02d}", whole + ticks / 32
        if style < 0.85:
            return f"{whole}-{ticks:02d}+", whole + (ticks + 0.5) / 32
        eighth = _pick(rng, (2, 6, 2, 6, 1, 3, 5, 7))
        return f"{whole}-{ticks:02d}{eighth}", whole + (ticks + eighth / 8) / 32

    def quote(self, rng: random.Random) -> tuple[str, float, str, float]:
        """Counted in 64ths so '+' halves fit; short asks ('99-16/18') never roll the handle."""
        whole = self.handle + rng.randint(-self.spread, self.spread)
        bid = rng.randint(0, 56)
        ask = bid + rng.randint(1, 6)

        def ticks(sixty_fourths: int) -> str:
            return f"{sixty_fourths // 2:02d}" + ("+" if sixty_fourths % 2 else "")

        ask_text = ticks(ask) if rng.random() < 0.6 else f"{whole}-{ticks(ask)}"
        return f"{whole}-{ticks(bid)}", whole + bid / 64, ask_text, whole + ask / 64


PriceModel = Decimals | ThirtySeconds


# --- amounts ---------------------------------------------------------------------


@dataclass(frozen=True)
class Amount:
    """How an amount reads: `pattern` places the {quantity} (and maybe {currency}) spans."""

    pattern: str
    quantity: str
    value: float
    currency: str | None = None
    currency_iso: str | None = None


_MILLION_SUFFIXES = {
    "en": ("m", "m", "m", "m", "mm", "mm", " mio", " bucks", " millions", "M", " million"),
    "fr": ("m", "m", " M", " millions", " mio"),
    "es": (" millones", " millones", " mio", "m", " M"),
    "de": (" Mio", " Mio", " Mio", "m", " mio"),
}
_MILLION_COUNTS = (1, 2, 3, 5, 5, 10, 10, 10, 15, 20, 25, 25, 30, 40, 50, 50, 75, 100, 150, 200, 250, 500,
                   2.5, 7.5, 1.5)
_CURRENCY_MARKS = {"USD": ("$", "USD", "usd"), "EUR": ("€", "EUR", "eur"), "GBP": ("£", "GBP", "gbp"),
                   "JPY": ("¥", "JPY", "jpy"), "CHF": ("CHF", "chf")}


def _millions(rng: random.Random, lang: str, bare: bool) -> tuple[str, float]:
    """A notional in the ways desks write millions: 10m, 10mm, 10 mio, 10 bucks, 1 yard, 500k, bare 25 (FX)."""
    roll = rng.random()
    if lang == "en" and roll < 0.07:
        thousands = _pick(rng, (100, 250, 500, 500, 750))
        return f"{thousands}k", thousands * 1e3
    if lang == "en" and roll < 0.12:
        billions = _pick(rng, (1, 1, 2, 1.5))
        if billions == 1.5:
            text = f"1.5{_pick(rng, ('bn', 'bn', ' bn'))}"
        else:
            unit = _pick(rng, (" yard", "bn", " bn", "b", " yard")) if billions == 1 else _pick(rng, (" yards", "bn"))
            text = f"{billions}{unit}"
        return text, billions * 1e9
    count = _pick(rng, _MILLION_COUNTS)
    if roll < 0.16:
        units = int(Decimal(str(count)) * 1_000_000)
        return f"{units:,}", float(units)
    number = _number_text(count)
    if bare and roll < 0.40:
        return number, float(Decimal(number) * 1_000_000)
    return f"{number}{_pick(rng, _MILLION_SUFFIXES[lang])}", float(Decimal(number) * 1_000_000)


def _counted(rng: random.Random, counts: tuple[str, ...], units: tuple[str, ...], unit_share: float) -> Amount:
    """Shares, contracts, coins, ounces, barrels: counted as written ('5k' = 5000)."""
    text = _pick(rng, counts)
    plain = text.replace(",", "")
    value = float(Decimal(plain[:-1]) * 1000) if plain.endswith("k") else (
        float(Decimal(plain[:-1]) * 1_000_000) if plain.endswith("m") else float(Decimal(plain)))
    pattern = "{quantity}"
    if units and rng.random() < unit_share:
        pattern = "{quantity} " + _pick(rng, units)
    return Amount(pattern, text, value)


# --- instruments -----------------------------------------------------------------


@dataclass(frozen=True)
class Instrument:
    """One tradable thing as written (`surface`) and as the contract names it (`symbol`)."""

    family: str  # fx, equity, bond, rates, future, crypto, commodity
    surface: str
    symbol: str
    prices: PriceModel
    base: str | None = None  # FX: the pair's base currency
    counts: tuple[str, ...] = ()  # counted amounts; empty = notionals in millions
    units: tuple[str, ...] = ()
    notional_currencies: tuple[str, ...] = ()
    currency_share: float = 0.0

    def amount(self, rng: random.Random, lang: str) -> Amount:
        if self.counts:
            if self.notional_currencies and rng.random() < self.currency_share:
                return self._with_currency(rng, lang)
            return _counted(rng, self.counts, self.units, 0.4)
        if self.notional_currencies and rng.random() < self.currency_share:
            return self._with_currency(rng, lang)
        text, value = _millions(rng, lang, bare=self.family == "fx")
        return Amount("{quantity}", text, value)

    def _with_currency(self, rng: random.Random, lang: str) -> Amount:
        """'$5m', '10m EUR', 'EUR 10m': a currency written next to the amount."""
        iso = _pick(rng, self.notional_currencies)
        mark = _pick(rng, _CURRENCY_MARKS[iso])
        text, value = _millions(rng, lang, bare=False)
        if len(mark) == 1:
            pattern = "{currency}{quantity}"
        else:
            pattern = _pick(rng, ("{quantity} {currency}", "{quantity} {currency}", "{currency} {quantity}"))
        return Amount(pattern, text, value, mark, iso)


def _symbol_as_written(surface: str) -> str:
    return " ".join(surface.upper().split())


# symbol, typical level, decimal places, weight, slang names
FX_PAIRS = (
    ("EURUSD", 1.085, 4, 18, ("fiber", "fiber", "fibre")),
    ("GBPUSD", 1.27, 4, 14, ("cable",)),
    ("USDJPY", 151.2, 2, 14, ("dollar yen", "dollar yen", "dollar-yen")),
    ("USDCHF", 0.885, 4, 6, ("swissy", "swissy", "swissie")),
    ("AUDUSD", 0.66, 4, 7, ("aussie",)),
    ("NZDUSD", 0.60, 4, 5, ("kiwi",)),
    ("USDCAD", 1.36, 4, 6, ("loonie",)),
    ("EURJPY", 163.5, 2, 5, ("euro yen",)),
    ("EURGBP", 0.855, 4, 4, ()),
    ("GBPJPY", 191.8, 2, 3, ()),
    ("EURCHF", 0.95, 4, 3, ()),
    ("AUDJPY", 99.5, 2, 2, ()),
    ("USDMXN", 17.2, 4, 2, ()),
    ("USDZAR", 18.4, 4, 2, ()),
    ("USDSEK", 10.5, 4, 2, ()),
    ("USDNOK", 10.7, 4, 2, ()),
    ("EURNOK", 11.6, 4, 1, ()),
    ("USDSGD", 1.345, 4, 1, ()),
    ("USDCNH", 7.25, 4, 2, ()),
    ("USDHKD", 7.82, 4, 1, ()),
)

EQUITIES = (
    ("AAPL", 190), ("MSFT", 420), ("NVDA", 120), ("TSLA", 240), ("AMZN", 185), ("META", 500), ("GOOGL", 170),
    ("JPM", 200), ("BAC", 38), ("XOM", 115), ("KO", 62), ("NFLX", 650), ("AMD", 160), ("INTC", 31),
    ("VOD LN", 72), ("HSBA LN", 680), ("SAP GY", 185), ("MC FP", 720), ("BRK.B", 410),
    ("ORCL", 140), ("GME", 25), ("SAN", 4.3), ("BP LN", 480), ("SIE GY", 170), ("ASML NA", 900), ("7203 JT", 2800),
    ("PLTR", 30), ("DIS", 95), ("WMT", 68),
)
_SHARE_COUNTS = ("100", "200", "250", "300", "500", "500", "750", "1000", "1,000", "1,200", "1,500", "2,500",
                 "5,000", "5k", "10k", "2k", "1.5k", "20k", "50", "400")

# surfaces, price model, currencies a notional may be written in
BONDS = (
    (("ust 10y", "UST 10Y", "UST 10y"), ThirtySeconds(98), ("USD",)),
    (("ust 2y", "UST 2Y"), ThirtySeconds(100, 1), ("USD",)),
    (("ust 5y", "UST 5Y"), ThirtySeconds(99), ("USD",)),
    (("ust 30y", "UST 30Y"), ThirtySeconds(92), ("USD",)),
    (("T 4.5 05/34", "t 4.5 05/34"), ThirtySeconds(101), ("USD",)),
    (("T 4.25 11/34",), ThirtySeconds(99), ("USD",)),
    (("T 4 1/8 11/32", "T 4 3/8 05/34", "t 4 1/8 11/32", "T 3 7/8 08/33"), ThirtySeconds(98), ("USD",)),
    (("T 4.375 11/33", "T 4 3/4 02/37", "T 4.625 02/35", "T 3 1/2 02/33"), ThirtySeconds(97), ("USD",)),
    (("bund", "Bund", "BUND"), Decimals(99.5, 2, spread_ticks=(2, 15)), ("EUR",)),
    (("bund 10y",), Decimals(99.2, 3, spread_ticks=(5, 40)), ("EUR",)),
    (("DBR 2.6 08/34",), Decimals(100.4, 3, spread_ticks=(5, 40)), ("EUR",)),
    (("gilt", "Gilt"), Decimals(97, 2, spread_ticks=(2, 15)), ("GBP",)),
    (("gilt 10y",), Decimals(96.5, 2, spread_ticks=(2, 15)), ("GBP",)),
    (("UKT 4.25 07/34",), Decimals(98.8, 3, spread_ticks=(5, 40)), ("GBP",)),
    (("oat 10y", "OAT 10Y"), Decimals(98.1, 2, spread_ticks=(2, 15)), ("EUR",)),
    (("btp 10y", "BTP 10Y"), Decimals(101.3, 2, spread_ticks=(2, 15)), ("EUR",)),
    (("jgb 10y", "JGB 10Y"), Decimals(99.8, 3, spread_ticks=(5, 40)), ("JPY",)),
    (("schatz 2y", "SCHATZ 2Y", "schatz"), Decimals(99.9, 3, spread_ticks=(5, 30)), ("EUR",)),
    (("bobl 5y", "BOBL", "bobl"), Decimals(99.4, 3, spread_ticks=(5, 30)), ("EUR",)),
    (("OAT 2035", "oat 2035", "OAT 2030"), Decimals(97.6, 2, spread_ticks=(2, 15)), ("EUR",)),
    (("gilt 2034", "Gilt 2034", "gilt 2029"), Decimals(97.8, 2, spread_ticks=(2, 15)), ("GBP",)),
    (("btp 2033", "BTP 2033"), Decimals(100.8, 2, spread_ticks=(2, 15)), ("EUR",)),
)

# symbol as written, typical fixed rate, notional currencies
RATES = (("sofr", 3.8, ("USD",)), ("estr", 2.4, ("EUR",)), ("sonia", 4.0, ("GBP",)), ("tona", 0.8, ("JPY",)),
         ("saron", 0.9, ("CHF",)))

# root, level, places, tick
FUTURES = (("ES", 5400, 2, 25), ("NQ", 19000, 2, 25), ("RTY", 2100, 1, 1), ("YM", 40000, 0, 1),
           ("CL", 78, 2, 1), ("GC", 2350, 1, 1), ("RX", 131, 2, 1), ("FESX", 4950, 0, 1),
           ("FGBL", 131, 2, 1), ("FGBM", 118, 2, 1))
_FUTURE_MONTH_CODES = "FGHJKMNQUVXZ"
_SPOKEN_FUTURES = ("ES", "NQ", "CL", "GC")
_QUARTERLY_FUTURES = ("ES", "NQ", "RX", "FESX", "FGBL", "FGBM")  # listed for Mar/Jun/Sep/Dec only
_CONTRACT_COUNTS = ("1", "2", "5", "10", "10", "20", "25", "50", "100", "200", "15", "30")

# code, typical USD price, price model kwargs, counts
CRYPTO = (
    ("BTC", 67000, dict(places=0, commas=True, kilo=True, spread_ticks=(5, 80)),
     ("0.5", "1", "2", "3", "5", "10", "25", "0.25", "1.5", "100")),
    ("ETH", 3400, dict(places=2, commas=True, spread_ticks=(20, 300)),
     ("1", "5", "10", "20", "50", "100", "250", "500", "1,000")),
    ("SOL", 150, dict(places=2), ("100", "250", "500", "1,000", "2k", "5k")),
    ("XRP", 0.6, dict(places=4), ("50k", "100k", "250k", "500k", "1m")),
    ("DOGE", 0.15, dict(places=4), ("50k", "100k", "250k", "500k", "1m")),
    ("ADA", 0.45, dict(places=4), ("50k", "100k", "250k", "500k")),
    ("AVAX", 35, dict(places=2), ("100", "500", "1,000", "2,500", "5k")),
    ("LINK", 15, dict(places=2), ("100", "500", "1,000", "2,500", "5k")),
)
_CRYPTO_NAMES = {"BTC": ("bitcoin",), "ETH": ("ether",)}

# surfaces, price model, counts, count units
COMMODITIES = (
    (("gold", "gold", "Gold", "GOLD"), Decimals(2350, 1, commas=True, spread_ticks=(2, 10)),
     ("100", "500", "1,000", "1000", "5k", "10k", "2,000"), ("oz", "ounces", "lots")),
    (("silver",), Decimals(29.5, 2, spread_ticks=(1, 8)), ("5k", "10k", "50k", "25,000"), ("oz", "ounces")),
    (("xauusd", "XAUUSD"), Decimals(2350, 2, commas=True, spread_ticks=(10, 80)), ("100", "500", "1k", "5k", "10k"),
     ("oz",)),
    (("xagusd", "XAGUSD"), Decimals(29.5, 3, spread_ticks=(5, 40)), ("5k", "10k", "50k"), ("oz",)),
    (("platinum",), Decimals(980, 1, spread_ticks=(5, 30)), ("500", "1,000", "2k"), ("oz",)),
    (("palladium", "Palladium"), Decimals(1000, 1, spread_ticks=(5, 30)), ("100", "200", "500", "1,000"), ("oz",)),
    (("corn", "wheat", "soybeans"), Decimals(450, 2, spread_ticks=(1, 8)), ("10", "25", "50", "100"), ("lots",)),
    (("aluminium", "zinc", "nickel"), Decimals(2500, 0, commas=True, spread_ticks=(2, 20)), ("100", "250", "500"),
     ("t", "mt", "tonnes")),
    (("wti", "WTI", "wti"), Decimals(78, 2, spread_ticks=(1, 6)), ("10k", "50k", "100k", "25,000", "200"),
     ("bbl", "barrels", "lots")),
    (("brent", "Brent"), Decimals(82, 2, spread_ticks=(1, 6)), ("10k", "50k", "100k", "200"),
     ("bbl", "barrels", "lots")),
    (("copper",), Decimals(9800, 0, commas=True, spread_ticks=(5, 30)), ("100", "250", "500", "1,000"),
     ("t", "mt", "tonnes", "lots")),
    (("nat gas", "natgas"), Decimals(2.8, 3, spread_ticks=(2, 15)), ("10", "25", "50", "100"), ("lots",)),
)


_FX_SPELLINGS = {"{b}{q}": 34, "{B}{Q}": 24, "{b}/{q}": 14, "{B}/{Q}": 8, "{b} {q}": 9, "{B} {Q}": 3, "{b}-{q}": 3,
                 "{B} against {Q}": 2, "{b} vs {q}": 1}
_FX_REVERSED_SPELLINGS = {"{q}{b}": 4, "{q}/{b}": 1}


def _fx_surface(rng: random.Random, symbol: str, slang: tuple[str, ...], reversed_ok: bool) -> str:
    """Slang (cable), or the pair spelt eurusd / EURUSD / eur/usd / eur usd; rarely in non-market order.

    A reversed spelling ('usdeur') flips the side and inverts the price when the
    normalizer turns it into market order, so it is only written where the
    message states neither.
    """
    if slang and rng.random() < 0.35:
        return _pick(rng, slang)
    if "USD" in symbol and rng.random() < 0.06:
        single = symbol.replace("USD", "")
        return single.lower() if rng.random() < 0.8 else single
    base, quote = symbol[:3].lower(), symbol[3:].lower()
    form = _pick(rng, _FX_SPELLINGS | _FX_REVERSED_SPELLINGS if reversed_ok else _FX_SPELLINGS)
    return form.format(b=base, q=quote, B=base.upper(), Q=quote.upper())


def _fx_pair(rng: random.Random, reversed_ok: bool = True) -> Instrument:
    symbol, mid, places, _, slang = _pick(rng, {row: row[3] for row in FX_PAIRS})
    spread = (1, 25) if places == 4 else (1, 15)
    return Instrument("fx", _fx_surface(rng, symbol, slang, reversed_ok), symbol,
                      Decimals(mid, places, spread_ticks=spread, jitter=0.02), base=symbol[:3])


def _equity(rng: random.Random) -> Instrument:
    ticker, mid = _pick(rng, EQUITIES)
    surface = ticker if rng.random() < 0.6 else ticker.lower()
    usd = ("USD",) if " " not in ticker else ()
    return Instrument("equity", surface, ticker, Decimals(mid, _pick(rng, (2, 2, 1)), spread_ticks=(1, 9)),
                      counts=_SHARE_COUNTS, units=("shares", "shs"), notional_currencies=usd, currency_share=0.05)


def _bond(rng: random.Random) -> Instrument:
    surfaces, prices, currencies = _pick(rng, BONDS)
    surface = _pick(rng, surfaces)
    if isinstance(prices, ThirtySeconds) and rng.random() < 0.2:
        prices = Decimals(prices.handle + 0.5, 3, spread_ticks=(5, 40), jitter=0.01)
    return Instrument("bond", surface, _symbol_as_written(surface), prices,
                      notional_currencies=currencies, currency_share=0.3)


def _rates(rng: random.Random) -> Instrument:
    name, level, currencies = _pick(rng, RATES)
    surface = name if rng.random() < 0.7 else name.upper()
    return Instrument("rates", surface, name.upper(), Decimals(level, _pick(rng, (3, 3, 2, 4)), spread_ticks=(5, 40),
                                                                 jitter=0.08),
                      notional_currencies=currencies, currency_share=0.25)


def _future(rng: random.Random) -> Instrument:
    root, level, places, tick = _pick(rng, FUTURES)
    month = rng.randrange(12)
    if root in _QUARTERLY_FUTURES:
        month = _pick(rng, (2, 5, 8, 11))
    if root in _SPOKEN_FUTURES and rng.random() < 0.3:
        surface = f"{root.lower()} {_MONTH_ABBR[month]}"
    else:
        gap = " " if len(root) > 2 and rng.random() < 0.4 else ""  # "FGBL Z5"
        code = f"{root}{gap}{_FUTURE_MONTH_CODES[month]}{_pick(rng, (5, 6, 6))}"
        surface = code if rng.random() < 0.7 else code.lower()
    prices = Decimals(level, places, tick=tick, spread_ticks=(1, 3 if tick > 1 else 20), jitter=0.04)
    return Instrument("future", surface, _symbol_as_written(surface), prices,
                      counts=_CONTRACT_COUNTS, units=("lots", "contracts", "cts"))


def _crypto(rng: random.Random) -> Instrument:
    code, level, price_kwargs, counts = _pick(rng, CRYPTO)
    roll = rng.random()
    if roll < 0.55:
        surface, quote = (code.lower() if rng.random() < 0.75 else code), "USD"
        if code in _CRYPTO_NAMES and rng.random() < 0.15:
            surface = _pick(rng, _CRYPTO_NAMES[code])
    else:
        quote = _pick(rng, ("USDT", "USDT", "USD", "USDC", "EUR"))
        sep = _pick(rng, ("/", "/", "-", "", " vs "))
        surface = f"{code}{sep}{quote}"
        surface = surface.lower() if rng.random() < 0.7 else surface
    usd = ("USD",) if quote == "USD" else ()
    return Instrument("crypto", surface, code + quote, Decimals(level, **price_kwargs), counts=counts,
                      notional_currencies=usd, currency_share=0.1)


def _commodity(rng: random.Random) -> Instrument:
    surfaces, prices, counts, units = _pick(rng, COMMODITIES)
    surface = _pick(rng, surfaces)
    return Instrument("commodity", surface, _symbol_as_written(surface), prices, counts=counts, units=units)


_INSTRUMENT_MAKERS = {
    "fx_spot": _fx_pair, "fx_forward": _fx_pair, "fx_swap": _fx_pair, "fx_option": _fx_pair,
    "equity": _equity, "bond": _bond, "rates_swap": _rates, "future": _future, "crypto": _crypto,
    "commodity": _commodity,
}


# --- tenors ----------------------------------------------------------------------


def next_date_on_or_after(reference: date, month: int, day: int) -> date:
    """A day-month with no year means its first occurrence on or after the message date."""
    candidate = date(reference.year, month, day)
    return candidate if candidate >= reference else date(reference.year + 1, month, day)


def _spot_tenor(rng: random.Random) -> tuple[str, str]:
    return _pick(rng, (("spot", "SPOT"), ("spot", "SPOT"), ("spt", "SPOT"), ("tom", "TOM"), ("tn", "TN"),
                       ("t/n", "TN"), ("o/n", "ON"), ("overnight", "ON")))


def _period(rng: random.Random, unit: str | None = None) -> tuple[str, str]:
    """'1w', '2 weeks', '3mth', '6m', '1yr'... and its normalized form (1W, 2W, 3M, 6M, 1Y)."""
    unit = unit or _pick(rng, {"W": 3, "M": 6, "Y": 2})
    if unit == "W":
        n = _pick(rng, (1, 1, 2, 3))
        forms = (f"{n}w", f"{n}w", f"{n}wk", f"{n} week" + ("s" if n > 1 else ""))
    elif unit == "M":
        n = _pick(rng, (1, 1, 2, 3, 3, 3, 6, 6, 9, 12, 18))
        forms = (f"{n}m", f"{n}m", f"{n}m", f"{n}mth", f"{n} month" + ("s" if n > 1 else ""), f"{n}mo", f"{n}M")
    else:
        n = _pick(rng, (1, 1, 2, 3, 5))
        forms = (f"{n}y", f"{n}y", f"{n}yr", f"{n} year" + ("s" if n > 1 else ""), f"{n}Y")
    return _pick(rng, forms), f"{n}{unit}"


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _value_date(rng: random.Random, reference: date) -> tuple[str, str]:
    """An explicit value date as written ('15 dec', 'dec 15th', ISO) and resolved to ISO."""
    when = reference + timedelta(days=rng.randint(5, 330))
    if (when.month, when.day) == (2, 29):
        when -= timedelta(days=1)
    abbr, name = _MONTH_ABBR[when.month - 1], _MONTH_NAME[when.month - 1]
    if rng.random() < 0.2:
        return when.isoformat(), when.isoformat()
    text = _pick(rng, (f"{when.day} {abbr}", f"{when.day} {abbr}", f"{abbr} {_ordinal(when.day)}",
                       f"{_ordinal(when.day)} {abbr}", f"{when.day} {name}", f"{name} {when.day}",
                       f"{when.day}-{abbr}", f"{abbr.title()} {when.day}"))
    resolved = next_date_on_or_after(reference, when.month, when.day)
    assert resolved == when, (text, reference, when)
    return text, resolved.isoformat()


_DATE_PHRASES = {"en": ("{tenor}", "{tenor}", "value {tenor}", "val {tenor}", "for value {tenor}"),
                 "fr": ("{tenor}", "valeur {tenor}"), "es": ("{tenor}", "valor {tenor}"),
                 "de": ("{tenor}", "Valuta {tenor}")}
_PERIOD_PHRASES = {"en": ("{tenor}", "{tenor}", "{tenor}", "{tenor} fwd", "{tenor} outright", "fwd {tenor}"),
                   "fr": ("{tenor}", "{tenor}", "à terme {tenor}"), "es": ("{tenor}", "{tenor}", "plazo {tenor}"),
                   "de": ("{tenor}", "{tenor}", "Termin {tenor}")}
_SWAP_NEAR_FAR = (("spot", "W"), ("spot", "M"), ("sn", "W"), ("sn", "M"), ("tom", "W"), ("tn", "W"),
                  ("1w", "2w"), ("1m", "3m"), ("3m", "6m"), ("6m", "1y"), ("spot", "M"), ("spot", "Y"))
_SWAP_JOINS = ("{near}/{tenor}", "{near}/{tenor}", "{near}/{tenor}", "{near} v {tenor}", "{near} vs {tenor}")


def _swap_legs(rng: random.Random) -> tuple[str, str, str]:
    """Near leg as written, far leg as written, far leg normalized (the contract keeps the far leg)."""
    near, far = _pick(rng, _SWAP_NEAR_FAR)
    if len(far) == 1:
        far_text, far_norm = _period(rng, far)
        if far_norm == "1W" and near not in ("spot", "sn", "tom", "tn"):
            far_text, far_norm = "2w", "2W"
    else:
        far_text, far_norm = far, far.upper()
    if near == "spot":
        near = _pick(rng, ("spot", "spot", "spt"))
    return near, far_text, far_norm


# --- words around the values -------------------------------------------------------

SIDE_SLOTS = ("side", "verb", "post", "noun", "bo", "agent", "pay", "payv")
SIDE_WORDS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "side": {
        "en": {"buy": ("buy", "buy", "buy", "buy", "i buy", "we buy", "mine", "lift"),
               "sell": ("sell", "sell", "sell", "sell", "i sell", "we sell", "yours", "hit")},
        "fr": {"buy": ("achète", "achète", "j'achète", "achat", "on achète"),
               "sell": ("vends", "vends", "je vends", "vente", "on vend")},
        "es": {"buy": ("compra", "compra", "compro", "compramos"), "sell": ("vende", "vendo", "vendo", "vendemos")},
        "de": {"buy": ("kaufe", "kaufe", "kaufen", "ich kaufe", "wir kaufen"),
               "sell": ("verkaufe", "verkaufe", "verkaufen", "ich verkaufe")},
    },
    "verb": {
        "en": {"buy": ("buy",), "sell": ("sell",)},
        "fr": {"buy": ("acheter",), "sell": ("vendre",)},
        "es": {"buy": ("comprar",), "sell": ("vender",)},
        "de": {"buy": ("kaufen",), "sell": ("verkaufen",)},
    },
    "post": {"en": {"buy": ("mine",), "sell": ("yours",)}},
    "noun": {"en": {"buy": ("buy", "bid", "buy order"), "sell": ("sell", "offer", "sell order")}},
    "bo": {"en": {"buy": ("bid",), "sell": ("offer",)}},
    "agent": {"en": {"buy": ("buyer",), "sell": ("seller",)}},
    "pay": {"en": {"buy": ("pay", "pay", "pay fixed", "paying", "i pay", "we pay"),
                   "sell": ("receive", "rec", "receive fixed", "receiving", "we receive", "rec fixed")}},
    "payv": {"en": {"buy": ("pay",), "sell": ("receive",)}},
}

_PRICE_PHRASES = {"en": ("@ {price}", "@ {price}", "at {price}", "@{price}"),
                  "fr": ("à {price}", "@ {price}"), "es": ("a {price}", "@ {price}"),
                  "de": ("zu {price}", "@ {price}", "bei {price}")}
_ORDER_TYPE_PHRASES = {
    "en": {"market": ("mkt", "at market", "at best", "at mkt", "market"),
           "limit": ("lmt {price}", "limit {price}", "limit @ {price}", "@ {price} limit", "{price} lmt",
                     "at {price} or better"),
           "stop": ("stop {price}", "stp {price}", "stop loss {price}", "stop @ {price}", "on a stop at {price}")},
    "fr": {"market": ("au marché",), "limit": ("limite {price}", "à {price} limite"), "stop": ("stop {price}",)},
    "es": {"market": ("a mercado",), "limit": ("límite {price}", "limitada a {price}"), "stop": ("stop {price}",)},
    "de": {"market": ("bestens",), "limit": ("Limit {price}", "limitiert {price}"), "stop": ("Stop {price}",)},
}
_ORDER_TYPE_NOUNS = {"limit": ("limit", "lmt", "limit order"), "stop": ("stop", "stop loss", "stp")}

COUNTERPARTIES = ("Citi", "GS", "JPM", "HSBC", "Barclays", "BNP", "Deutsche", "UBS", "MS", "BofA", "Blackrock",
                  "Millennium", "Citadel", "Bridgewater", "Pimco", "Norges", "Brevan Howard", "Jane Street",
                  "Two Sigma", "Nomura", "SocGen", "Vanguard", "Fidelity", "XTX")
_COUNTERPARTY_PHRASES = {"en": ("for {counterparty}", "for {counterparty}", "w/ {counterparty}",
                                "with {counterparty}", "client: {counterparty}", "cpty {counterparty}",
                                "on behalf of {counterparty}", "for client {counterparty}"),
                         "fr": ("pour {counterparty}", "pour le compte de {counterparty}"),
                         "es": ("para {counterparty}", "cliente: {counterparty}"),
                         "de": ("für {counterparty}", "Kunde: {counterparty}")}
_COUNTERPARTY_LEADS = ("for {counterparty}:", "for {counterparty}:", "client: {counterparty} -",
                       "{counterparty} asks:", "on behalf of {counterparty},")

_TWO_WAY = ("2 way", "2 way", "2-way", "two way", "2way")
_OPTION_STRUCTURES = ("{strike} call", "{strike} calls", "{strike} put", "{strike} puts", "25d call", "25d put",
                      "25 delta call", "10d put", "atm straddle", "straddle", "25d rr", "25d risk reversal",
                      "{strike} strike call")
# vol structures and the quote level each trades around
_VOL_STRUCTURES = {"atm vol": 9.0, "atm": 9.0, "atm straddle": 9.0, "25d rr": 0.8, "10d rr": 1.4, "25d fly": 0.3}


# --- templates -----------------------------------------------------------------------

FX_CASH = ("fx_spot", "fx_forward")
CASH = FX_CASH + ("equity", "bond", "future", "crypto", "commodity")
LISTED = ("equity", "future", "crypto", "commodity", "bond")
MULTILINGUAL = FX_CASH + ("equity", "crypto")
RATES_ONLY, OPTIONS_ONLY, SWAPS_ONLY = ("rates_swap",), ("fx_option",), ("fx_swap",)

_SLOT = re.compile(r"\{(?P<lead> )?(?P<name>\w+)(?P<optional>\?)?\}")


@dataclass(frozen=True)
class Template:
    """One phrasing. `{name}` is a slot, `{ name?}` an optional one (with its leading space)."""

    intent: str
    pattern: str
    classes: tuple[str, ...]  # asset classes it can express; () = names no instrument
    lang: str = "en"
    side: str | None = None  # the side a pattern with no side slot states

    @property
    def slots(self) -> dict[str, bool]:
        """Slot name -> optional."""
        return {m["name"]: bool(m["optional"]) for m in _SLOT.finditer(self.pattern)}

    def accepts(self, asset_class: str) -> bool:
        """An fx_forward needs a tenor slot: without a tenor the same words would be fx_spot."""
        return asset_class in self.classes and (asset_class != "fx_forward" or "when" in self.slots)


def _group(intent: str, classes: tuple[str, ...], *patterns: str, lang: str = "en",
           side: str | None = None) -> list[Template]:
    return [Template(intent, p, classes, lang, side) for p in patterns]


TEMPLATES: tuple[Template, ...] = tuple(
    # --- orders ---
    _group("order", CASH,
           "{side} {amount} {symbol}{ when?}{ at?}{ cp?}",
           "{side} {symbol} {amount}{ when?}{ at?}{ cp?}",
           "{side} {amount} {symbol}{ when?} {ot}{ cp?}",
           "{symbol}{ when?} {side} {amount}{ at?}",
           "{amount} {symbol}{ when?} {post}{ at?}",
           "pls {side} {amount} {symbol}{ when?}{ at?}{ cp?}",
           "can you {verb} {amount} {symbol}{ when?} {ot} pls",
           "{cpf} {side} {amount} {symbol}{ when?}{ at?}",
           "need to {verb} {amount} {symbol}{ when?}{ ot?}{ cp?}",
           "{side} {symbol} {amount} {ot}",
           "working order: {verb} {amount} {symbol}{ when?} {ot}",
           "ok {side} {amount} {symbol}{ when?}{ at?}",
           "{side} {amount} {symbol}{ when?}{ at?} pls confirm",
           "{symbol}: {side} {amount}{ when?} {ot}",
           "execute: {verb} {amount} {symbol}{ when?} {ot}{ cp?}",
           "{verb}: {amount} {symbol}{ when?}{ at?}",
           "pls work an order to {verb} {amount} {symbol}{ when?} {ot}")
    + _group("order", CASH,
             "paid {price} for {amount} {symbol}{ when?}", "get me long {amount} {symbol}{ when?}{ at?}",
             "lift {symbol} in {amount}{ when?}{ at?}", "lift ur offer {amount} {symbol}{ when?}", side="buy")
    + _group("order", CASH,
             "given {price} on {amount} {symbol}{ when?}", "get me short {amount} {symbol}{ when?}{ at?}",
             "hit {symbol} in {amount}{ when?}{ at?}", "hit ur bid {amount} {symbol}{ when?}",
             "hit your bid in {amount} {symbol}{ when?}", side="sell")
    + _group("order", CASH, "{symbol}{ when?} {amount} {post}{ at?}")
    + _group("order", FX_CASH,
             "{post} {amount} {symbol} {when}{ at?}",
             "{side} {amount} {symbol} {when}{ ot?}{ cp?}",
             "{side} {symbol} {when} {amount}{ at?}")
    + _group("order", OPTIONS_ONLY,
             "{side} {amount} {symbol} {opt} {tenor}{ cp?}",
             "{side} {amount} {symbol} {tenor} {opt} at {price}",
             "{opt} {tenor} {symbol} in {amount} {post} at {price}")
    + _group("order", LISTED, "{verb} {amount} of {symbol}{ ot?}")
    + _group("order", RATES_ONLY,
             "{pay} {amount} {tenor} {symbol}{ at?}{ cp?}",
             "{pay} {tenor} {symbol} {amount}{ at?}",
             "{pay} {tenor} {symbol} in {amount}{ ot?}",
             "{tenor} {symbol}: {pay} {amount}{ at?}")
    + _group("order", OPTIONS_ONLY,
             "{side} {amount} {symbol} {tenor} {opt}{ cp?}",
             "{side} {symbol} {tenor} {opt} in {amount}",
             "{side} {tenor} {symbol} {opt} {amount}",
             "{symbol} {tenor} {opt}: {side} {amount}")
    + _group("order", SWAPS_ONLY,
             "{side} {amount} {symbol} {legs}{ at?}",
             "{side} {symbol} {legs} swap in {amount}{ at?}",
             "{amount} {symbol} {legs} {post}{ at?}")
    + _group("order", ("fx_spot", "equity", "future", "crypto", "commodity"),
             "cxl/replace: my {amount} {symbol} {side} now {ot}", "cancel/replace: {side} {amount} {symbol} {ot}",
             "c/r my {symbol} {side}: {amount} {ot}", "amend my {amount} {symbol} {side} to {ot}",
             "replace my {symbol} order: {side} {amount} {ot}")
    + _group("order", SWAPS_ONLY, "roll my {amount} {symbol} from spot to {tenor}", "roll {amount} {symbol} spot to {tenor}",
             "pls roll my {symbol} position, {amount}, out to {tenor}", "roll the {amount} {symbol} to {tenor} pls")
    + _group("order", MULTILINGUAL, "{side} {amount} {symbol}{ when?}{ at?}{ cp?}", "{side} {symbol} {amount}{ ot?}",
             lang="fr")
    + _group("order", MULTILINGUAL, "{side} {amount} {symbol}{ when?}{ at?}{ cp?}", "{side} {symbol} {amount}{ ot?}",
             lang="es")
    + _group("order", MULTILINGUAL, "{side} {amount} {symbol}{ when?}{ at?}{ cp?}", "{symbol}: {side} {amount}{ ot?}",
             lang="de")
    # --- requests for quote ---
    + _group("rfq", CASH,
             "{tw} in {amount} {symbol}{ when?} pls",
             "px on {amount} {symbol}{ when?}?",
             "price in {amount} {symbol}{ when?}{ cp?}",
             "where can I {verb} {amount} {symbol}{ when?}?",
             "can I get a price in {amount} {symbol}{ when?}?",
             "need a px: {amount} {symbol}{ when?}{ cp?}",
             "rfq: {verb} {amount} {symbol}{ when?}{ cp?}",
             "looking to {verb} {amount} {symbol}{ when?}, where are you?",
             "how are you in {amount} {symbol}{ when?}?",
             "mkt in {amount} {symbol}{ when?}?",
             "make me a price in {symbol}{ when?}{ amount?}",
             "where's {symbol}{ when?}?",
             "quote {amount} {symbol}{ when?}?",
             "pls quote {symbol} {amount}{ when?} {cp}",
             "show me {symbol} in {amount}{ when?}",
             "level on {symbol}{ when?}?",
             "i'm a {agent} of {amount} {symbol}{ when?}, where?",
             "{cpf} looking for a price in {amount} {symbol}{ when?}",
             "interested to {verb} {amount} {symbol}{ when?}, pls quote",
             "bid/offer {symbol} {amount}{ when?}?",
             "{tw} pls {symbol}{ when?} in {amount}")
    + _group("rfq", FX_CASH, "{symbol} {amount}{ when?} pls", "{symbol} {when}", "{symbol} {when}?",
             "{symbol} {when} {tw}", "{symbol}{ when?} {tw} {amount}", "{symbol} {when} px",
             "{when} px {amount} {symbol}", "{symbol} {when} in {amount}?")
    + _group("rfq", CASH, "{symbol}{ when?} {amount} {tw}", "{symbol} {amount} {tw} pls", "px pls {amount} {symbol}",
             "{tw} {symbol} {amount}{ when?}?", "{symbol}{ when?} {tw}?")
    + _group("rfq", CASH, "offer in {amount} {symbol}{ when?}?", "ur offer in {amount} {symbol}{ when?}?",
             "wat's ur offer in {amount} {symbol}{ when?}", "offer for {amount} {symbol}{ when?}?",
             "who's offering {amount} {symbol}{ when?}?", side="buy")
    + _group("rfq", CASH, "bid for {amount} {symbol}{ when?}?", "ur bid in {amount} {symbol}{ when?}?",
             "wat's ur bid for {amount} {symbol}{ when?}", "bid in {amount} {symbol}{ when?}?",
             "who's bid for {amount} {symbol}{ when?}?", "can you show a bid for {amount} {symbol}{ when?}",
             side="sell")
    + _group("rfq", OPTIONS_ONLY, "{symbol} {tenor} vol {tw}", "{symbol} {tenor} {opt} px?",
             "px on {symbol} {tenor} {opt} in {amount}", "{symbol} {tenor} {strike} strike px?",
             "{symbol} {tenor} {strike} strike {tw}", "{tenor} {symbol} vol px?", "{symbol} {tenor} vol?",
             "px {symbol} {tenor} {strike} strike in {amount}")
    + _group("rfq", CASH, "2w px {amount} {symbol}", "2w {symbol} {amount}?", "2w in {amount} {symbol}{ when?} pls")
    + _group("rfq", SWAPS_ONLY, "{legs} in {amount} {symbol}", "{legs} {symbol} {amount} {tw}")
    + _group("rfq", CASH, "what's your offer in {amount} {symbol}{ when?}?", "any offers in {amount} {symbol}{ when?}?",
             side="buy")
    + _group("rfq", CASH, "your bid in {amount} {symbol}{ when?}?", "any bids for {amount} {symbol}{ when?}?",
             side="sell")
    + _group("rfq", RATES_ONLY, "where's {tenor} {symbol}?", "px to {payv} {amount} {tenor} {symbol}",
             "{tw} {tenor} {symbol} in {amount}", "{tenor} {symbol} {amount} pls")
    + _group("rfq", OPTIONS_ONLY, "px on {amount} {symbol} {tenor} {opt}?", "vol on {symbol} {tenor} {optq}?",
             "{tw} {symbol} {tenor} {optq} in {amount}", "where's {tenor} {symbol} {optq}?")
    + _group("rfq", SWAPS_ONLY, "{tw} in {amount} {symbol} {legs}", "pts on {amount} {symbol} {legs}?",
             "px {symbol} {legs} swap in {amount}", "where are {legs} pts in {symbol}?")
    + _group("rfq", MULTILINGUAL, "prix sur {amount} {symbol}{ when?} ?", "cotation {symbol} {amount} svp",
             "où peut-on {verb} {amount} {symbol}{ when?} ?", lang="fr")
    + _group("rfq", MULTILINGUAL, "precio en {amount} {symbol}{ when?}?", "me das precio de {amount} {symbol}?",
             "dónde puedo {verb} {amount} {symbol}{ when?}?", lang="es")
    + _group("rfq", MULTILINGUAL, "Preis für {amount} {symbol}{ when?}?", "Quote in {amount} {symbol} bitte",
             "wo kann ich {amount} {symbol}{ when?} {verb}?", lang="de")
    # --- quotes ---
    + _group("quote", CASH,
             "{symbol}{ when?} {bid}/{ask}",
             "{symbol} {bid}/{ask} in {amount}",
             "{bid}/{ask} in {amount} {symbol}{ when?}",
             "for {amount} {symbol}{ when?} I'm {bid}/{ask}",
             "we're {bid}/{ask} on {amount} {symbol}{ when?}",
             "{symbol}{ when?} {bid}/{ask} {cp}",
             "my px: {symbol}{ when?} {bid}/{ask}",
             "{bid}/{ask} {symbol}",
             "can show {symbol}{ when?} {bid}/{ask} in {amount}",
             "{symbol} {amount}{ when?}: {bid}/{ask}",
             "{symbol} {bid} / {ask}",
             "{symbol} {bid}/{ask} good for {amount}",
             "{cpf} {symbol}{ when?} {bid}/{ask}",
             "{symbol}{ when?} {bid}-{ask}", "my px {symbol} {bid}-{ask}", "{bid}-{ask} in {amount} {symbol}")
    + _group("quote", CASH, "offer {amount} {symbol}{ when?} at {price}{ cp?}",
             "offer {amount} {symbol}{ when?} @ {price}", "can offer {amount} {symbol}{ when?} at {price}",
             "I can offer {amount} {symbol}{ when?} at {price}",
             "we can offer {amount} {symbol}{ when?} @ {price}", "I'm {price} offered in {amount} {symbol}{ when?}",
             side="sell")
    + _group("quote", CASH, "bid {amount} {symbol}{ when?} at {price}{ cp?}",
             "bid {amount} {symbol}{ when?} @ {price}", "can bid {amount} {symbol}{ when?} at {price}",
             "I can bid {price} for {amount} {symbol}{ when?}",
             "we're {price} bid for {amount} {symbol}{ when?}", "can pay {price} for {amount} {symbol}{ when?}",
             side="buy")
    + _group("quote", RATES_ONLY, "{tenor} {symbol} {bid}/{ask}", "{symbol} {tenor} {bid}/{ask} in {amount}",
             "we can {payv} {tenor} {symbol} at {price}")
    + _group("quote", OPTIONS_ONLY, "{symbol} {tenor} {optq} {bid}/{ask}",
             "{tenor} {symbol} {optq} {bid}/{ask} in {amount}")
    + _group("quote", SWAPS_ONLY, "{symbol} {legs} {bid}/{ask}", "{legs} {symbol} pts {bid}/{ask} in {amount}")
    + _group("quote", MULTILINGUAL, "{symbol} {bid}/{ask} pour {amount}", lang="fr")
    + _group("quote", MULTILINGUAL, "je peux vous offrir {amount} {symbol} à {price}", lang="fr", side="sell")
    + _group("quote", MULTILINGUAL, "{symbol} {bid}/{ask} en {amount}", lang="es")
    + _group("quote", MULTILINGUAL, "te puedo ofrecer {amount} {symbol} a {price}", lang="es", side="sell")
    + _group("quote", MULTILINGUAL, "{symbol} {bid}/{ask} für {amount}", lang="de")
    + _group("quote", MULTILINGUAL, "ich biete {amount} {symbol} zu {price}", lang="de", side="sell")
    # --- cancels ---
    + _group("cancel", CASH,
             "cxl my {symbol}{ when?} order",
             "cancel the {amount} {symbol}{ when?} {noun}",
             "pls cancel my {amount} {symbol} {ot}",
             "kill my {symbol} {noun}{ at?}",
             "pull my {bo} in {symbol}{ when?}",
             "cancel {verb} {amount} {symbol}{ when?}{ at?}",
             "cxl {amount} {symbol}{ when?} {noun}{ at?}{ cp?}",
             "scrap the {symbol} {otn} pls",
             "cancel all my {symbol}{ when?} orders",
             "{cpf} cancel {verb} {amount} {symbol}{ when?}",
             "take down my {symbol} {bo}{ at?}",
             "nvm, cancel my {amount} {symbol}{ when?}",
             "please cancel order: {verb} {amount} {symbol}{ when?} {ot}")
    + _group("cancel", (),
             "cancel that", "cxl my last order pls", "pls cancel everything working", "scratch that, cancel")
    + _group("cancel", RATES_ONLY, "cancel my {pay} {amount} {tenor} {symbol}", "cxl the {tenor} {symbol} order")
    + _group("cancel", OPTIONS_ONLY, "cxl my {symbol} {tenor} {opt} order")
    + _group("cancel", SWAPS_ONLY, "cancel the {symbol} {legs} swap")
    + _group("cancel", MULTILINGUAL, "annule mon ordre {symbol}{ when?}", lang="fr")
    + _group("cancel", MULTILINGUAL, "annulez l'achat de {amount} {symbol}", lang="fr", side="buy")
    + _group("cancel", MULTILINGUAL, "annulez la vente de {amount} {symbol}", lang="fr", side="sell")
    + _group("cancel", MULTILINGUAL, "cancela mi orden de {symbol}{ when?}", lang="es")
    + _group("cancel", MULTILINGUAL, "anula la compra de {amount} {symbol}", lang="es", side="buy")
    + _group("cancel", MULTILINGUAL, "storniere meine {symbol} Order", "Order {amount} {symbol}{ when?} bitte löschen",
             lang="de")
    # --- no trade: greetings, market colour, ops; many name pairs, levels and sizes ---
    + _group("none", (),
             "morning team, coffee?", "lunch?", "thx for the help", "happy friday!", "brb 5 mins",
             "system is slow, anyone else?",
             "what time is NFP today", "is the swap desk in today?", "reminder: fixing at 4pm london",
             "fed speakers later, careful", "market quiet, not much going on", "headline: ECB holds rates",
             "{ment} looking heavy after the data", "{ment} broke {lvl} overnight, stops above",
             "anyone know why settlement on the {ment} trade failed?", "ssi for {who} pls",
             "ops: confirm the {num}m {ment} from yesterday settled", "{ment} ripping again lol",
             "{ment} at {lvl}, wild", "who covers {who}?", "10y yields up {num}bp",
             "can you resend the confo for the {ment} trade", "{ment} vol bid into the meeting",
             "real money buying {ment} on dips", "lots of selling in {ment} this morning",
             "I'm long {ment} from {lvl}, feeling good", "{who} was a big buyer of {ment} yesterday",
             "did we book the {ment} ticket with {who}?", "{ment} {lvl} is the level to watch",
             "can someone check the {ment} fixing rate", "traded {num} {ment} earlier, pls check the blotter",
             "{ment} option expiries at {lvl} today", "good call on {ment} earlier",
             "what's the holiday calendar for {ment} settlement?", "pls amend the {ment} trade, wrong account",
             "{ment} offered all morning, no bids", "stops in {ment} below {lvl}", "{ment} paid at {lvl} in the market",
             "sorry, wrong chat", "{who} called about the {ment} confirm")
    + _group("none", (), "bonjour l'équipe", "le {ment} est lourd ce matin", "merci pour l'aide", lang="fr")
    + _group("none", (), "quelqu'un sait à quelle heure fixe le {ment} ?", "le {ment} a cassé {lvl}", lang="fr")
    + _group("none", (), "buenos días", "el {ment} sube mucho hoy", "¿alguien sabe a qué hora fija el {ment} hoy?",
             "¿cómo cerró el {ment} ayer?", lang="es")
    + _group("none", (), "Guten Morgen zusammen", "{ment} fällt nach den Daten", "weiß jemand, wann {ment} heute fixt?",
             lang="de")
)

_KNOWN_SLOTS = set(SPAN_FIELDS) | set(SIDE_SLOTS) | {
    "amount", "when", "at", "ot", "otn", "cp", "cpf", "legs", "opt", "optq", "strike", "tw", "ment", "lvl", "num",
    "who"}
for _template in TEMPLATES:
    assert set(_template.slots) <= _KNOWN_SLOTS, _template.pattern


def templates_for(intent: str, asset_class: str | None) -> list[Template]:
    """Templates that can phrase this intent for this asset class (None: templates naming no instrument)."""
    if asset_class is None:
        return [t for t in TEMPLATES if t.intent == intent and not t.classes]
    return [t for t in TEMPLATES if t.intent == intent and t.accepts(asset_class)]


# --- filling a template ------------------------------------------------------------------


@dataclass(frozen=True)
class _Span:
    field: str
    text: str


_OPTIONAL_SHARE = {"amount": 0.7, "when": 0.25, "at": 0.35, "ot": 0.4, "cp": 0.15}


def _timestamp(rng: random.Random) -> datetime:
    day = date(2024, 1, 1) + timedelta(days=rng.randrange(3 * 365))
    seconds = rng.randrange(6 * 3600, 19 * 3600)
    return datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(seconds=seconds)


def _fill(rng: random.Random, template: Template, asset_class: str | None, instrument: Instrument | None,
          today: date) -> tuple[dict[str, object], dict[str, object]]:
    """Slot values (literal phrases or spans) and the contract values they express."""
    slots, lang = template.slots, template.lang
    expected: dict[str, object] = {name: None for name in CONTRACT_FIELDS}
    expected["intent"] = template.intent
    fills: dict[str, object] = {}

    def wanted(name: str) -> bool:
        return name in slots and (not slots[name] or rng.random() < _OPTIONAL_SHARE.get(name, 0.5))

    if template.intent == "none":
        mention = _INSTRUMENT_MAKERS[_pick(rng, ASSET_CLASS_WEIGHTS)](rng)
        fills.update(ment=mention.surface, lvl=mention.prices.price(rng)[0], who=_pick(rng, COUNTERPARTIES),
                     num=str(_pick(rng, (2, 3, 5, 10, 15, 20, 25, 50, 100))))
        return fills, expected

    side_slot = next((s for s in SIDE_SLOTS if s in slots), None)
    if side_slot:
        side = _pick(rng, ("buy", "sell"))
        fills[side_slot] = _pick(rng, SIDE_WORDS[side_slot][lang][side])
        expected["side"] = side
    else:
        expected["side"] = template.side or ("two_way" if template.intent in ("rfq", "quote") else None)
    if instrument is None:
        expected["side"] = None
        return fills, expected

    expected["asset_class"] = asset_class
    expected["symbol"] = instrument.symbol
    fills["symbol"] = _Span("symbol", instrument.surface)
    if instrument.family == "fx":
        expected["currency"] = instrument.base

    if wanted("amount"):
        amount = instrument.amount(rng, lang)
        fills["amount"] = amount.pattern
        fills["quantity"] = _Span("quantity", amount.quantity)
        expected["quantity"] = amount.value
        if amount.currency:
            fills["currency"] = _Span("currency", amount.currency)
            if instrument.family != "fx":
                expected["currency"] = amount.currency_iso

    if "when" in slots and asset_class in FX_CASH:
        phrase = None
        if asset_class == "fx_forward":
            if rng.random() < 0.3:
                text, expected["tenor"] = _value_date(rng, today)
                phrase = _pick(rng, _DATE_PHRASES[lang])
            else:
                text, expected["tenor"] = _period(rng)
                phrase = _pick(rng, _PERIOD_PHRASES[lang])
        elif wanted("when"):
            text, expected["tenor"] = _spot_tenor(rng)
            phrase = "{tenor}"
        if phrase:
            fills["when"] = phrase
            fills["tenor"] = _Span("tenor", text)

    if "legs" in slots:
        near, far_text, expected["tenor"] = _swap_legs(rng)
        fills.update(legs=_pick(rng, _SWAP_JOINS), near=near, tenor=_Span("tenor", far_text))
    elif "tenor" in slots:
        if asset_class == "rates_swap":
            years = _pick(rng, (2, 3, 5, 5, 7, 10, 10, 15, 20, 30))
            text = _pick(rng, (f"{years}y", f"{years}y", f"{years}yr", f"{years} year", f"{years}Y"))
            expected["tenor"] = f"{years}Y"
        elif rng.random() < 0.1:
            text, expected["tenor"] = _pick(rng, (("o/n", "ON"), ("o/n", "ON"), ("overnight", "ON")))
        else:
            text, expected["tenor"] = _period(rng, _pick(rng, ("W", "M", "M", "M", "Y")))
        fills["tenor"] = _Span("tenor", text)

    prices = instrument.prices
    if asset_class == "fx_swap":
        prices = Decimals(rng.uniform(2, 80), _pick(rng, (1, 2)), spread_ticks=(3, 30), jitter=0.0)
    if "opt" in slots:
        fills["opt"] = _pick(rng, _OPTION_STRUCTURES)
    if "opt" in slots or "strike" in slots:
        fills["strike"] = instrument.prices.price(rng)[0]
    if "optq" in slots:
        structure = _pick(rng, tuple(_VOL_STRUCTURES))
        fills["optq"] = structure
        prices = Decimals(_VOL_STRUCTURES[structure], 2, spread_ticks=(10, 50), jitter=0.4)

    def set_price() -> None:
        text, expected["price"] = prices.price(rng)
        fills["price"] = _Span("price", text)

    if "price" in slots:
        set_price()
    if wanted("at"):
        fills["at"] = _pick(rng, _PRICE_PHRASES[lang])
        set_price()
    if wanted("ot"):
        order_type = _pick(rng, {"limit": 5, "market": 3, "stop": 2})
        fills["ot"] = _pick(rng, _ORDER_TYPE_PHRASES[lang][order_type])
        expected["order_type"] = order_type
        if "{price}" in fills["ot"]:
            set_price()
    if "otn" in slots:
        order_type = _pick(rng, ("limit", "stop"))
        fills["otn"] = _pick(rng, _ORDER_TYPE_NOUNS[order_type])
        expected["order_type"] = order_type
    if "bid" in slots:
        bid_text, expected["bid"], ask_text, expected["ask"] = prices.quote(rng)
        fills["bid"], fills["ask"] = _Span("bid", bid_text), _Span("ask", ask_text)

    if wanted("cp") or "cpf" in slots:
        fills["counterparty"] = _Span("counterparty", _pick(rng, COUNTERPARTIES))
        fills["cp" if "cp" in slots else "cpf"] = (_pick(rng, _COUNTERPARTY_PHRASES[lang]) if "cp" in slots
                                                  else _pick(rng, _COUNTERPARTY_LEADS))
    if "tw" in slots:
        fills["tw"] = _pick(rng, _TWO_WAY)
    return fills, expected


def _expand(pattern: str, fills: dict[str, object], out: list[tuple[str, str | None]]) -> None:
    """Pattern -> (text, span field or None) pieces; fills that are phrases expand recursively."""
    position = 0
    for match in _SLOT.finditer(pattern):
        if match.start() > position:
            out.append((pattern[position:match.start()], None))
        position = match.end()
        value = fills.get(match["name"])
        if value is None:
            if not match["optional"]:
                raise KeyError(f"slot {match['name']!r} of {pattern!r} has no value")
            continue
        if match["lead"]:
            out.append((" ", None))
        if isinstance(value, _Span):
            out.append((value.text, value.field))
        else:
            _expand(str(value), fills, out)
    if position < len(pattern):
        out.append((pattern[position:], None))


# --- roughening: typos, noise, casing ------------------------------------------------------

# Words whose misspelling would change the label (asset class, order type, side cue) stay intact.
_PROTECTED = frozenset(
    "call calls put puts straddle swap spot stop loss limit market best fixed delta reversal vol pts mine yours "
    "offer offers offered bid bids long short receive receiving paying buyer seller lift "
    "lots shares contracts ounces barrels tonnes".split())
_WORD = re.compile(r"[^\W\d_]{4,}")
_PREFIXES = {"en": ("hi ", "hey ", "morning, ", "gm ", "yo ", "hello ", "ok "), "fr": ("salut ", "bonjour "),
             "es": ("hola ", "buenas, "), "de": ("hallo ", "moin ")}
_SUFFIXES = {"en": {" pls": 6, " thx": 5, " ty": 3, " thanks": 3, " asap": 2, "!!": 4, "?": 4, " 🙏": 1, " 👍": 1,
                    " 🚀": 1, " :)": 1},
             "fr": {" svp": 3, " merci": 3, "!!": 1}, "es": {" gracias": 3, " porfa": 2, "!!": 1},
             "de": {" bitte": 3, " danke": 3, "!!": 1}}
_CASINGS = {"as_is": 62, "lower": 20, "upper": 10, "title": 8}


def _typo(rng: random.Random, pieces: list[tuple[str, str | None]]) -> None:
    """Drop or swap one interior letter of one non-span word, as fast typing does."""
    candidates = [(i, m) for i, (text, field) in enumerate(pieces) if field is None
                  for m in _WORD.finditer(text) if m[0].lower() not in _PROTECTED]
    if not candidates:
        return
    index, match = _pick(rng, candidates)
    word = match[0]
    k = rng.randrange(1, len(word) - 1)
    if rng.random() < 0.5:
        word = word[:k] + word[k + 1:]
    else:
        word = word[:k] + word[k + 1] + word[k] + word[k + 2:]
    text = pieces[index][0]
    pieces[index] = (text[:match.start()] + word + text[match.end():], None)


def _noise(rng: random.Random, pieces: list[tuple[str, str | None]], template: Template) -> None:
    if rng.random() < 0.10:
        pieces.insert(0, (_pick(rng, _PREFIXES[template.lang]), None))
    if rng.random() < 0.22:
        suffix = _pick(rng, _SUFFIXES[template.lang])
        ends_with_question = pieces[-1][0].rstrip().endswith("?")
        if suffix == "?" and (template.intent not in ("rfq", "none") or ends_with_question):
            return
        if suffix == "!!" and template.intent in ("rfq", "quote"):
            return
        pieces.append((suffix, None))


def cased(text: str, casing: str) -> str:
    """`text` in lower, UPPER or Title Case (else as is); unchanged where casing would change its length.

    Shared by the generator and fine-tuning's case variants, so both write casing the same way.
    """
    if casing == "lower":
        cased = text.lower()
    elif casing == "upper":
        cased = text.upper()
    elif casing == "title":
        cased = re.sub(r"(?<!\S)[^\W\d_]", lambda m: m[0].upper(), text)
    else:
        cased = text
    # Spans are cut by offset, so casing must not change the length ('ß'.upper() would).
    return cased if len(cased) == len(text) else text


def _assemble(pieces: list[tuple[str, str | None]], casing: str) -> tuple[str, dict[str, str | None]]:
    offsets: dict[str, tuple[int, int]] = {}
    position = 0
    for text, field in pieces:
        if field is not None:
            offsets[field] = (position, position + len(text))
        position += len(text)
    text = cased("".join(pieces_text for pieces_text, _ in pieces), casing)
    spans: dict[str, str | None] = {name: None for name in SPAN_FIELDS}
    for field, (start, end) in offsets.items():
        spans[field] = text[start:end]
    return text, spans


# --- records -----------------------------------------------------------------------------------


def _states_no_side_or_price(template: Template) -> bool:
    slots = template.slots
    return (template.side in (None, "two_way") and not any(s in slots for s in SIDE_SLOTS)
            and not any(s in slots for s in ("at", "ot", "price", "bid")))


def render(rng: random.Random, record_id: str, template: Template, asset_class: str | None) -> dict:
    """One labelled record from one template; `asset_class` must be one the template accepts."""
    if template.classes and not template.accepts(asset_class or ""):
        raise ValueError(f"{template.pattern!r} cannot express {asset_class}")
    timestamp = _timestamp(rng)
    instrument = None
    if asset_class in ("fx_spot", "fx_forward", "fx_swap", "fx_option"):
        instrument = _fx_pair(rng, reversed_ok=_states_no_side_or_price(template))
    elif template.classes:
        instrument = _INSTRUMENT_MAKERS[asset_class](rng)
    fills, expected = _fill(rng, template, asset_class if template.classes else None, instrument, timestamp.date())
    pieces: list[tuple[str, str | None]] = []
    _expand(template.pattern, fills, pieces)
    if rng.random() < 0.12:
        _typo(rng, pieces)
    _noise(rng, pieces, template)
    text, spans = _assemble(pieces, _pick(rng, _CASINGS))
    expected["counterparty"] = spans["counterparty"]  # "as written", so it follows the casing
    for name, span in spans.items():
        assert span is None or span in text, (name, span, text)
        assert span is None or span.strip() == span, (name, span, text)
    return {"id": record_id, "text": text, "expected": expected, "spans": spans, "timestamp": timestamp.isoformat()}


def _draw(rng: random.Random, record_id: str) -> dict:
    intent = _pick(rng, INTENT_WEIGHTS)
    if intent == "none" or (intent == "cancel" and rng.random() < CANCEL_WITHOUT_INSTRUMENT):
        # Fixed phrases ("morning all") would repeat dozens of times; phrasings that name a market vary.
        pool = {t: (3 if t.slots else 1) for t in templates_for(intent, None)}
        return render(rng, record_id, _pick(rng, pool), None)
    asset_class = _pick(rng, ASSET_CLASS_WEIGHTS)
    return render(rng, record_id, _pick(rng, templates_for(intent, asset_class)), asset_class)


def iter_synthesize(n: int, seed: int, exclude: Callable[[str], bool] | None = None) -> Iterator[dict]:
    """Records one at a time (for progress bars); the same sequence as `synthesize`.

    A record whose text `exclude` accepts (say, a test message) is drawn again,
    so a held-out message never lands in training data by chance.
    """
    rng = random.Random(seed)
    for i in range(n):
        record = _draw(rng, f"s{seed}-{i}")
        while exclude is not None and exclude(record["text"]):
            record = _draw(rng, f"s{seed}-{i}")
        yield record


def synthesize(n: int, seed: int) -> list[dict]:
    """`n` labelled messages: {id, text, expected (all contract fields), spans, timestamp}.

    Deterministic for a seed; `synthesize(k, seed)` is a prefix of `synthesize(n, seed)` for k < n.
    """
    return list(iter_synthesize(n, seed))


def sample_template(template: Template, n: int, seed: int) -> list[dict]:
    """`n` records from one template across the asset classes it accepts (for checking a phrasing)."""
    rng = random.Random(seed)
    classes = [c for c in ASSET_CLASS_WEIGHTS if template.accepts(c)] or [None]
    return [render(rng, f"t{seed}-{i}", template, _pick(rng, classes)) for i in range(n)]
