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
`max_quantity`. A trade over any limit that applies (its asset class's and its symbol's) goes
to review with `limit_exceeded`, the limit and its line named in the detail.
A file that cannot be read is a `LimitsError` at start-up naming the file and line.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, PositiveFloat, ValidationError

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
        for section, name in scopes:
            rule = getattr(self.rules, section).get(name) if name else None
            if rule is None:
                continue
            where = f"{section}.{name} ({self.path.name}:{self.lines.get((section, name), '?')})"
            quantity, price = fields.get("quantity"), fields.get("price")
            if quantity is not None and is_cash_amount(fields):  # "$10m of IWM": the amount is the notional
                if rule.max_notional is not None and quantity > rule.max_notional:
                    found.append(("quantity", f"notional {quantity:,.10g} {fields['currency']} (a cash amount) over "
                                              f"max_notional {rule.max_notional:,.10g} of {where}"))
            elif rule.max_quantity is not None and quantity is not None and quantity > rule.max_quantity:
                found.append(("quantity", f"quantity {quantity:,.10g} over max_quantity {rule.max_quantity:,.10g} of {where}"))
            if rule.max_notional is not None and quantity is not None and price is not None and not is_cash_amount(fields):
                notional = quantity * price
                if notional > rule.max_notional:
                    found.append(("quantity", f"notional {notional:,.10g} (quantity x price) over max_notional "
                                              f"{rule.max_notional:,.10g} of {where}"))
            if rule.price_band is not None and price is not None:
                band = rule.price_band
                deviation = abs(price - band.reference) / band.reference * 100
                if deviation > band.max_deviation_pct:
                    found.append(("price", f"price {price:,.10g} is {deviation:.1f}% from the reference "
                                           f"{band.reference:,.10g}, over max_deviation_pct {band.max_deviation_pct:g} of {where}"))
        return found


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
