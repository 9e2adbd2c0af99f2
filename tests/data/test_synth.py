"""The synthetic generator: deterministic, valid against the contract, spans grounded, varied."""

from __future__ import annotations

import re
from collections import Counter
from datetime import date, datetime, timedelta

import pytest

from schemas import ASSET_CLASSES, CONTRACT_FIELDS, INTENTS, TradeFields
from streamer.data.synth import (
    SPAN_FIELDS, TEMPLATES, next_date_on_or_after, sample_template, synthesize, templates_for,
)

N = 2000


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return synthesize(N, seed=11)


@pytest.fixture(scope="module")
def texts(records) -> str:
    return "\n".join(r["text"] for r in records)


def test_same_seed_same_records():
    assert synthesize(300, seed=5) == synthesize(300, seed=5)


def test_other_seed_other_records():
    assert [r["text"] for r in synthesize(50, seed=5)] != [r["text"] for r in synthesize(50, seed=6)]


def test_shorter_run_is_a_prefix():
    assert synthesize(40, seed=3) == synthesize(120, seed=3)[:40]


def test_record_shape(records):
    for i, record in enumerate(records):
        assert set(record) == {"id", "text", "expected", "spans", "timestamp"}
        assert record["id"] == f"s11-{i}"
        assert set(record["expected"]) == set(CONTRACT_FIELDS)
        assert set(record["spans"]) == set(SPAN_FIELDS)
        assert datetime.fromisoformat(record["timestamp"]).tzinfo is not None
        assert record["text"] == record["text"].strip() and "  " not in record["text"]


def test_every_record_validates_against_the_contract(records):
    for record in records:
        TradeFields(**record["expected"])


def test_every_span_is_a_substring_of_the_text(records):
    for record in records:
        for name, span in record["spans"].items():
            assert span is None or (span and span in record["text"]), (name, span, record["text"])


def test_intent_none_has_no_other_field(records):
    nones = [r for r in records if r["expected"]["intent"] == "none"]
    assert nones
    for record in nones:
        assert all(v is None for k, v in record["expected"].items() if k != "intent"), record
        assert all(v is None for v in record["spans"].values()), record


def test_a_span_exists_exactly_when_its_field_has_a_value(records):
    """FX currency is the exception: the pair's base, with nothing copied from the text."""
    for record in records:
        expected, spans = record["expected"], record["spans"]
        for name in SPAN_FIELDS:
            if name == "currency" and expected["asset_class"] and expected["asset_class"].startswith("fx_"):
                assert expected["currency"] == expected["symbol"][:3]
                continue
            assert (spans[name] is None) == (expected[name] is None), (name, record)


def test_counterparty_is_as_written(records):
    for record in records:
        assert record["expected"]["counterparty"] == record["spans"]["counterparty"]


@pytest.mark.parametrize("intent", INTENTS)
def test_covers_every_intent(records, intent):
    assert sum(r["expected"]["intent"] == intent for r in records) >= 0.05 * N


@pytest.mark.parametrize("asset_class", ASSET_CLASSES)
def test_covers_every_asset_class(records, asset_class):
    assert sum(r["expected"]["asset_class"] == asset_class for r in records) >= 0.02 * N


def test_fx_is_about_half_of_trades(records):
    classes = Counter(r["expected"]["asset_class"] for r in records if r["expected"]["asset_class"])
    fx = sum(n for c, n in classes.items() if c.startswith("fx_"))
    assert 0.4 <= fx / sum(classes.values()) <= 0.6


@pytest.mark.parametrize("side", ["buy", "sell", "two_way"])
def test_covers_every_side(records, side):
    assert any(r["expected"]["side"] == side for r in records)


@pytest.mark.parametrize("order_type", ["market", "limit", "stop"])
def test_covers_every_order_type(records, order_type):
    assert any(r["expected"]["order_type"] == order_type for r in records)


def test_phrasings_are_many():
    assert len({t.pattern for t in TEMPLATES}) >= 60
    assert len({t.lang for t in TEMPLATES}) == 4


@pytest.mark.parametrize("intent", [i for i in INTENTS if i != "none"])
@pytest.mark.parametrize("asset_class", ASSET_CLASSES)
def test_every_intent_can_be_phrased_for_every_asset_class(intent, asset_class):
    assert templates_for(intent, asset_class)


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: f"{t.intent}-{t.lang}-{t.pattern[:40]}")
def test_every_template_renders_valid_grounded_records(template):
    for record in sample_template(template, n=6, seed=2):
        TradeFields(**record["expected"])
        assert record["expected"]["intent"] == template.intent
        for span in record["spans"].values():
            assert span is None or span in record["text"]


# What the hand-written chat the model will meet looks like: each must occur in the data.
@pytest.mark.parametrize("feature, pattern", [
    ("slang cable", r"\bcable\b"), ("slang fiber", r"\bfib(er|re)\b"), ("slang swissy", r"\bswiss(y|ie)\b"),
    ("slang aussie", r"\baussie\b"), ("slang kiwi", r"\bkiwi\b"), ("slang loonie", r"\bloonie\b"),
    ("dollar yen", r"\bdollar[ -]yen\b"), ("euro yen", r"\beuro yen\b"),
    ("pair with slash", r"\b[a-z]{3}/[a-z]{3}\b"), ("pair upper", r"\b(EURUSD|GBPUSD|USDJPY)\b"),
    ("pair with space", r"\b(eur usd|gbp usd|usd jpy)\b"),
    ("mine", r"\bmine\b"), ("yours", r"\byours\b"), ("lift", r"\blift\b"), ("hit", r"\bhit\b"),
    ("given", r"\bgiven\b"), ("paid", r"\bpaid\b"), ("bid N at", r"\bbid \d\S* .* at \d"),
    ("offer N at", r"\boffer \d\S* .* at \d"), ("pay", r"\bpay\b"), ("receive", r"\b(receive|rec)\b"),
    ("10mm", r"\b\d+mm\b"), ("mio", r"\b\d+ mio\b"), ("bucks", r"\b\d+ bucks\b"), ("millions", r"\b\d+ millions\b"),
    ("yard", r"\b\d yards?\b"), ("bn", r"\b\d(\.\d)? ?bn\b"), ("thousands k", r"\b\d+k\b"),
    ("comma thousands", r"\b\d{1,3},\d{3}\b"), ("decimal millions", r"\b\d\.\dm"),
    ("spot", r"\bspo?t\b"), ("tom", r"\btom\b"), ("tn", r"\bt/?n\b"), ("o/n", r"\bo/n\b"), ("1w", r"\b\dw\b"),
    ("weeks", r"\b\d weeks\b"), ("mth", r"\b\d+mth\b"), ("years", r"\b\d+(y|yr)\b"),
    ("day month", r"\b\d{1,2} (jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)\b"),
    ("month ordinal", r"\b(jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec) \d{1,2}(st|nd|rd|th)\b"),
    ("iso date", r"\b20\d\d-\d\d-\d\d\b"), ("kilo price", r"\b\d+(\.\d)?k\b"), ("32nds", r"\b\d{2,3}-\d{2}\b"),
    ("32nds plus", r"\b\d{2,3}-\d{2}\+"), ("short quote", r"\d\.\d{2,4}/\d{2}\b"),
    ("lmt", r"\blmt\b"), ("limit", r"\blimit\b"), ("mkt", r"\bmkt\b"), ("at best", r"\bat best\b"),
    ("stop", r"\bstop\b"), ("for counterparty", r"\bfor (Citi|GS|JPM|HSBC|Barclays|UBS)\b"),
    ("w/ counterparty", r"\bw/ \w"), ("client:", r"\bclient: \w"),
    ("pls", r"\bpls\b"), ("thx", r"\bthx\b"), ("question", r"\?$"), ("bang", r"!!$"),
    ("french", r"\b(achète|vends)\b"), ("spanish", r"\b(compra|vendo)\b"), ("german", r"\b(kaufe|verkaufe)\b"),
    ("swap legs", r"\b(spot|sn|tom|tn|1w|1m|3m|6m)/\d"), ("option", r"\b(call|put|straddle|rr)\b"),
    ("strike only", r"\bstrike (px|2|two)"), ("vol only", r"\bvol\b"), ("cancel/replace", r"\b(cxl|cancel)/replace\b"),
    ("roll", r"\broll\b"), ("2w = two-way", r"^2w (px|in)\b"), ("against", r"\bagainst\b"),
    ("crypto vs", r"\b(btc|eth|sol|xrp|doge|ada|avax|link) vs\b"), ("dollar crypto", r"\$\d+(\.\d)?m\b"),
    ("coupon fraction", r"\bt \d \d/8\b"), ("eurex apart", r"\bfgb[lm] [a-z]\d\b"), ("xau", r"\bxa[ug]usd\b"),
    ("dash quote", r"\b\d\.\d{4}-\d{2}\b"), ("spanish chatter", r"\balguien\b"),
])
def test_phrasing_feature_occurs(texts, feature, pattern):
    flags = 0 if re.search(r"[A-Z]", pattern) else re.IGNORECASE
    assert re.search(pattern, texts, flags | re.MULTILINE), feature


@pytest.mark.parametrize("casing", [str.isupper, str.islower, str.istitle])
def test_casing_varies(records, casing):
    assert sum(casing(r["text"]) for r in records if re.search("[a-z]{4}", r["text"].lower())) > 20


def test_emojis_are_rare_but_present(records):
    with_emoji = sum(bool(re.search("[\U0001F300-\U0001FAFF]", r["text"])) for r in records)
    assert 0 < with_emoji < 0.05 * N


def _complete_ask(bid: str, ask: str) -> float:
    """The conventions' short-ask rule, written independently of the generator."""
    if "-" in bid:  # 32nds: '99-16' / '18' or '17+'
        whole = int(bid.split("-")[0])
        ticks = int(ask.rstrip("+")) + (0.5 if ask.endswith("+") else 0)
        return whole + ticks / 32
    places = len(bid.split(".")[1])
    candidate = float(bid[: -len(ask)] + ask)
    if candidate < float(bid):
        candidate += 10 ** -(places - len(ask))
    return candidate


def test_short_asks_complete_from_the_bid(records):
    short = [r for r in records if r["spans"]["ask"] and len(r["spans"]["ask"].rstrip("+")) <= 2]
    assert len(short) > 20
    rolled = 0
    for record in short:
        bid, ask = record["spans"]["bid"], record["spans"]["ask"]
        assert _complete_ask(bid, ask) == pytest.approx(record["expected"]["ask"], abs=1e-9), record
        rolled += "-" not in bid and int(ask) < int(bid[-2:])
    assert rolled, "some quotes should roll the big figure (1.2798/02)"


def test_day_month_dates_resolve_on_or_after_the_message(records):
    dated = [r for r in records if re.fullmatch(r"\d{4}-\d\d-\d\d", r["expected"]["tenor"] or "")]
    assert len(dated) > 10
    for record in dated:
        value = date.fromisoformat(record["expected"]["tenor"])
        sent = datetime.fromisoformat(record["timestamp"]).date()
        assert sent <= value < sent + timedelta(days=366), record
        assert str(value.day) in record["spans"]["tenor"]
        assert record["expected"]["asset_class"] == "fx_forward"


@pytest.mark.parametrize("reference, month, day, expected", [
    (date(2025, 11, 25), 12, 15, date(2025, 12, 15)),
    (date(2025, 12, 16), 12, 15, date(2026, 12, 15)),
    (date(2025, 12, 15), 12, 15, date(2025, 12, 15)),
    (date(2025, 12, 31), 1, 2, date(2026, 1, 2)),
])
def test_next_date_on_or_after(reference, month, day, expected):
    assert next_date_on_or_after(reference, month, day) == expected


def test_labels_agree_with_the_parsers_normalizer(records):
    """The model is trained to copy `spans`; the normalizer must turn them back into `expected`."""
    normalize = pytest.importorskip("streamer.parsing.normalize")
    mismatches = []
    for record in records:
        expected = record["expected"]
        raw = {k: expected[k] for k in ("intent", "side", "asset_class", "order_type")} | record["spans"]
        sent = datetime.fromisoformat(record["timestamp"]).date()
        got = normalize.normalize_extraction(raw, record["text"], sent).fields
        for name in CONTRACT_FIELDS:
            same = (got[name] == pytest.approx(expected[name], rel=1e-12) if isinstance(expected[name], float)
                    else got[name] == expected[name])
            if not same:
                mismatches.append((record["text"], name, expected[name], got[name]))
    assert not mismatches, mismatches[:10]
