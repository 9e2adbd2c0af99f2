"""Training targets: the `Extraction` the model should write for an annotated record.

The model writes enums plus verbatim spans; annotated records give contract
values (`expected`). Synthetic records also carry the spans they were built
from; hand-annotated gold records do not, so their spans are *grounded* here:
the shortest piece of the message that the parser's own normalizer maps back to
the expected value. Every target is checked by running it through
`normalize_extraction` exactly as the parser would: a record whose target does
not reproduce `expected` is not trained on (it would teach the wrong thing),
and the reason is counted so nothing is dropped silently.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime

from pydantic import ValidationError

from schemas import CONTRACT_FIELDS
from streamer.parsing.confidence import same_value
from streamer.parsing.grammar import SPAN_MAX_CHARS, Extraction
from streamer.parsing.normalize import (
    FX_CLASSES,
    FX_SLANG,
    ISO_CURRENCIES,
    OPPOSITE_SIDE,
    SPAN_FIELDS,
    NormalizationError,
    base_currency,
    normalize_currency,
    normalize_counterparty,
    normalize_extraction,
    normalize_price,
    normalize_quantity,
    normalize_quote,
    normalize_symbol,
    normalize_tenor,
    split_amount_currency,
    written_reversed,
)

MAX_NGRAM_WORDS = 4
_TRIM = ".,!?:;()[]\"'`*"
# A two-way price written as one dashed word: "1.0852-55", "100.42-100.48" (not 32nds: "99-16").
_DASHED_QUOTE = re.compile(r"(?<![\w.])(\d+\.\d+)-(\d+(?:\.\d+)?)(?![\w.])")
# Characters the grammar's span rule cannot produce.
_UNENCODABLE = re.compile(r'["\\{}\x00-\x1f]')


def reference_date(record: dict) -> date:
    """The date relative tenors and day-month dates resolve against (the message's timestamp)."""
    stamp = record.get("timestamp")
    if isinstance(stamp, str) and stamp:
        try:
            return datetime.fromisoformat(stamp.replace("Z", "+00:00")).date()
        except ValueError:
            pass
    return date.today()


def candidate_spans(text: str) -> list[str]:
    """Word n-grams (up to 4 words) of `text`, punctuation trimmed, shortest first (words, then characters).

    Besides whitespace words, the pieces of a word are candidates too: the parts
    of a slashed word ("1.0848/50" -> "1.0848", "50"; "sn/3w" -> "3w"), the
    sides of a dashed quote ("1.0852-55" -> "1.0852", "55") and an amount or
    price without its "@" or currency sign ("@1.2710" -> "1.2710", "$10mm" ->
    "$", "10mm"). A leading decimal point stays (".6610/13" -> ".6610").
    """
    found: dict[str, tuple[int, int]] = {}
    dashed_sides = [m.span(g) for m in _DASHED_QUOTE.finditer(text) for g in (1, 2)]
    for tokens in ([m.span() for m in re.finditer(r"\S+", text)],
                   [m.span() for m in re.finditer(r"[^\s/@$€£¥]+|[$€£¥]", text)],
                   dashed_sides):
        for n in range(1, MAX_NGRAM_WORDS + 1):
            for i in range(len(tokens) - n + 1):
                raw = text[tokens[i][0]: tokens[i + n - 1][1]]
                span = raw.strip(_TRIM).strip()
                if re.match(r"\.\d", raw) and not span.startswith("."):
                    span = "." + span
                if not span or len(span) > SPAN_MAX_CHARS or _UNENCODABLE.search(span):
                    continue
                key = (len(span.split()), len(span))
                if span not in found or key < found[span]:
                    found[span] = key
    return sorted(found, key=lambda s: found[s])


def _maps_to(fn, span: str, *args) -> object:
    try:
        return fn(span, *args)
    except (NormalizationError, ValueError, ArithmeticError):
        return None


def _ground_field(name: str, expected: dict, text: str, candidates: list[str], reference: date, spans: dict) -> str | None:
    """The best candidate the normalizer maps to `expected[name]`; raises LookupError when none does."""
    want = expected.get(name)
    asset_class = expected.get("asset_class")
    if name == "currency":
        # FX takes the pair's base; elsewhere a currency written inside the quantity span counts.
        if asset_class in FX_CLASSES and base_currency(expected.get("symbol"), asset_class) == want:
            return None
        quantity_span = spans.get("quantity")
        carried = _maps_to(lambda s: split_amount_currency(s)[1], quantity_span) if quantity_span else None
        if want is None or carried == want:
            return None
        test = lambda s: _maps_to(normalize_currency, s) == want  # noqa: E731
    elif name == "quantity" and want is not None:
        return _ground_quantity(want, asset_class, candidates)
    elif want is None:
        return None
    elif name == "symbol":
        return _ground_symbol(want, asset_class, candidates)
    elif name in ("price", "bid"):
        test = lambda s: same_value(_maps_to(normalize_price, s), want)  # noqa: E731
    elif name == "ask":
        bid_span = spans.get("bid")
        if bid_span is not None:
            test = lambda s: _pair_matches(_maps_to(lambda a: normalize_quote(bid_span, a), s), expected)  # noqa: E731
        else:
            test = lambda s: same_value(_maps_to(normalize_price, s), want)  # noqa: E731
    elif name == "tenor":  # the word "on" only when nothing else is the tenor ("on 30m ... o/n")
        candidates = [c for c in candidates if c.lower() != "on"] + [c for c in candidates if c.lower() == "on"]
        test = lambda s: _maps_to(normalize_tenor, s, reference, asset_class) == want  # noqa: E731
    elif name == "counterparty":
        test = lambda s: normalize_counterparty(s) == want  # noqa: E731
    else:  # pragma: no cover - SPAN_FIELDS is fixed
        raise KeyError(name)
    for span in candidates:
        if test(span):
            return span
    raise LookupError(name)


def _ground_symbol(want: str, asset_class: str | None, candidates: list[str]) -> str:
    """The shortest name that maps, widened to a whole two-word or slashed name around it.

    "dollar yen" not "yen", "eur/usd" not "eur", "usd chf" not "chf" (as the
    synthetic data writes them); never widened over digits ("250 EURJPY").
    """
    matching = [s for s in candidates if _maps_to(normalize_symbol, s, asset_class) == want]
    if not matching:
        raise LookupError("symbol")
    best = matching[0]
    wider = [s for s in matching if s != best and best in s and _is_pair_name(s)]
    return max(wider, key=len) if wider else best


def _is_pair_name(span: str) -> bool:
    """'dollar yen', 'eur usd', 'usd/sek', 'ada/usdt': a whole pair, not a name plus a stray word."""
    words = span.split()
    if "/" in span:
        return len(words) == 1 and bool(re.fullmatch(r"[^\W\d_]{2,}/[^\W\d_]{2,}", span))
    if len(words) != 2 or not all(re.fullmatch(r"[^\W\d_]{3,}", w) for w in words):
        return False
    return span.lower() in FX_SLANG or all(w.upper() in ISO_CURRENCIES for w in words)


def _ground_quantity(want: float, asset_class: str | None, candidates: list[str]) -> str:
    """The shortest amount that maps, with a following multiplier word kept ("10 Mio", not "10").

    Follows the synthetic data's convention: a multiplier word belongs to the
    amount (in FX a bare "10" already means 10 million, but "10 Mio" is what the
    trader wrote), a count unit ("5 contracts") and a currency do not; the
    currency gets its own span.
    """
    matching = [s for s in candidates if same_value(_maps_to(normalize_quantity, s, asset_class), want)]
    plain = [s for s in matching if _maps_to(lambda x: split_amount_currency(x)[1], s) is None]
    pool = plain or matching
    if not pool:
        raise LookupError("quantity")
    best = pool[0]
    for longer in pool:
        if longer.startswith(best + " ") and len(longer.split()) == len(best.split()) + 1:
            as_counted = _maps_to(normalize_quantity, best, None), _maps_to(normalize_quantity, longer, None)
            if None not in as_counted and not same_value(*as_counted):  # the extra word multiplies: a unit word
                return longer
    return best


def _pair_matches(pair, expected: dict) -> bool:
    return (pair is not None and same_value(pair[0], expected.get("bid"))
            and same_value(pair[1], expected.get("ask")))


def derive_spans(record: dict) -> dict[str, str | None]:
    """Spans for a record without them; raises LookupError naming the first field that cannot be grounded."""
    text, expected = record["text"], record["expected"]
    candidates = candidate_spans(text)
    reference = reference_date(record)
    spans: dict[str, str | None] = {}
    # quantity before currency (a currency inside the amount counts), bid before ask (short asks complete the bid)
    for name in ("symbol", "quantity", "currency", "price", "bid", "ask", "tenor", "counterparty"):
        spans[name] = _ground_field(name, expected, text, candidates, reference, spans)
    return spans


def check_target(extraction: Extraction, record: dict) -> list[str]:
    """Fields where the parser's normalizer, given this target, would not reproduce `expected`."""
    normalized = normalize_extraction(extraction.model_dump(), record["text"], reference_date(record))
    expected = record["expected"]
    wrong = [f for f in CONTRACT_FIELDS if not same_value(normalized.fields.get(f), expected.get(f))]
    wrong += [f"{code}:{field}" for code, field, _ in normalized.reasons if field not in wrong]
    return wrong


def extraction_for(record: dict, failures: Counter | None = None) -> Extraction | None:
    """The target `Extraction` for an annotated record, or None (counted in `failures`) when it cannot be built."""
    failures = failures if failures is not None else Counter()
    expected = record.get("expected") or {}
    text = record.get("text") or ""
    intent = expected.get("intent")
    multiple = bool(record.get("multiple_trades") or expected.get("multiple_trades"))
    if not text or intent is None:
        failures["no_text_or_intent"] += 1
        return None
    if intent == "none":
        return Extraction(intent="none")
    if isinstance(record.get("spans"), dict):
        spans = {name: record["spans"].get(name) for name in SPAN_FIELDS}
    else:
        try:
            spans = derive_spans(record)
        except LookupError as err:
            failures[f"ungrounded:{err.args[0]}"] += 1
            return None
    side = expected.get("side")
    if expected.get("asset_class") in FX_CLASSES and spans.get("symbol") and expected.get("symbol") \
            and written_reversed(spans["symbol"], expected["symbol"]):
        side = OPPOSITE_SIDE.get(side, side)  # the model copies the side as written; the normalizer flips it
    try:
        extraction = Extraction(
            intent=intent, side=side, asset_class=expected.get("asset_class"),
            order_type=expected.get("order_type"), multiple_trades=multiple, **spans,
        )
    except ValidationError as err:
        failures[f"invalid:{err.errors()[0]['loc'][0] if err.errors()[0]['loc'] else 'extraction'}"] += 1
        return None
    if any(s is not None and _UNENCODABLE.search(s) for s in spans.values()):
        failures["unencodable_span"] += 1
        return None
    wrong = check_target(extraction, record)
    if wrong:
        failures[f"mismatch:{wrong[0]}"] += 1
        return None
    return extraction


def build_targets(records: list[dict]) -> tuple[list[tuple[dict, Extraction]], Counter]:
    """(record, target) for every record that has one, and the counted reasons for those that do not."""
    failures: Counter = Counter()
    pairs = []
    for record in records:
        target = extraction_for(record, failures)
        if target is not None:
            pairs.append((record, target))
    return pairs, failures
