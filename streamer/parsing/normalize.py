"""Deterministic normalization: verbatim spans from the model -> contract values.

The model copies short spans out of the message ("10m", "cable", "1w", "99-16");
everything that has one right answer (slang tables, amount suffixes, 32nds,
value dates, market-convention pair order) is done here, table-tested, so the
model only has to *find* things, never compute them. Each function returns a
contract value or raises `NormalizationError` with a named reason code.
"""

from __future__ import annotations

import calendar
import difflib
import re
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, InvalidOperation

from schemas import CONTRACT_FIELDS


class NormalizationError(ValueError):
    """A span that cannot become a contract value; `code` is a `ReasonCode`."""

    def __init__(self, code: str, detail: str):
        super().__init__(detail)
        self.code = code
        self.detail = detail


# --- currencies and pairs ------------------------------------------------------

ISO_CURRENCIES = frozenset(
    "USD EUR GBP JPY CHF AUD NZD CAD NOK SEK DKK PLN CZK HUF TRY ZAR MXN BRL CLP COP PEN ARS "
    "CNH CNY HKD SGD KRW TWD INR IDR MYR PHP THB ILS RUB SAR AED KWD QAR ISK RON BGN HRK KZT EGP NGN KES".split()
)

# Market convention: the currency earlier in this list is the base. Others rank after USD.
_BASE_PRIORITY = ["EUR", "GBP", "AUD", "NZD", "USD", "CAD", "CHF", "NOK", "SEK", "DKK", "JPY"]

FX_SLANG = {
    "cable": "GBPUSD", "fiber": "EURUSD", "fibre": "EURUSD", "euro": "EURUSD", "sterling": "GBPUSD",
    "swissy": "USDCHF", "swissie": "USDCHF", "aussie": "AUDUSD", "kiwi": "NZDUSD", "loonie": "USDCAD",
    "loony": "USDCAD", "dollar yen": "USDJPY", "dollaryen": "USDJPY", "dollar-yen": "USDJPY", "yen": "USDJPY",
    "euro yen": "EURJPY", "euroyen": "EURJPY", "euro-yen": "EURJPY", "sterling yen": "GBPJPY",
    "geppy": "GBPJPY", "gopher": "GBPJPY", "chunnel": "EURGBP", "euro sterling": "EURGBP",
    "euro swissy": "EURCHF", "euro swiss": "EURCHF", "stocky": "USDSEK", "stockie": "USDSEK",
    "nokkie": "USDNOK", "nokky": "USDNOK", "aussie yen": "AUDJPY", "kiwi yen": "NZDJPY",
    "dollar cad": "USDCAD", "dollar swiss": "USDCHF", "dollar mex": "USDMXN", "mexican peso": "USDMXN",
    "dollar rand": "USDZAR", "dollar lira": "USDTRY", "dollar yuan": "USDCNH",
}

CURRENCY_WORDS = {
    "$": "USD", "us$": "USD", "usd": "USD", "dollar": "USD", "dollars": "USD", "buck": "USD",
    "€": "EUR", "eur": "EUR", "euro": "EUR", "euros": "EUR",
    "£": "GBP", "gbp": "GBP", "sterling": "GBP", "quid": "GBP", "pounds": "GBP",
    "¥": "JPY", "yen": "JPY", "chf": "CHF", "francs": "CHF", "swissy": "CHF",
}

CRYPTO_NAMES = {
    "bitcoin": "BTC", "bitcoins": "BTC", "btc": "BTC", "xbt": "BTC", "ether": "ETH", "ethers": "ETH", "ethereum": "ETH",
    "eth": "ETH",
    "solana": "SOL", "sol": "SOL", "xrp": "XRP", "ripple": "XRP", "ada": "ADA", "cardano": "ADA",
    "doge": "DOGE", "dogecoin": "DOGE", "ltc": "LTC", "litecoin": "LTC", "dot": "DOT", "avax": "AVAX",
    "link": "LINK", "matic": "MATIC", "bnb": "BNB", "usdt": "USDT", "tether": "USDT", "usdc": "USDC",
}
_CRYPTO_CODES = set(CRYPTO_NAMES.values())

FX_CLASSES = frozenset({"fx_spot", "fx_forward", "fx_swap", "fx_option"})


def _squash(span: str) -> str:
    return re.sub(r"\s+", " ", span.strip().lower())


def market_order(a: str, b: str) -> str:
    """Return the pair in market convention (EURUSD, not USDEUR)."""
    rank = {c: i for i, c in enumerate(_BASE_PRIORITY)}
    usd = rank["USD"]
    ra, rb = rank.get(a, usd + 0.5), rank.get(b, usd + 0.5)
    return a + b if ra <= rb else b + a


def _plain(text: str) -> str:
    """Accents dropped ('câble' -> 'cable'), as desks type on any keyboard."""
    return "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))


# Words around or between the two currencies: "eur vs chf", and a pair written as its two legs ("Buy EUR Sell JPY").
_PAIR_JOINERS = re.compile(r"\b(vs|v|versus|against|contre|gegen|contra|buy|sell)\b")
# An amount written between the two currencies ("eur 10m vs chf") belongs to the quantity, not the pair.
_AMOUNT_IN_PAIR = re.compile(r"^([a-z]{3}) \$?\d[\d,.]*\s*(?:[a-z]+ )?(?=(?:vs|v|versus|against) [a-z]{3}$)")


def _pair_letters(key: str) -> str:
    """'eur 10m vs chf' -> 'EURCHF', 'eur sell jpy' -> 'EURJPY': the letters of the currencies, in the written order."""
    key = _PAIR_JOINERS.sub("", _AMOUNT_IN_PAIR.sub(r"\1 ", key))
    return re.sub(r"[^a-z]", "", key).upper()


def normalize_fx_pair(span: str) -> str:
    """'cable' -> GBPUSD, 'eur/usd' -> EURUSD, 'usdeur' -> EURUSD, 'cabel' -> GBPUSD (one typo)."""
    key = _plain(_squash(span).strip(".,!?:;"))
    if key in FX_SLANG:
        return FX_SLANG[key]
    if len(key) >= 5 and not re.search(r"[^a-z ]", key):
        close = difflib.get_close_matches(key, [k for k in FX_SLANG if len(k) >= 5], n=1, cutoff=0.8)
        if close:
            return FX_SLANG[close[0]]
    letters = _pair_letters(key)
    if len(letters) == 6 and letters[:3] in ISO_CURRENCIES and letters[3:] in ISO_CURRENCIES and letters[:3] != letters[3:]:
        return market_order(letters[:3], letters[3:])
    if len(letters) == 3 and letters in ISO_CURRENCIES and letters != "USD":
        return market_order(letters, "USD")
    raise NormalizationError("unknown_symbol", f"not a currency pair: {span!r}")


_TRAILING_TENOR = re.compile(
    r"^(?P<pair>.+?)\s+(?P<tenor>\d{1,3}\s*(?:d|days?|w|wks?|weeks?|m|mths?|mo|months?|y|yrs?|years?)"
    r"|spot|spt|tom|tn|t/n|o/n|overnight)(?:\s+(?:outright|fwd|forward))?$"
)


def split_pair_tenor(span: str) -> tuple[str, str | None]:
    """'cable 1 year outright' -> ('cable', '1 year'): a tenor copied into an FX symbol span.

    Only splits when the front part is a currency pair, so 'UST 10Y' or
    'gold 3m' is left as it is.
    """
    m = _TRAILING_TENOR.match(_squash(span))
    if not m:
        return span, None
    try:
        normalize_fx_pair(m["pair"])
    except NormalizationError:
        return span, None
    return m["pair"], m["tenor"]


def written_reversed(span: str, pair: str) -> bool:
    """True when the message wrote the pair against market order ('jpyusd', 'buy jpy sell usd' for USDJPY)."""
    letters = _pair_letters(_plain(_squash(span)))
    return len(letters) == 6 and letters == pair[3:] + pair[:3] and letters != pair


OPPOSITE_SIDE = {"buy": "sell", "sell": "buy"}


# Closing a position: "get me out of my short" is a buy, "flatten my long" a sell, unwinding a payer (pays fixed,
# docs/CONVENTIONS.md: a buy) a sell. The model tends to read the position word as the side; the phrase decides it.
_EXIT = (r"(?:get(?:ting)? (?:me |us )?(?:out|flat)|go flat|take (?:me |us )?out|(?:i'?m|we'?re) out"
         r"|stop (?:me |us )?out|flatten\w*|square\w*(?: (?:me|us))?(?: up)?|clos(?:e|ing)(?: out)?|unwind\w*"
         r"|cover\w*|lighten\w*|trim\w*|reduce\w*"
         r"|cut|scale out|buy back|stop(?:[- ]?loss)? on|take (?:profits?|(?:it |them |that )?off))")
_POSITION = (r"(?<!\bhow )(?<!\bas )(?<!\bso )(?<!\btoo )(long|short|payer|receiver)s?"
             r"(?! (?:weekend|time|day|way|story))")
_IN_SENTENCE = r"(?:(?![;!?]|\.(?:\s|$)).)"  # not across a sentence's end; "161.80" is no end
_CLOSING = re.compile(rf"\b{_EXIT}\b{_IN_SENTENCE}{{0,60}}?\b{_POSITION}\b"
                      rf"|\b{_POSITION}\b{_IN_SENTENCE}{{0,40}}?\b{_EXIT}\b", re.IGNORECASE)
_CLOSED_BY = {"long": "sell", "payer": "sell", "short": "buy", "receiver": "buy"}


# Getting out of a holding that names no position word: what one holds is long ("take me out of my 2k IBM" sells).
_OUT_OF_HOLDING = re.compile(r"\b(?:(?:get(?:ting)?|take)(?: me| us)? out of|take-out|(?:i'?m|we'?re) out of my)\b",
                             re.IGNORECASE)
# Any other position word means the holding may not be long: the default is off.
_OTHER_POSITION = re.compile(rf"\b(?:{'|'.join(word for word in _CLOSED_BY if word != 'long')})s?\b", re.IGNORECASE)


# An order "at market" in the words of the desks (ANNOTATION.md): "at mkt", "@ market", "at best", "mkt order",
# "bestens", "au marché", "a mercado", "al meglio", "al mejor precio". A bare "mkt" is not enough ("to lmt 152 from
# mkt").
_AT_MARKET = re.compile(r"(?<!\w)(?:(?:at|@) ?(?:mkt|market|best)|(?:mkt|market) order|bestens|au march[ée]|a mercado"
                        r"|al meglio|al mejor(?: precio)?)\b", re.IGNORECASE)


_CHOICE = re.compile(r"\bchoice\b", re.IGNORECASE)  # a two-way price at one level: bid = ask (ANNOTATION.md)


def stated_market(text: str) -> bool:
    """True when an order's words make it a market order."""
    return _AT_MARKET.search(text) is not None


# "we'd rec 3y tona at 0.98", "I can pay 7y sofr 3.70", "can rec 3y estr 2.205": a level offered, not an order
# (ANNOTATION.md, one-sided quotes). Not "where they can pay" or "who can receive", which ask.
_OFFERED_SWAP_LEVEL = re.compile(
    r"(?:\b(?:i|we)(?:\s+can|'d|’d|\s+would|\s+could)|^\W*can)\s+(?:pay|rec|receiv)\w*\b", re.IGNORECASE)


def offers_a_swap_level(text: str) -> bool:
    """True when the sender offers to pay or receive at a level rather than asking or ordering."""
    return _OFFERED_SWAP_LEVEL.search(text) is not None


# An rfq's side from what it asks for (ANNOTATION.md): the other side's offer ("Brief", "lettera") is wanted by a buyer,
# its bid ("Geld", "denaro") by a seller; where *you* pay, I sell ("where would you pay me 8y sonia"), where you
# receive, I buy. Both bid and offer words ("Geld/Brief") ask for a two-way price and decide nothing.
_ONE_SIDED_WORDS = {"brief": "buy", "lettera": "buy", "geld": "sell", "denaro": "sell"}
_ONE_SIDED = re.compile(rf"\b({'|'.join(_ONE_SIDED_WORDS)})\b", re.IGNORECASE)
_YOU_PAY_OR_RECEIVE = re.compile(r"\b(?:where|what|lvl|level)\b[^.?!]{0,30}?\b(?:you|u|ya)\b[^.?!]{0,12}?"
                                 r"\b(pay|paying|receive|receiving|rec)\b", re.IGNORECASE)


def asked_side(text: str) -> str | None:
    """The side an rfq's words give its sender, or None when they give none."""
    sides = {_ONE_SIDED_WORDS[word.lower()] for word in _ONE_SIDED.findall(text)}
    if len(sides) == 1:
        return sides.pop()
    if not sides and (m := _YOU_PAY_OR_RECEIVE.search(text)):
        return "sell" if m.group(1).lower().startswith("pay") else "buy"
    return None


def closing_side(text: str) -> str | None:
    """The side that closes the position a message names ("cover my tsla short" -> buy), or None if it names none."""
    m = _CLOSING.search(text)
    if m:
        return _CLOSED_BY[(m.group(1) or m.group(2)).lower()]
    if _OUT_OF_HOLDING.search(text) and not _OTHER_POSITION.search(text):
        return "sell"
    return None


def normalize_crypto(span: str) -> str:
    """'btc' -> BTCUSD, 'eth/usdt' -> ETHUSDT, 'ethbtc' -> ETHBTC, 'bitcoin' -> BTCUSD."""
    parts = [p for p in re.split(r"[\s/\-:]+", _squash(span)) if p and p not in ("vs", "v", "against")]
    if len(parts) == 1 and parts[0].upper() not in _CRYPTO_CODES:
        word = parts[0]
        for quote in ("usdt", "usdc", "usd", "eur", "btc", "eth"):
            if word.endswith(quote) and word[: -len(quote)] in CRYPTO_NAMES:
                parts = [word[: -len(quote)], quote]
                break
    if not parts or parts[0] not in CRYPTO_NAMES:
        raise NormalizationError("unknown_symbol", f"not a crypto asset: {span!r}")
    base = CRYPTO_NAMES[parts[0]]
    quote = "USD"
    if len(parts) > 1:
        q = parts[1]
        quote = CRYPTO_NAMES.get(q, q.upper())
        if quote not in _CRYPTO_CODES and quote not in ISO_CURRENCIES:
            raise NormalizationError("unknown_symbol", f"unknown quote asset in {span!r}")
    return base + quote


# Shared by both lists below: never a counterparty, and never part of the name next to them.
_CLIENT_WORDS = frozenset("a an the my our your client clients customer cust kunde kunden cliente clientes sales desk "
                          "ops".split())
# Words that describe a party without naming it. ANNOTATION.md: an unnamed client, a desk, a book or a
# colleague never names the counterparty, so a span made only of these words is no counterparty.
UNNAMED_PARTY_WORDS = _CLIENT_WORDS | frozenset("""
their his her one some this that another me us you them him we they i
customers corporate corporates corp corpo account acct accountholder name local street
real money rm fund funds pension hedge hedging hf macro insurer insurance asset manager managers mgr sovereign swf
central bank family office pb prime broker someone somebody guy guys big
book books flow prop em fx rates credit equity equities middle back front settlements salesperson
trader pm pa risk treasury team
scheme ldi lifeco ssa supra issuer regional cb accounts pensions top global
uk us usa german french swiss dutch italian spanish nordic scandi asian european japanese canadian australian latam
""".split())
# Brokers, venues and platforms: where a trade is done, never with whom (ANNOTATION.md, the probe's settled cases).
VENUE_WORDS = frozenset("""
ebs reuters refinitiv lseg bloomberg bbg fxall 360t currenex hotspot tradeweb marketaxess icap tullett bgc
tradition gfi eurex cme ice screen voice
""".split())
# Capitalised words next to a name that are not part of it ("Show MS a bid", "Hey Kenji", "Client: Barclays Ty").
_NOT_NAME_WORDS = _CLIENT_WORDS | frozenset("""
ask show tell pls please hey hi hello morning thanks thx ta ok cc for with from to via on at and or but buy sell
vs versus against
bid offer mine yours cancel cxl can could need needs wants want done re fyi ty tks tx cheers thank
""".split())
_NAME_WORD = re.compile(r"[A-Z][a-z]+")
_TITLE_CASE_LINE = re.compile(r"(?<=\w )(For|In|At|To|The|Of|And|On|With|Pls|Please|Thx|Thanks|Looking|Asks)\b")


def whole_name(span: str, text: str) -> str:
    """The counterparty span widened to the name as written: whole words ("Millenn" -> "Millennium") and the
    capitalised words around a capitalised one ("Agricole" -> "Credit Agricole", "Abu Dhabi" -> "Abu Dhabi
    Investment Authority"). A model copies names by tokens and can stop or start inside one; a name never does.
    """
    span = span.strip()
    if not span:
        return span
    whole = re.search(r"(?<!\w)" + re.escape(span) + r"(?!\w)", text, re.IGNORECASE)  # "MS", not inside "MSFT"
    start = whole.start() if whole else text.lower().find(span.lower())
    if start < 0:
        return span
    end = start + len(span)
    while start > 0 and text[start - 1].isalnum():
        start -= 1
    while end < len(text) and text[end].isalnum():
        end += 1
    if not _NAME_WORD.match(text, start) or _TITLE_CASE_LINE.search(text):
        # an acronym ("MS"), lower case, or a Line Typed In Title Case (capitals say nothing): the word alone
        return text[start:end]
    while (m := re.search(r"\b([A-Z][a-z]+) $", text[:start])) and m.group(1).lower() not in _NOT_NAME_WORDS:
        start = m.start(1)
    while (m := re.match(r" ([A-Z][a-z]+)\b", text[end:])) and m.group(1).lower() not in _NOT_NAME_WORDS:
        end += m.end(1)
    return text[start:end]


def normalize_counterparty(span: str) -> str | None:
    """As written, less edge punctuation and a possessive: "BofA's" -> BofA, "Barclays." -> Barclays.

    None for a party described but not named ("client", "a corporate", "the EM desk") and for a venue ("EBS",
    "via Tradition"): neither is a counterparty.
    """
    name = re.sub(r"['’][sS]$", "", span.strip().strip(".,!?:;")).strip()
    words = re.findall(r"[a-z0-9]+", name.lower())
    if words and all(word in UNNAMED_PARTY_WORDS or word in VENUE_WORDS for word in words):
        return None
    return name


# Banks and institutions that open a message as its speaker ("jpm: show me a bid", "[BNPP] buy 20 cable"):
# ANNOTATION.md reads a bank or client there as the counterparty and a person's handle ("nyfx_jd:") as nobody. Only
# names on this list count, so a handle, a time stamp or "re:" never becomes one. Lower case, spaces as written.
PREFIX_INSTITUTIONS = frozenset("""
jpm jpmorgan jpmc gs goldman ms citi citibank bofa baml barclays barx barcs hsbc bnp bnpp socgen sg db deutsche
ubs cs nomura mizuho mufg smbc rbc td bmo cibc scotia natwest nwm lloyds scb stanchart commerzbank cbk ing rabo
rabobank abn nordea seb danske shb handelsbanken dnb swedbank westpac wbc anz nab cba macquarie natixis cacib
santander bbva intesa unicredit zkb jefferies wells citadel millennium blackrock pimco bridgewater norges nbim gic
temasek adia xtx helaba lbbw raiffeisen kbc daiwa bnym aqr
""".split()) | frozenset({"deutsche bank", "dz bank", "morgan stanley", "standard chartered", "credit agricole",
                          "wells fargo", "jane street", "two sigma", "nippon life", "state street", "smbc nikko",
                          "bank of america", "brevan howard"})
_PREFIX_SPEAKER = re.compile(r"^\s*(?:\[([A-Za-z][A-Za-z&. ]{0,24})\]|([A-Za-z][A-Za-z&. ]{0,24}?)\s*:)")


def prefix_counterparty(text: str) -> str | None:
    """The bank or institution a message opens with ("jpm:", "[BNPP]"), as written, or None."""
    m = _PREFIX_SPEAKER.match(text)
    name = (m.group(1) or m.group(2)).strip() if m else None
    return name if name and name.lower() in PREFIX_INSTITUTIONS else None


_ELISION = re.compile(r"^[ld]['’](?=[a-z€])", re.IGNORECASE)  # French "l'estr", "l'€STR", "d'eurgbp"


RATES_INDEXES = frozenset({"SOFR", "SONIA", "ESTR", "EURIBOR", "SARON", "TONA", "TONAR", "BBSW", "CORRA", "TIIE"})


def normalize_symbol(span: str, asset_class: str | None) -> str:
    """Contract symbol for a span, by asset class (see docs/CONVENTIONS.md)."""
    span = _ELISION.sub("", span.strip())
    if asset_class in FX_CLASSES:
        return normalize_fx_pair(span)
    if asset_class == "crypto":
        return normalize_crypto(span)
    cleaned = re.sub(r"\s+", " ", span.strip().strip(".,!?:;")).upper()
    cleaned = re.sub(r"€STR\b", "ESTR", cleaned)  # the euro short-term rate, as the ECB writes it
    if asset_class is not None:  # FX and crypto returned above
        if cleaned in ISO_CURRENCIES:  # "RECEIVE 20M AUD 3Y BBSW" read as a bond named AUD
            raise NormalizationError("unknown_symbol", f"a currency is no {asset_class} symbol: {span!r}")
        # "AIR FP VS EXANE": "vs X" names the counterparty (ANNOTATION.md), it is never part of a share or bond
        cleaned = re.split(r"\s+VS\.?\s+", cleaned, maxsplit=1)[0]
    if asset_class == "rates_swap":
        # the bare index is the symbol (ANNOTATION.md): "SARON CHF", "USD SOFR", "10Y SONIA" are the index and more
        indexes = {word for word in re.findall(r"[A-Z]+", cleaned) if word in RATES_INDEXES}
        if len(indexes) == 1:
            return indexes.pop()
    if asset_class == "equity":
        cleaned = cleaned.lstrip("$")
        if cleaned in _BARE_EXCHANGE_CODES:
            raise NormalizationError("unknown_symbol", f"an exchange code without its ticker: {span!r}")
    if not cleaned:
        raise NormalizationError("unknown_symbol", "empty symbol")
    return cleaned


def base_currency(symbol: str | None, asset_class: str | None) -> str | None:
    """The currency an FX quantity is in: the pair's base."""
    if asset_class in FX_CLASSES and symbol and len(symbol) == 6:
        return symbol[:3]
    return None


def normalize_currency(span: str) -> str:
    key = _squash(span)
    if key in CURRENCY_WORDS:
        return CURRENCY_WORDS[key]
    if key.upper() in ISO_CURRENCIES:
        return key.upper()
    raise NormalizationError("unknown_currency", f"not an ISO 4217 currency: {span!r}")


# --- numbers -------------------------------------------------------------------

_MULTIPLIERS = {
    "k": 1e3, "K": 1e3, "thousand": 1e3, "grand": 1e3,
    "m": 1e6, "mm": 1e6, "mio": 1e6, "mios": 1e6, "mn": 1e6, "mil": 1e6, "mill": 1e6, "million": 1e6,
    "millions": 1e6, "millones": 1e6, "millon": 1e6, "millón": 1e6, "milliones": 1e6, "buck": 1e6, "bucks": 1e6,
    "yard": 1e9, "yards": 1e9, "yds": 1e9, "yd": 1e9, "bn": 1e9, "b": 1e9, "bln": 1e9, "billion": 1e9,
    "billions": 1e9, "milliard": 1e9, "milliards": 1e9, "mrd": 1e9, "mrd.": 1e9,
    "mln": 1e6, "milione": 1e6, "milioni": 1e6, "miliardo": 1e9, "miliardi": 1e9,
}
# Units counted as they are (shares, contracts, coins, ounces...).
_COUNT_UNITS = {
    "shares", "share", "shs", "sh", "lots", "lot", "contracts", "contract", "cts", "ct", "oz", "ozs", "ounces",
    "bbl", "bbls", "barrels", "tonnes", "tons", "t", "mt", "coins", "coin", "units", "acciones", "aktien",
    "actions", "x", "lotes", "onzas", "onces", "unzen", "barriles", "barils", "toneladas", "tonnen",
} | set(CRYPTO_NAMES)
_WORD_NUMBERS = {"a": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7,
                 "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
                 "twenty five": 25, "thirty": 30, "forty": 40, "fifty": 50, "a hundred": 100, "hundred": 100,
                 "half a": 0.5, "half": 0.5, "quarter": 0.25, "a quarter": 0.25, "quarter of a": 0.25,
                 "un": 1, "une": 1, "uno": 1, "una": 1, "ein": 1, "eine": 1}


def parse_number(text: str) -> Decimal:
    """'1,200' -> 1200, '2.5' -> 2.5, '2,5' -> 2.5 (European decimal), '1.200.000' -> 1200000, '2.340,50' -> 2340.5."""
    t = text.strip().replace("_", "").replace("'", "").replace(" ", "")
    if re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", t):
        t = t.replace(",", "")
    elif re.fullmatch(r"\d{1,3}(\.\d{3}){2,}", t):
        t = t.replace(".", "")
    elif re.fullmatch(r"\d{1,3}(\.\d{3})+,\d+", t):  # European: 2.340,50
        t = t.replace(".", "").replace(",", ".")
    elif re.fullmatch(r"\d+,\d+", t):
        t = t.replace(",", ".")
    try:
        value = Decimal(t)
    except InvalidOperation:
        raise NormalizationError("unparseable_value", f"not a number: {text!r}") from None
    if not value.is_finite():
        raise NormalizationError("unparseable_value", f"not a number: {text!r}")
    return value


_CURRENCY_MARK = r"(?:\$|€|£|¥|(?<![a-z])(?:usd|eur|gbp|jpy|chf|aud|cad|nzd)(?![a-z]))"
_AMOUNT = re.compile(r"^(?P<num>\.?\d[\d,.'_]*(?: \d{3})*)\s*(?P<unit>[a-zñó.]+(?: [a-zñó.]+)?)?$")  # ".5 btc" too
# Simple fractions as amounts ("1/2 btc"). Right after a number they are a price handle ("101 1/2") or a mixed number,
# and other slashed numbers are dates ("20/03", "05/34"): neither is read as an amount.
_FRACTIONS = {"1/2": "0.5", "1/4": "0.25", "3/4": "0.75"}


_WHOLE_UNITS = frozenset({"equity", "future"})  # counted in whole shares / contracts


def split_amount_currency(span: str) -> tuple[str, str | None]:
    """'$5m' -> ('5m', 'USD'); '10 mio eur' -> ('10 mio', 'EUR'); '10m' -> ('10m', None)."""
    s = _squash(span)
    m = re.search(_CURRENCY_MARK, s)
    if not m:
        return s, None
    rest = (s[: m.start()] + " " + s[m.end():]).strip()
    return re.sub(r"\s+", " ", rest), normalize_currency(m.group(0))


# A currency word or code right before an amount ("EUR 50m", "$75mm"), or right after it ("30m eur", "20 millions
# d'euros"); never the quote currency of a pair written around the amount ("ada vs usd 100k", "100k usd/jpy").
_CURRENCY_BEFORE = re.compile(r"(?<!vs )(?<!v )(?<!against )(?<!/)(?:^|(?<=[\s(]))([$€£¥]|[a-z]{3,8})\s*$")
_CURRENCY_AFTER = re.compile(r"\s*(?:d'|of\s)?\s*([a-z]{3,8})(?![\w/])(?!\s*(?:/|vs\b|v\b|against\b))")


def adjacent_currency(span: str, text: str) -> str | None:
    """A currency written right next to the amount span: '30m eur', 'EUR 50m', '$75mm', "20 millions d'euros".

    Swap and equity notionals carry the currency written with them
    (ANNOTATION.md); the model sometimes copies the amount without it. Only a
    span that occurs once counts, so the currency cannot belong to another number.
    """
    low = _loose(text)
    found = list(re.finditer(rf"(?<![\w.,]){re.escape(_loose(span))}(?!\w)", low))
    if len(found) != 1:
        return None
    for match in (_CURRENCY_AFTER.match(low, found[0].end()), _CURRENCY_BEFORE.search(low[: found[0].start()])):
        if match is not None:
            try:
                return normalize_currency(match.group(1))
            except NormalizationError:  # a word that is no currency ("for 10m", "10m sofr")
                continue
    return None


def normalize_quantity(span: str, asset_class: str | None) -> float:
    """Units: '10m' -> 1e7, '1 yard' -> 1e9, '500k' -> 5e5; FX bare '25' -> 2.5e7."""
    s, _ = split_amount_currency(span)
    s = s.rstrip(".,!?:;@ ").lstrip(",!?:;@ ")
    s = s if re.match(r"\.\d", s) else s.lstrip(".")  # ".5 btc": a leading decimal point is part of the number
    for word, value in sorted(_WORD_NUMBERS.items(), key=lambda kv: -len(kv[0])):
        if s.startswith(word + " "):
            s = f"{value} {s[len(word) + 1:]}"
            break
    head, _, tail = s.partition(" ")
    if head in _FRACTIONS:
        s = f"{_FRACTIONS[head]} {tail}".strip()
    m = _AMOUNT.match(s)
    if not m:
        raise NormalizationError("unparseable_value", f"not an amount: {span!r}")
    words = [w.strip(".") for w in (m.group("unit") or "").split()]
    raw_number = m.group("num")
    if re.fullmatch(r"\d{1,3}\.\d{3}", raw_number) and (
        (words and words[-1] in _COUNT_UNITS) or (not words and asset_class in _WHOLE_UNITS)
    ):
        raw_number = raw_number.replace(".", "")  # '3.000 acciones': nobody trades 3.0 shares
    number = parse_number(raw_number)
    if words and words[-1] in _COUNT_UNITS and (len(words) > 1 or words[-1] not in _MULTIPLIERS):
        words = words[:-1]  # '200 shares', '5k oz': the count unit does not scale
    counted = not words
    if len(words) > 1 or (words and words[0] not in _MULTIPLIERS):
        raise NormalizationError("unparseable_value", f"unknown amount unit {' '.join(words)!r} in {span!r}")
    quantity = number * Decimal(str(_MULTIPLIERS[words[0]])) if words else number
    if counted and not (m.group("unit") or "").strip() and asset_class in FX_CLASSES and number < 1000:
        quantity = number * Decimal(1_000_000)  # FX: a bare amount is millions of the base currency
    if quantity <= 0:
        raise NormalizationError("non_positive_quantity", f"quantity must be positive: {span!r}")
    return float(quantity)


# "99-16", "99'16"; not "10:30", which is a time of day
_THIRTY_SECONDS = re.compile(r"^(?P<whole>\d+)[-'](?P<ticks>\d{2})(?P<frac>\+|[0-7])?$")


def normalize_price(span: str) -> float:
    """'1.2710' -> 1.271, '99-16' -> 99.5 (32nds), '99-16+' -> 99.515625, '67k' -> 67000."""
    s = _squash(span)
    s = re.sub(r"^(@|at|a|à|bei|px|price|lvl|level)\s*", "", s).strip()
    s = s.lstrip("$€£").rstrip("$€£%").strip()  # a yield may carry its percent sign
    m = _THIRTY_SECONDS.match(s)
    if m:
        ticks = int(m.group("ticks"))
        if ticks >= 32:
            raise NormalizationError("unparseable_value", f"32nds out of range: {span!r}")
        frac = m.group("frac")
        extra = 0.5 if frac == "+" else (int(frac) / 8 if frac else 0.0)
        return int(m.group("whole")) + (ticks + extra) / 32
    m = re.fullmatch(r"(?P<sign>[+-])?(?P<num>\.?\d[\d,.]*)\s*(?P<unit>k|m|mm|bn)?", s)
    if not m:
        raise NormalizationError("unparseable_value", f"not a price: {span!r}")
    value = parse_number(("0" if m.group("num").startswith(".") else "") + m.group("num"))
    if m.group("sign") == "-":  # swap points can be negative
        value = -value
    if m.group("unit"):
        value *= Decimal(str(_MULTIPLIERS[m.group("unit")]))
    return float(value)


def normalize_quote(bid_span: str, ask_span: str) -> tuple[float, float]:
    """Two-way quote sides; a short ask completes the bid: '1.0848','50' -> 1.0848, 1.0850.

    When the completed ask would be below the bid the big figure rolls:
    '1.2798','02' -> 1.2802; '99-16','18' -> 99.5625.
    """
    bid = normalize_price(bid_span)
    ask_raw = _squash(ask_span).lstrip("/").strip()
    bid_raw = _squash(bid_span)
    if re.fullmatch(r"\d{1,4}\+?", ask_raw) and len(ask_raw.rstrip("+")) < len(re.sub(r"\D", "", bid_raw)):
        m = _THIRTY_SECONDS.match(bid_raw)
        if m:
            candidate = f"{m.group('whole')}-{ask_raw}"
            ask = normalize_price(candidate)
            if ask < bid:
                ask += 1
            return bid, ask
        digits = len(ask_raw)
        head = re.sub(r"[\d]{%d}$" % digits, "", bid_raw.rstrip("+"))
        if head == bid_raw:  # "212.5/214": no short form, a whole ask next to the bid
            ask = normalize_price(ask_raw)
            if abs(ask - bid) > 0.1 * abs(bid):
                raise NormalizationError("unparseable_value", f"cannot complete ask {ask_span!r} from bid {bid_span!r}")
            return bid, ask
        ask_dec = Decimal(parse_number(head + ask_raw))
        if ask_dec < Decimal(str(bid)):
            decimals = len(bid_raw.split(".")[1]) if "." in bid_raw else 0
            ask_dec += Decimal(1).scaleb(-(decimals - digits))
        return bid, float(ask_dec)
    return bid, normalize_price(ask_raw)


# --- tenors and dates ------------------------------------------------------------

_NAMED_TENORS = {
    "spot": "SPOT", "sp": "SPOT", "spt": "SPOT", "today": "ON", "tod": "ON",
    "tom": "TOM", "tomorrow": "TOM", "tn": "TN", "t/n": "TN", "tom next": "TN", "tom/next": "TN", "tomnext": "TN",
    "tom-next": "TN", "on": "ON", "o/n": "ON", "overnight": "ON", "over-night": "ON", "sn": "SN", "s/n": "SN",
    "spot next": "SN", "spot/next": "SN", "spot-next": "SN",
}
_UNIT_LETTER = {}
for _letter, _words in {
    "D": "d day days dy j jour jours tag tage dia dias días giorno giorni",
    "W": "w wk wks week weeks sem semaine semaines semana semanas woche wochen settimana settimane",
    "M": "m mo mos mth mths mnth month months mois mes meses monat monate mese mesi",
    "Y": "y yr yrs year years a an ans ano anos año años jahr jahre anno anni",
}.items():
    for _w in _words.split():
        _UNIT_LETTER[_w] = _letter
_TENOR_NUMBER_WORDS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
                       "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "a": 1}

_MONTHS = {}
for _i in range(1, 13):
    _MONTHS[calendar.month_name[_i].lower()] = _i
    _MONTHS[calendar.month_abbr[_i].lower()] = _i
_MONTHS.update({
    "sept": 9, "janv": 1, "janvier": 1, "fév": 2, "fev": 2, "février": 2, "mars": 3, "avr": 4, "avril": 4, "mai": 5,
    "juin": 6, "juil": 7, "juillet": 7, "août": 8, "aout": 8, "déc": 12, "décembre": 12, "decembre": 12,
    "octobre": 10, "novembre": 11, "septembre": 9, "ene": 1, "enero": 1, "febrero": 2, "marzo": 3, "abr": 4,
    "abril": 4, "mayo": 5, "junio": 6, "julio": 7, "ago": 8, "agosto": 8, "septiembre": 9, "octubre": 10,
    "noviembre": 11, "dic": 12, "diciembre": 12, "januar": 1, "februar": 2, "märz": 3, "maerz": 3, "juni": 6,
    "juli": 7, "okt": 10, "oktober": 10, "dez": 12, "dezember": 12,
})


def _resolve_year(day: int, month: int, year: int | None, reference: date) -> date:
    if year is not None:
        if year < 100:
            year += 2000
        return date(year, month, day)
    candidate = date(reference.year, month, day)
    return candidate if candidate >= reference else date(reference.year + 1, month, day)


def normalize_date(span: str, reference: date) -> str:
    """An explicit value date as ISO: '15 dec' -> the next 15 December on/after `reference`."""
    s = _squash(span).replace(",", " ").strip(". ")
    s = re.sub(r"\s+", " ", s)
    try:
        m = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", s)
        if m:
            return date(int(m[1]), int(m[2]), int(m[3])).isoformat()
        m = re.fullmatch(r"(\d{1,2})[/.\-](\d{1,2})(?:[/.\-](\d{2}|\d{4}))?", s)
        if m:  # day first, as desks outside the US write it; month first only where day first cannot be ("12/15")
            first, second, year = int(m[1]), int(m[2]), int(m[3]) if m[3] else None
            day, month = (second, first) if second > 12 >= first else (first, second)
            return _resolve_year(day, month, year, reference).isoformat()
        m = re.fullmatch(r"(\d{1,2})(?:st|nd|rd|th|er|\.)?(?: of)?[ \-]?([a-zéûä]+)\.?(?:[ \-](\d{2}|\d{4}))?", s)
        if m and m[2] in _MONTHS:
            return _resolve_year(int(m[1]), _MONTHS[m[2]], int(m[3]) if m[3] else None, reference).isoformat()
        m = re.fullmatch(r"([a-zéûä]+)\.? (\d{1,2})(?:st|nd|rd|th)?(?: (\d{2}|\d{4}))?", s)
        if m and m[1] in _MONTHS:
            return _resolve_year(int(m[2]), _MONTHS[m[1]], int(m[3]) if m[3] else None, reference).isoformat()
    except ValueError:
        raise NormalizationError("unparseable_value", f"not a calendar date: {span!r}") from None
    raise NormalizationError("unparseable_value", f"not a tenor or date: {span!r}")


# "j" is French jour ("10j" = 10 days) and German Jahr ("10J" = 10 years); for a swap or a bond only years make sense.
TERM_CLASSES = frozenset({"rates_swap", "bond"})


def normalize_tenor(span: str, reference: date, asset_class: str | None = None) -> str:
    """'1w' -> 1W, 'o/n' -> ON, '3 months' -> 3M, '1w/2w' -> 2W (far leg), '15 dec' -> ISO date.

    A swap's or bond's '10j' is 10Y (`TERM_CLASSES`); anything else's is 10D.
    """
    s = _squash(span).strip(".,!?:;")
    if s in _NAMED_TENORS:
        return _NAMED_TENORS[s]
    if "/" in s and not re.fullmatch(r"[\d/.\-]+", s) and s not in _NAMED_TENORS:
        near, far = s.rsplit("/", 1)
        if far.strip():
            return normalize_tenor(far, reference, asset_class)
    m = re.fullmatch(r"(\d{1,3}|[a-z]+)\s*-?\s*([a-zñí]+)", s)
    if m:
        count = int(m[1]) if m[1].isdigit() else _TENOR_NUMBER_WORDS.get(m[1])
        letter = "Y" if m[2] == "j" and asset_class in TERM_CLASSES else _UNIT_LETTER.get(m[2])
        if count and letter:
            return f"{count}{letter}"
    return normalize_date(s, reference)


# --- grounding -------------------------------------------------------------------

def _loose(s: str) -> str:
    return re.sub(r"\s+", " ", s.lower()).strip()


def is_grounded(span: str, text: str) -> bool:
    """True when the span occurs in the message (case and spacing ignored)."""
    return _loose(span) in _loose(text)


# --- whole extraction --------------------------------------------------------------

SPAN_FIELDS = ("symbol", "quantity", "currency", "price", "bid", "ask", "tenor", "counterparty")


@dataclass
class Normalized:
    """Contract values for one message plus the reasons to doubt them."""

    fields: dict[str, object]
    reasons: list[tuple[str, str | None, str]] = field(default_factory=list)  # (code, field, detail)
    # Contract fields decided by other extraction fields than their own: field -> sources.
    derived_from: dict[str, tuple[str, ...]] = field(default_factory=dict)


SPOT_TENORS = frozenset({None, "SPOT", "TOM", "TN", "ON"})


# Futures codes a symbol can start with: bond, note and index futures alone or with a month code ("ZN", "ZNH6",
# "FGBL Z5"); energy and metals only with one ("CLZ5", "GCG6"), since CL, GC, SI, HG, NG, US are also tickers or words.
_FUTURES_ROOT = re.compile(r"(?:(?:zt|zf|zn|zb|ub|tu|fv|ty|fgbs|fgbm|fgbl|fgbx|foat|fbtp|fesx|fdax|es|nq|rty|ym|sr3)"
                           r"(?:[fghjkmnquvxz]\d{1,2})?|(?:cl|gc|si|hg|ng|us)[fghjkmnquvxz]\d{1,2})")


# Bloomberg exchange codes after a ticker ("SAP GY", "C US", "7203 JT"): the symbol is a listed share.
_EXCHANGE_CODES = ("us|ln|gy|gr|fp|jp|jt|hk|sw|se|im|sm|na|cn|ct|au|at|dc|ss|fh|no|bb|pl|av|id|ks|tt|sp|in")
_LISTED_SHARE = re.compile(rf"(?!\d+[dwmy]\b)[a-z0-9.]{{1,6}} (?:{_EXCHANGE_CODES})")
# Exchange codes that are no ticker of their own: a symbol of just one of them lost its ticker ("Shel Ln" -> "LN").
_BARE_EXCHANGE_CODES = frozenset("LN GY GR FP JT JP HK SW IM SM NA CT DC SS FH BB AV KS TT".split())


def implied_asset_class(symbol_span: str) -> str | None:
    """What the instrument itself says: 'cable' or 'eur/usd' is FX, 'btc' crypto, 'ZN' a future, 'SAP GY' a share.

    Only unambiguous names count: FX slang and six-letter ISO pairs, crypto names, futures codes (`_FUTURES_ROOT`),
    a ticker with an exchange code.
    """
    key = _plain(_squash(symbol_span).strip(".,!?:;"))
    letters = _pair_letters(key)
    if key in FX_SLANG or (len(letters) == 6 and letters[:3] in ISO_CURRENCIES and letters[3:] in ISO_CURRENCIES
                           and letters[:3] != letters[3:]):
        return "fx"
    words = re.split(r"[\s/\-:]+", key)
    if words and words[0] in CRYPTO_NAMES and words[0] not in ("usdt", "usdc"):
        return "crypto"
    if words and _FUTURES_ROOT.fullmatch(words[0]):
        return "future"
    if _LISTED_SHARE.fullmatch(key):
        return "equity"
    return None


def after_a_number(span: str, text: str) -> bool:
    """True for a fraction span written right after a number ("101 1/2", "99 3/4"): a bond price's handle, no amount."""
    head = _squash(span).partition(" ")[0]
    return head in _FRACTIONS and re.search(r"\d\s+" + re.escape(head) + r"(?![\d/])", text) is not None


def normalize_extraction(raw: dict, text: str, reference: date) -> Normalized:
    """Turn the model's raw extraction (enums + verbatim spans) into contract fields.

    Never raises: a span that fails becomes a null field plus a reason, so the
    reviewer sees the best effort and why it is doubted.
    """
    out: dict[str, object] = {name: None for name in CONTRACT_FIELDS}
    reasons: list[tuple[str, str | None, str]] = []
    intent = raw.get("intent") or "none"
    out["intent"] = intent
    if intent == "none":
        return Normalized(out, reasons)
    for name in ("side", "asset_class", "order_type"):
        out[name] = raw.get(name)
    derived: dict[str, tuple[str, ...]] = {}
    if intent == "order" and out["order_type"] is None and stated_market(text):
        out["order_type"], derived["order_type"] = "market", ("intent",)  # the words decide what the model left out
    if raw.get("symbol"):
        pair, tenor = split_pair_tenor(raw["symbol"])
        if tenor is not None:
            if not raw.get("tenor"):
                derived["tenor"] = ("symbol",)  # its confidence is the symbol's tokens'
            raw = {**raw, "symbol": pair, "tenor": raw.get("tenor") or tenor}
    implied = implied_asset_class(raw["symbol"]) if raw.get("symbol") else None
    if implied == "fx" and out["asset_class"] not in FX_CLASSES:
        out["asset_class"], derived["asset_class"] = "fx_spot", ("symbol",)
    elif implied in ("crypto", "future", "equity") and out["asset_class"] != implied:
        out["asset_class"], derived["asset_class"] = implied, ("symbol",)
    asset_class = out["asset_class"]

    for name in SPAN_FIELDS:
        span = raw.get(name)
        if span is not None and not is_grounded(span, text):
            reasons.append(("ungrounded_span", name, f"{span!r} is not in the message"))

    def attempt(name: str, fn, *args):
        span = raw.get(name)
        if span is None:
            return None
        try:
            return fn(span, *args)
        except NormalizationError as err:
            reasons.append((err.code, name, err.detail))
            return None

    out["symbol"] = attempt("symbol", normalize_symbol, asset_class)
    if asset_class in FX_CLASSES and out["symbol"] and written_reversed(raw["symbol"], out["symbol"]):
        # selling JPY against USD is buying USDJPY: the side follows the market-order pair
        out["side"] = OPPOSITE_SIDE.get(out["side"], out["side"])
    asked = asked_side(text) if intent == "rfq" else None
    if asked and out["side"] != asked:  # the words decide, as sure as the reading that it is an rfq
        out["side"], derived["side"] = asked, ("intent",)
    closing = closing_side(text)
    if closing and out["side"] != closing:  # the phrase decides; as sure as the reading that it is a trade at all
        out["side"], derived["side"] = closing, ("intent",)
    if raw.get("quantity") and after_a_number(raw["quantity"], text):
        reasons.append(("unparseable_value", "quantity", f"{raw['quantity']!r} follows a number: a price handle"))
    else:
        out["quantity"] = attempt("quantity", normalize_quantity, asset_class)
    out["price"] = attempt("price", normalize_price)
    out["tenor"] = attempt("tenor", normalize_tenor, reference, asset_class)
    if asset_class in ("fx_spot", "fx_forward"):  # spot or forward is a matter of the value date
        by_tenor = "fx_spot" if out["tenor"] in SPOT_TENORS else "fx_forward"
        if by_tenor != asset_class:
            out["asset_class"] = by_tenor
            derived["asset_class"] = derived.get("asset_class", ("asset_class",)) + ("tenor",)
    if raw.get("counterparty"):
        out["counterparty"] = normalize_counterparty(whole_name(raw["counterparty"], text)) or None
    if out["counterparty"] is None and (speaker := prefix_counterparty(text)):
        out["counterparty"], derived["counterparty"] = speaker, ("intent",)

    if raw.get("bid") is not None and raw.get("ask") is not None:
        try:
            out["bid"], out["ask"] = normalize_quote(raw["bid"], raw["ask"])
        except NormalizationError as err:
            reasons.append((err.code, "ask", err.detail))
    else:
        out["bid"] = attempt("bid", normalize_price)
        out["ask"] = attempt("ask", normalize_price)

    currency = attempt("currency", normalize_currency)
    if currency is None and raw.get("quantity"):
        try:
            currency = split_amount_currency(raw["quantity"])[1]
        except NormalizationError:
            currency = None
        if currency is None and asset_class not in FX_CLASSES and out["quantity"] is not None:
            currency = adjacent_currency(raw["quantity"], text)
            if currency is not None:
                derived["currency"] = ("quantity",)
    base = base_currency(out["symbol"], asset_class) if asset_class in FX_CLASSES else None
    if base:  # FX amounts are in the pair's base whatever currency span the model wrote, so it cannot fail
        currency, derived["currency"] = base, ("symbol",)
        reasons = [r for r in reasons if r[1] != "currency"]
    out["currency"] = currency

    if intent == "order" and (out["price"] is not None or out["bid"] is not None) and offers_a_swap_level(text):
        out["intent"] = intent = "quote"
    if (intent == "quote" and out["price"] is not None and out["bid"] is None and out["ask"] is None
            and _CHOICE.search(text)):
        # a choice price is a two-way quote at one level (ANNOTATION.md), whatever field the model put it in
        out["bid"] = out["ask"] = out["price"]
        out["price"], out["side"] = None, "two_way"
        derived["bid"] = derived["ask"] = ("price",)
    if out["side"] is None and intent in ("rfq", "quote"):
        out["side"] = "two_way"
    return Normalized(out, reasons, derived)
