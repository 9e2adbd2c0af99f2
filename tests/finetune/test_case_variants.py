"""Case variants: UPPER / Title Case copies of training records, their targets rebuilt from the cased text."""

from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner

from streamer.data.synth import cased
from streamer.finetune.targets import build_targets
from streamer.finetune.train import case_variants, cased_record
from streamer.parsing.normalize import SPAN_FIELDS

NULLS = dict.fromkeys(("side", "asset_class", "symbol", "quantity", "currency", "price", "bid", "ask", "order_type",
                       "tenor", "counterparty"))


def record(text: str, spans: dict | None = None, **expected) -> dict:
    made = {"text": text, "expected": {**NULLS, **expected}}
    return made if spans is None else {**made, "spans": {name: spans.get(name) for name in SPAN_FIELDS}}


CABLE = record("buy 10m cable 1w @ 1.2710", intent="order", side="buy", asset_class="fx_forward", symbol="GBPUSD",
               quantity=10_000_000, currency="GBP", price=1.271, tenor="1W")
YEN = record("sell usdjpy 2w", intent="order", side="sell", asset_class="fx_forward", symbol="USDJPY", currency="USD",
             tenor="2W")
GREETING = record("good morning all", intent="none")
SHOUTED = record("BUY 10M CABLE", intent="order", side="buy", asset_class="fx_spot", symbol="GBPUSD",
                 quantity=10_000_000, currency="GBP")  # Title Case leaves it as it is too
DIGITS = record("10 20 30", intent="none")
# Synthetic records carry spans; the counterparty is kept as written, so a cased name no longer matches.
BARCLAYS = record("rec 2y sofr at 3.95 lmt w/ barclays.", intent="order", side="sell", asset_class="rates_swap",
                  symbol="SOFR", price=3.95, order_type="limit", tenor="2Y", counterparty="barclays",
                  spans={"symbol": "sofr", "price": "3.95", "tenor": "2y", "counterparty": "barclays"})
USUAL = record("sell 10 of the usual at mkt", intent="order", side="sell", asset_class="fx_spot", symbol="GBPUSD",
               quantity=10_000_000, currency="GBP", order_type="market")  # no target in any casing
RECORDS = [CABLE, YEN, GREETING, SHOUTED, DIGITS]


def texts(pairs) -> list[str]:
    return [r["text"] for r, _ in pairs]


@pytest.mark.parametrize("records", [RECORDS, [CABLE], []], ids=["five", "one", "none"])
def test_fraction_zero_adds_none(records):
    assert case_variants(records, 0.0, seed=0) == ([], Counter())


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_fraction_one_adds_one_per_record_whose_text_changes(seed):
    pairs, skipped = case_variants(RECORDS, 1.0, seed)
    assert skipped == Counter(unchanged=2)  # SHOUTED and DIGITS
    assert [r["text"].lower() for r, _ in pairs] == [CABLE["text"], YEN["text"], GREETING["text"]]
    for (variant, target), original in zip(pairs, (CABLE, YEN, GREETING)):
        assert variant["text"] in (cased(original["text"], "upper"), cased(original["text"], "title"))
        assert variant["expected"] == original["expected"] and target.intent == original["expected"]["intent"]


# (record, casing, spans the variant's target must hold)
SPANS = [
    (CABLE, "upper", {"symbol": "CABLE", "quantity": "10M", "tenor": "1W", "price": "1.2710"}),
    (CABLE, "title", {"symbol": "Cable", "quantity": "10m", "tenor": "1w", "price": "1.2710"}),
    (YEN, "upper", {"symbol": "USDJPY", "tenor": "2W"}),
    (YEN, "title", {"symbol": "Usdjpy", "tenor": "2w"}),
    (record("buy 10m (cable)", intent="order", side="buy", asset_class="fx_spot", symbol="GBPUSD",
            quantity=10_000_000, currency="GBP", spans={"symbol": "cable", "quantity": "10m"}),
     "title", {"symbol": "cable", "quantity": "10m"}),  # spans cut where they were: "(cable)" stays lower in Title Case
    (record("buy $10mm UST 10Y lmt 99-08", intent="order", side="buy", asset_class="bond", symbol="UST 10Y",
            quantity=10_000_000, currency="USD", price=99.25, order_type="limit",
            spans={"symbol": "UST 10Y", "quantity": "10mm", "currency": "$", "price": "99-08"}),
     "upper", {"symbol": "UST 10Y", "quantity": "10MM", "currency": "$", "price": "99-08"}),
]


@pytest.mark.parametrize("rec, casing, spans", SPANS, ids=[f"{r['text']}-{c}" for r, c, _ in SPANS])
def test_spans_follow_the_new_casing(rec, casing, spans):
    variant = cased_record(rec, casing)
    (built, target), = build_targets([variant])[0]
    assert built["text"] != rec["text"]
    for name, span in spans.items():
        assert getattr(target, name) == span, name
        assert span in built["text"]


def test_every_variant_span_is_in_its_cased_text():
    pairs, _ = case_variants([CABLE, YEN] * 5, 1.0, seed=3)
    assert len(pairs) == 10 and len(set(texts(pairs))) == 4  # both casings picked for both lines
    for variant, target in pairs:
        for name in ("symbol", "quantity", "price", "tenor"):
            span = getattr(target, name)
            assert span is None or span in variant["text"], (variant["text"], name, span)


def test_same_seed_same_variants_other_seed_other_picks():
    records = [record(f"buy {n}m cable", intent="order", side="buy", asset_class="fx_spot", symbol="GBPUSD",
                      quantity=n * 1_000_000, currency="GBP") for n in range(1, 41)]
    first, again, other = (case_variants(records, 0.5, seed) for seed in (5, 5, 6))
    assert texts(first[0]) == texts(again[0]) and len(first[0]) == 20
    assert texts(first[0]) != texts(other[0])
    assert {text.lower() for text in texts(first[0])} < {r["text"] for r in records}


@pytest.mark.parametrize("rec, reason", [
    (BARCLAYS, "mismatch:counterparty"),  # "BARCLAYS" or "Barclays" is not "barclays"
    ({k: v for k, v in BARCLAYS.items() if k != "spans"}, "ungrounded:counterparty"),  # no cased word is "barclays"
    (USUAL, "ungrounded:symbol"),
])
def test_variant_without_a_target_is_skipped_and_counted(rec, reason):
    pairs, skipped = case_variants([rec, CABLE], 1.0, seed=0)
    assert texts(pairs) in ([cased(CABLE["text"], "upper")], [cased(CABLE["text"], "title")])
    assert skipped == Counter({reason: 1})


def test_unchanged_falls_back_to_the_other_casing():
    title = record("Sell Usdjpy 2w", intent="order", side="sell", asset_class="fx_forward", symbol="USDJPY",
                   currency="USD", tenor="2W")
    assert cased_record(title, "title") is None
    for seed in range(4):
        pairs, skipped = case_variants([title], 1.0, seed)
        assert texts(pairs) == ["SELL USDJPY 2W"] and not skipped


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_fraction_outside_zero_to_one_is_refused(fraction):
    with pytest.raises(ValueError, match="between 0 and 1"):
        case_variants(RECORDS, fraction, seed=0)


def test_cli_refuses_a_fraction_above_one(tmp_path):
    from streamer.cli import main

    args = ["finetune", "--train", "t.jsonl", "--dev", "d.jsonl", "--out", str(tmp_path), "--case-variants", "1.5"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2 and "1.5 is not in the range 0<=x<=1" in result.output
