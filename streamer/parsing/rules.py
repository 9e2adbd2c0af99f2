"""A rule-based parser with no model: the eval's reference row, and the model's second opinion.

It does the model's half of the job with regular expressions and keyword lists
(find the intent, side and asset class, and copy spans for symbol, amount,
price, bid/ask, tenor, order type, counterparty) and hands the spans to the same
`normalize_extraction` the LLM parser uses, so any difference in the eval table
comes from span finding, not from normalization. Deterministic. Its confidence is
1.0 when the rules found everything the intent needs and every span normalized,
else 0.0 with the named reasons (a `LowConfidence`), so it flags like the parser.

`second_opinion` is what the LLM parser cross-checks against: the two make
different mistakes, so where they agree the model is far more often right
(numbers in the README), and where they disagree a person should look.
"""

from __future__ import annotations

import hashlib
import re
import time
from datetime import date, datetime, timezone
from pathlib import Path

from schemas import ChatMessage, LowConfidence, ParseResult, Provenance, Reason, SourcePosition, Trade
from streamer.parsing.confidence import missing_required
from streamer.parsing.instructions import instruction_reasons
from streamer.parsing.normalize import CRYPTO_NAMES, FX_SLANG, ISO_CURRENCIES, normalize_extraction

BASELINE_NAME = "rule-based-baseline"
BASELINE_VERSION = "rules-v3"

_CANCEL = re.compile(r"\b(cxl|cancel\w*|canx|pull|kill|annule\w*|storn\w*|anula\w*)\b|\btake (?:my|the)\b.*\bdown\b|"
                     r"\btake down\b")
# Settlement, ops and market colour that name an instrument but ask for no trade.
_CHATTER = re.compile(r"\b(settle[ds]?|settling|settlement|confo|ssi|who covers|heard|fyi|good call|withdrawal|"
                      r"fixing|fija|what time|holiday|anyone know|alguien sabe|short interest|borrow|ticket|blotter)\b")
_CANCELLED_BID, _CANCELLED_OFFER = re.compile(r"\bbids?\b"), re.compile(r"\boffers?\b")
# No side, no question word, but an amount after "in" or a "pls": asking for a price ('sn/1m in 100 usdjpy').
_IMPLICIT_RFQ = re.compile(r"\bin \$?\d|\bpls\b|\bplease\b")
_SWAP_WORDS = re.compile(r"\bswaps?\b|\b[bs]/[bs]\b")
_WORK_ORDER = re.compile(r"\bcan you (?:work|rest|leave|execute|fill|buy|sell|get me)\b|\bwork it\b")
_RFQ = re.compile(r"\b(2|two)[ -]?ways?\b|\bpx\b|\bprice\b|\bpricing\b|\bquote me\b|\bwhere\b|\bcan (i|you|we)\b|\?|"
                  r"\ban? (bid|offer)\b|\brfq\b|\bprecio\b|\bcotiza\w*|\bprix\b|\bkurs\b|\bshow me\b")
_BUY = re.compile(r"\b(buy\w*|bot|bought|mine|lift\w*|paid|pay|payer|long|ach[eè]te\w*|compr\w*|kauf\w*|b/s)\b")
_SELL = re.compile(r"\b(sell\w*|sold|yours|hit\w*|given|short|rec|receive\w*|receiver|vend\w*|verkauf\w*|s/b)\b")
_RFQ_BUY, _RFQ_SELL = re.compile(r"\ban? offer\b"), re.compile(r"\ban? bid\b")
_QUOTE_SELL = re.compile(r"\b(can|could|will|we|i) offer\b|^offer\w*\b|\boffered\b|\b(can|could) (receive|rec)\b")
_QUOTE_BUY = re.compile(r"\b(we'?re|i'?m|we are|i am)\b.*\bbid\b|^bid\b|\b(can|could) (bid|pay)\b")

_OPTION = re.compile(r"\b(calls?|puts?|straddles?|strangles?|rr|risk reversal|\d+d|atm|vol|strike)\b")
_RATES = re.compile(r"(?<!\w)(sofr|estr|€str|sonia|saron|tonar?|euribor|irs)\b")  # no word boundary before "€"
_BOND = re.compile(r"\b(ust|t-?notes?|treasur(?:y|ies)|bunds?|bobl|schatz|gilts?|oat|btp|bono|jgb)\b"
                   r"((?: \d{1,2}y| \d{4}| \d+(?:\.\d+)? \d\d/\d\d)?)")
_FUTURE_ROOTS = r"es|nq|ym|rty|cl|gc|si|ng|zn|zb|zf|zt|ty|tu|fv|us|rx|fgbl|fgbm|fgbs|fdax|fesx|fgbx|z|ho|rb"
_MONTH_WORDS = r"jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|dec"
_FUTURE = re.compile(r"\b((?:" + _FUTURE_ROOTS + r") (?:(?:" + _MONTH_WORDS + r")\b(?: ?\d{2})?|[fghjkmnquvxz]\d{1,2}\b))"
                     r"|\b([a-z]{1,4}[fghjkmnquvxz]\d{1,2})\b|\b(\w+) (?:fut|futs|futures)\b|\b(nq|fdax|fesx|fgbl|rty|ym)\b")
# 'T 4.5 05/34', 'T 4 1/8 11/32', 'AAPL 3.85 08/46': issuer, coupon, maturity month/year
_COUPON_BOND = re.compile(r"\b([a-z]{1,5} \d{1,2}(?:\.\d{1,3})?(?: \d/\d{1,2})? \d\d/\d\d)\b")
_COMMODITY = re.compile(r"\b(gold|silver|xau(?:usd)?|xag(?:usd)?|wti|brent|copper|nat ?gas|platinum|palladium|aluminium|"
                        r"aluminum|zinc|nickel|corn|wheat|soybeans|coffee|sugar|cocoa|gasoil|heating oil)\b")
# Tickers desks type in lower case; an unknown lower-case word after an amount is too often not one.
_KNOWN_TICKERS = frozenset(
    "aapl msft nvda tsla amzn meta googl goog jpm bac xom ko nflx amd intc orcl gme ibm uber spy qqq cost wmt dis pltr "
    "jnj pfe mrk unh v ma hd pep csco crm adbe avgo qcom txn mu ba cat ge f gm c wfc gs ms t vz sbux nke mcd abnb coin "
    "hood shop sq pypl snow arm smci lly baba nio".split())
_TICKER_WORD = re.compile(r"(?<![\w.$])(?:\d[\d,.]*[km]?(?: (?:shares|shs))?(?: of)?|\$\d[\d,.]*[km]{1,2} of) ([a-z]{1,5})\b"
                          r"|\b(?:in|on) ([a-z]{1,5})\b")
# Lookahead: overlapping tries. Also a pair as two legs ("buy eur sell jpy") or around an amount ("eur 10m vs chf").
_FX_PAIR = re.compile(r"\b(?=(([a-z]{3}) ?(?:/|vs|against|buy|sell|\d[\d,.]* ?(?:k|m|mm|mio|bn)? (?:vs|against))? ?"
                      r"([a-z]{3}))\b)")
_LEG_SIDE = re.compile(r"\b(buy|sell) ([a-z]{3}) (?:buy|sell) ([a-z]{3})\b")  # "sell gbp buy usd": the first leg's side
_FX_SLANG = re.compile(r"\b(" + "|".join(map(re.escape, sorted(FX_SLANG, key=len, reverse=True))) + r")\b")
_CRYPTO = re.compile(r"\b((?:" + "|".join(n for n in CRYPTO_NAMES if n not in ("link", "dot")) + r")(?:/(?:usdt|usdc|usd|eur))?)\b")
_TICKER_AFTER_AMOUNT = re.compile(r"(?<![\w.])\d[\d,.]*[km]? ([A-Z]{2,5})\b")
_EQUITY = re.compile(r"\$([A-Za-z]{1,5})\b|(?:shares|shs|acciones|aktien|actions) (?:of |de )?([A-Za-z]{1,5}(?: [A-Za-z]{2})?)\b")
_FORWARD_WORDS = re.compile(r"\b(fwd|forward|outright|ndf|value)\b")

_QUOTE = re.compile(r"(?<![\w/.,])([+-]?\d+(?:[.,]\d+|-\d\d\+?\d?))\s*/\s*(\+?\d+(?:[.,]\d+)?\+?)(?![\w/])")
_PRICE = re.compile(r"(?:@|\bat\b|\ba\b|\bà\b|\bbei\b|\blmt\b|\blimit\b|\bstop\b|\bstp\b|\bbetter\b)\s*"
                    r"(\d+(?:[.,]\d+)?(?:-\d\d\+?\d?)?k?)(?![\w/-]| ?-?ways?\b)")  # "a 2 way" is no price
_BARE_PRICE = re.compile(r"(?<![\w.,/])(\d+[.,]\d+|\d+-\d\d\+?\d?)(?![\w/-]| ?(?:strike|vol))")
_NAMED_TENOR = re.compile(r"\b(spot[ /]next|tom[ /]next|spot|tom|tn|t/n|o/n|overnight|sn|s/n)\b")
_LEGS = re.compile(r"\b((?:on|tn|sn|spot|tom|\d+[dwmy])/(?:tn|sn|\d+[dwmy]))\b")
_PERIOD = re.compile(r"\b(\d{1,2} ?(?:d|wk|wks|w|weeks?|mths?|mo|months?|y|yrs?|years?|m))\b")
_ISO_DATE = re.compile(r"\b(\d{4}-\d\d-\d\d)\b")  # a value date, not a 32nds price ("09-30")
# An option's strike is no price: with these words, only an "at"/"@" number is one.
_STRIKE_CONTEXT = re.compile(r"\b(calls?|puts?|straddles?|strangles?|strikes?)\b")
_STRIKE = re.compile(r"\d+[.,]\d{2,}")  # "1.28 cable calls": a decimal strike, not an amount
_DELTA = re.compile(r"\b\d{1,2} ?(?:d|delta)(?= (?:rr|fly|bf|risk|calls?|puts?)\b)")  # "25d rr" is a delta, not 25 days
_DATE = re.compile(r"\b(\d{1,2}(?:st|nd|rd|th)? (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*)\b")
# ".5 btc" and "1/2 btc" too; a fraction right after a number is a price handle ("101 1/2"), not an amount.
_AMOUNT = re.compile(r"(?<![\w.,])(([$€£]?(?:\d+(?:[.,']\d+)*|\.\d{1,2}|(?<!\d )[13]/[24])"
                     r"(?: ?(?:k|mm|mio|mn|m|bn|b|yards?|yds?|mrd|million\w*|millones|bucks))?"
                     r"(?: (?:shares|shs|lots|contracts|bbls?|oz|coins|acciones|aktien))?)(?: ?(?:usd|eur|gbp|jpy|chf))?)(?![\w/])")
# A number followed by these is a tenor, a delta, a vol or "2 way", not an amount.
# "1m 1.28 cable calls", "1m 150 strike", "1m 25d rr": the number before an option's strike or delta is its tenor.
_NOT_AMOUNT_AFTER = re.compile(r"^ ?(-?ways?|d\b|delta|strike|vol|y\b|bid|offer|ask|fwd|forward|ndf|swap|outright|atm|rr|risk|straddle|calls?|puts?"
                               r"|\d+(?:[.,]\d+)? (?:[a-z]+ )?(?:calls?|puts?|strike)\b|\d+ ?(?:d|delta) (?:rr|fly|bf|risk|calls?|puts?)\b)")
_ORDER_TYPES = [("market", re.compile(r"\b(mkt|market|at best|bestens|au march[ée]|a mercado)\b")),
                ("limit", re.compile(r"\b(lmt|limit|at or better|limite)\b")), ("stop", re.compile(r"\b(stop|stp)\b"))]
_COUNTERPARTY = re.compile(r"\b(?i:for|w/|with|from|con|avec|mit|vs|versus|against)\s+([A-Z][A-Za-z&]+)")


class RuleBasedParser:
    """Same interface as `Parser`: `parse(message, source) -> Trade | LowConfidence`."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()

    def parse(self, message: ChatMessage | str, source: SourcePosition | None = None) -> ParseResult:
        if isinstance(message, str):
            message = ChatMessage(text=message)
        started = time.perf_counter()
        raw = extract_spans(message.text)
        reference = (message.timestamp or datetime.now(timezone.utc)).date()
        result = self._decide(message, raw, reference, source)
        latency_ms = round((time.perf_counter() - started) * 1000, 3)
        result.provenance = Provenance(
            model=BASELINE_NAME, model_sha256=self.sha256, prompt_version=BASELINE_VERSION,
            latency_ms=latency_ms, prompt_tokens_evaluated=0, generated_tokens=0,
        )
        if isinstance(result, LowConfidence) and result.trade is not None:
            result.trade.provenance = result.provenance
        return result

    def _decide(self, message: ChatMessage, raw: dict, reference: date, source) -> ParseResult:
        normalized = normalize_extraction(raw, message.text, reference)
        reasons = [Reason(code=c, field=f, detail=d) for c, f, d in normalized.reasons]
        reasons += missing_required(normalized.fields["intent"], normalized.fields)
        reasons += instruction_reasons(message.text)
        failed = {r.field for r in reasons if r.field}
        scores = {name: 0.0 if name in failed else 1.0 for name in normalized.fields}
        confidence = 0.0 if reasons else 1.0
        trade = Trade(**normalized.fields, message_id=message.message_id, confidence=confidence,
                      field_confidence=scores, source=source)
        if reasons:
            return LowConfidence(message_id=message.message_id, message=message, trade=trade,
                                 confidence=confidence, reasons=reasons, source=source)
        return trade


def second_opinion(text: str, reference: date) -> dict[str, object]:
    """The contract fields the rules read in `text` (relative tenors resolve against `reference`)."""
    return normalize_extraction(extract_spans(text), text, reference).fields


def extract_spans(text: str) -> dict:
    """The rules: an extraction dict shaped like the model's (enums + verbatim spans)."""
    flat = re.sub(r"\s+", " ", text.strip())
    low = flat.lower() if len(flat.lower()) == len(flat) else flat  # same offsets in both
    raw: dict = {"intent": "none", "multiple_trades": False}
    used: list[tuple[int, int]] = []

    def free(match: re.Match, group: int = 1) -> bool:
        start, end = match.span(group)
        return all(end <= a or start >= b for a, b in used)

    def take(match: re.Match | None, group: int = 1) -> str | None:
        if match is None or match.group(group) is None:
            return None
        used.append(match.span(group))
        return match.group(group)

    asset_class, symbol = _instrument(low, flat, take)
    quote = _QUOTE.search(low)
    if quote:
        raw["bid"], raw["ask"] = take(quote, 1), take(quote, 2)
    raw["price"] = None if quote else take(_PRICE.search(low))
    used += [m.span() for m in _DELTA.finditer(low)]
    legs = _LEGS.search(low)
    raw["tenor"] = take(legs) or take(_ISO_DATE.search(low)) or take(_DATE.search(low)) or take(_NAMED_TENOR.search(low))
    for m in _PERIOD.finditer(low):  # "3m" could be 3 million: periods in m wait until the amount is found
        if raw["tenor"] is None and free(m) and not m.group(1).endswith("m"):
            raw["tenor"] = take(m)
    options = _STRIKE_CONTEXT.search(low) is not None
    for m in _AMOUNT.finditer(low):
        strike = options and _STRIKE.fullmatch(m.group(1))
        if free(m, 2) and not strike and not _NOT_AMOUNT_AFTER.match(low[m.end():]):
            raw["quantity"] = take(m, 1 if free(m, 1) else 2)
            break
    for m in _PERIOD.finditer(low):
        if raw["tenor"] is None and free(m):
            raw["tenor"] = take(m)
    if raw["price"] is None and not quote and not options:
        raw["price"] = next((take(m) for m in _BARE_PRICE.finditer(low) if free(m)), None)
    order_type = next((kind for kind, rule in _ORDER_TYPES if rule.search(low)), None)
    counterparty = _COUNTERPARTY.search(flat)
    if counterparty and counterparty.group(1).upper() not in ISO_CURRENCIES:
        raw["counterparty"] = counterparty.group(1)

    if asset_class is None and symbol is not None:  # an FX pair: the tenor words decide which product
        asset_class = "fx_spot"
        if legs or _SWAP_WORDS.search(low):
            asset_class = "fx_swap"
        elif _OPTION.search(low):
            asset_class = "fx_option"
        elif _FORWARD_WORDS.search(low) or (raw["tenor"] and not _NAMED_TENOR.fullmatch(raw["tenor"])):
            asset_class = "fx_forward"
    raw["asset_class"], raw["symbol"] = asset_class, symbol
    raw["intent"], raw["side"] = _intent_and_side(low, bool(quote), raw["price"] is not None)
    # "mkt in 50 FGBL?" asks for a market: only an order (or its cancel) has an order type
    raw["order_type"] = order_type if raw["intent"] in ("order", "cancel") else None
    if symbol is None and raw["intent"] != "cancel":
        return {"intent": "none", "multiple_trades": False}
    return raw


def _instrument(low: str, flat: str, take) -> tuple[str | None, str | None]:
    """(asset class, symbol span), most specific rule first; FX pairs come back with class None."""
    if m := _RATES.search(low):
        return "rates_swap", take(m)
    if m := _FUTURE.search(low):
        return "future", take(m, next(g for g in (1, 2, 3, 4) if m.group(g)))
    if m := _COUPON_BOND.search(low):
        return "bond", take(m)
    if m := _BOND.search(low):
        return "bond", take(m, 0)
    if m := _COMMODITY.search(low):
        return "commodity", take(m)
    if m := _FX_SLANG.search(low):
        return None, take(m)
    for m in _FX_PAIR.finditer(low):
        if m.group(2).upper() in ISO_CURRENCIES and m.group(3).upper() in ISO_CURRENCIES and m.group(2) != m.group(3):
            take(m, 2), take(m, 3)  # the currencies only: an amount written between them is still the quantity
            return None, m.group(1)
    if m := _CRYPTO.search(low):
        return "crypto", take(m)
    if m := _EQUITY.search(flat):
        return "equity", take(m, 1 if m.group(1) else 2)
    m = _TICKER_AFTER_AMOUNT.search(flat)
    if m and m.group(1) not in ISO_CURRENCIES:
        return "equity", take(m)
    for m in _TICKER_WORD.finditer(low):
        group = 1 if m.group(1) else 2
        if m.group(group) in _KNOWN_TICKERS:
            return "equity", take(m, group)
    return None, None


def _intent_and_side(low: str, has_quote: bool, has_price: bool) -> tuple[str, str | None]:
    side = "buy" if _BUY.search(low) else "sell" if _SELL.search(low) else None
    legs = _LEG_SIDE.search(low)
    if legs and legs.group(2).upper() in ISO_CURRENCIES and legs.group(3).upper() in ISO_CURRENCIES:
        side = legs.group(1)
    if _CANCEL.search(low):
        if side is None:  # 'pull my aussie bid': the order withdrawn was a buy
            side = "buy" if _CANCELLED_BID.search(low) else "sell" if _CANCELLED_OFFER.search(low) else None
        return "cancel", side
    if _CHATTER.search(low) and not has_quote and not has_price:
        return "none", None
    if has_quote:
        return "quote", "two_way"
    if has_price and _QUOTE_SELL.search(low):
        return "quote", "sell"
    if has_price and _QUOTE_BUY.search(low):
        return "quote", "buy"
    if side and _WORK_ORDER.search(low):
        return "order", side
    if _RFQ.search(low):
        return "rfq", "buy" if _RFQ_BUY.search(low) else "sell" if _RFQ_SELL.search(low) else side
    if side is None and _IMPLICIT_RFQ.search(low):
        return "rfq", "two_way"
    return ("order", side) if side else ("none", None)
