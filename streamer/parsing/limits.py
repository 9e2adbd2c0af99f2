"""Pre-trade limits: how big a trade, and how far from a reference price, may be published without a person.

A parse can be right and still dangerous: "buy 5 yards eurusd" read correctly
is a 5-billion order. Limits come from a TOML file (`limits_path`; the shipped
`streamer/limits.toml` by default, 'none' for no limits), per asset class and
per symbol:

    [asset_class.fx_spot]
    max_quantity = 1_000_000_000          # units of the dealt currency: 1 yard

    [symbol.AAPL]
    max_quantity = 100_000                # shares
    max_notional = 20_000_000             # quantity x price, where the message gives a price
    price_band = { reference = 190.0, max_deviation_pct = 15 }

A cash amount ("sell $10m of IWM": a unit-counted class with a currency written
next to the amount) is money, not a count: it is held to `max_notional`, not
`max_quantity`. Money (an FX, bond or swap quantity, a cash amount) in a
currency listed under `[usd_per_unit]` is converted to dollars before it is
compared, so "rec 20bn jpy 10y tona" meets the swap limit as $134m, not as
20 billion:

    [usd_per_unit]
    JPY = 0.0067                          # rough rates; a currency not listed is compared as written

A trade over any limit that applies (its asset class's and its symbol's) goes
to review with `limit_exceeded`, the limit and its line named in the detail.
A file that cannot be read is a `LimitsError` at start-up naming the file and line.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, PositiveFloat, StringConstraints, ValidationError

from schemas import AssetClass

DEFAULT_LIMITS = Path(__file__).resolve().parent.parent / "limits.toml"


class LimitsError(ValueError):
    """A limits file that cannot be used; the message is one line naming the file and line."""


class PriceBand(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reference: PositiveFloat
    max_deviation_pct: PositiveFloat


class Limit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_quantity: PositiveFloat | None = None
    max_notional: PositiveFloat | None = None
    price_band: PriceBand | None = None


class LimitsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset_class: dict[AssetClass, Limit] = {}
    symbol: dict[str, Limit] = {}
    usd_per_unit: dict[Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")], PositiveFloat] = {}


@dataclass(frozen=True)
class Limits:
    """The parsed file, with where each rule was written (for the reason's detail)."""

    path: Path
    rules: LimitsFile
    lines: dict[tuple[str, str], int]  # (section, name) -> line of its table or key

    def exceeded(self, fields: dict) -> list[tuple[str, str]]:
        """(field, detail) for each limit `fields` (a trade's contract fields) is over; [] when within all."""
        found = []
        scopes = [("asset_class", fields.get("asset_class")), ("symbol", (fields.get("symbol") or "").upper())]
        quantity, price = fields.get("quantity"), fields.get("price")
        money, as_usd = self._in_dollars(fields)
        for section, name in scopes:
            rule = getattr(self.rules, section).get(name) if name else None
            if rule is None:
                continue
            where = f"{section}.{name} ({self.path.name}:{self.lines.get((section, name), '?')})"
            if quantity is not None and is_cash_amount(fields):  # "$10m of IWM": the amount is the notional
                if rule.max_notional is not None and money > rule.max_notional:
                    found.append(("quantity", f"notional {quantity:,.15g} {fields['currency']}{as_usd} (a cash amount) "
                                              f"over max_notional {rule.max_notional:,.15g} of {where}"))
            elif rule.max_quantity is not None and quantity is not None and money > rule.max_quantity:
                written = f"{quantity:,.15g} {fields['currency']}" if as_usd else f"{quantity:,.15g}"
                found.append(("quantity", f"quantity {written}{as_usd} over max_quantity {rule.max_quantity:,.15g} "
                                          f"of {where}"))
            if rule.max_notional is not None and quantity is not None and price is not None and not is_cash_amount(fields):
                notional = quantity * price
                if notional > rule.max_notional:
                    found.append(("quantity", f"notional {notional:,.15g} (quantity x price) over max_notional "
                                              f"{rule.max_notional:,.15g} of {where}"))
            if rule.price_band is not None and price is not None:
                band = rule.price_band
                deviation = abs(price - band.reference) / band.reference * 100
                if deviation > band.max_deviation_pct:
                    found.append(("price", f"price {price:,.15g} is {deviation:.1f}% from the reference "
                                           f"{band.reference:,.15g}, over max_deviation_pct {band.max_deviation_pct:g} of {where}"))
        return found

    def _in_dollars(self, fields: dict) -> tuple[float | None, str]:
        """The quantity to compare, and ' (≈ N USD at r)' when it is money converted by `usd_per_unit` (else '')."""
        quantity, currency = fields.get("quantity"), fields.get("currency")
        rate = self.rules.usd_per_unit.get(currency or "")
        is_money = fields.get("asset_class") in MONEY_CLASSES or is_cash_amount(fields)
        if quantity is None or rate is None or not is_money:
            return quantity, ""
        return quantity * rate, f" (≈ {quantity * rate:,.0f} USD at {rate:g})"


# Classes whose quantity is an amount of money in the trade's `currency` (the dealt currency, face value, notional).
MONEY_CLASSES = frozenset({"fx_spot", "fx_forward", "fx_swap", "fx_option", "bond", "rates_swap"})

# Classes whose quantity counts units (shares, coins, contracts, ounces): with a currency written next to the amount
# ("sell 2m EUR of SAP", "$2m BTC") the quantity is money, not a count (docs/CONVENTIONS.md, `currency`).
UNIT_COUNTED_CLASSES = frozenset({"equity", "crypto", "commodity", "future"})


def is_cash_amount(fields: dict) -> bool:
    """Is the trade's quantity an amount of money rather than a count of units?"""
    return fields.get("asset_class") in UNIT_COUNTED_CLASSES and fields.get("currency") is not None


def load_limits(setting: str | Path | None) -> Limits | None:
    """The limits file `setting` names ('default' = the shipped one, 'none' = no limits); `LimitsError` if unusable."""
    choice = str(setting or "default").strip()
    if choice.lower() in ("none", "off"):
        return None
    path = DEFAULT_LIMITS if choice.lower() == "default" else Path(choice).expanduser()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise LimitsError(f"limits file {path}: {err.strerror or err}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise LimitsError(f"limits file {path}: {err}") from None  # tomllib names the line and column
    lines = _rule_lines(text)
    try:
        rules = LimitsFile.model_validate(data)
    except ValidationError as err:
        error = err.errors()[0]
        loc = [str(part) for part in error["loc"] if part != "[key]"]
        line = _line_of(text, loc)
        raise LimitsError(f"limits file {path}, line {line}: {'.'.join(loc)}: {error['msg']}") from None
    rules.symbol = {name.upper(): rule for name, rule in rules.symbol.items()}
    return Limits(path, rules, {(section, name.upper() if section == "symbol" else name): line
                                for (section, name), line in lines.items()})


_TABLE = re.compile(r"^\s*\[\s*(asset_class|symbol)\s*\.\s*\"?([^\]\"]+)\"?\s*\]")


def _rule_lines(text: str) -> dict[tuple[str, str], int]:
    found = {}
    for number, line in enumerate(text.splitlines(), 1):
        match = _TABLE.match(line)
        if match:
            found[(match[1], match[2].strip())] = number
    return found


def _line_of(text: str, loc: list[str]) -> int | str:
    """The first line that mentions the most specific part of an error's location ('?' if none does)."""
    for part in reversed(loc):
        for number, line in enumerate(text.splitlines(), 1):
            if re.search(rf"(?<![A-Za-z0-9_]){re.escape(part)}(?![A-Za-z0-9_])", line.split("#", 1)[0]):
                return number
    return "?"
