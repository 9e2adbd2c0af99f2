"""Deterministic parts of confidence: the rules cross-check and when it counts."""

from __future__ import annotations

import pytest

from streamer.parsing.confidence import disagreements, doubted, missing_required

ORDER = {"intent": "order", "side": "buy", "asset_class": "fx_spot", "symbol": "GBPUSD", "quantity": 1e7,
         "currency": "GBP", "price": 1.271, "bid": None, "ask": None, "order_type": None, "tenor": None,
         "counterparty": None}


@pytest.mark.parametrize("second, fields", [
    (ORDER, []),
    ({**ORDER, "quantity": 10_000_000}, []),                       # int and float are the same number
    ({**ORDER, "price": 1.2710000000001}, []),                     # within 1e-9 relative
    ({**ORDER, "price": 1.272}, ["price"]),
    ({**ORDER, "price": None}, ["price"]),                         # the rules saw no price
    ({**ORDER, "side": "sell", "order_type": "limit"}, ["side", "order_type"]),
    ({**ORDER, "intent": "rfq", "side": "two_way"}, ["intent"]),   # another intent: one reason, not one per field
    ({"intent": "none"}, ["intent"]),
])
def test_disagreements(second, fields):
    reasons = disagreements(ORDER, second)
    assert [r.field for r in reasons] == fields
    assert all(r.code == "rules_disagree" and r.detail.startswith("model ") for r in reasons)


@pytest.mark.parametrize("code, who, detail", [
    ("rules_disagree", "rules", "model 1.271, rules 1.272"),
    ("models_disagree", "smollm2-135m-trades-v10a", "model 1.271, smollm2-135m-trades-v10a 1.272"),
])
def test_disagreements_name_the_second_opinion(code, who, detail):
    [reason] = disagreements(ORDER, {**ORDER, "price": 1.272}, code, who)
    assert (reason.code, reason.field, reason.detail) == (code, "price", detail)


@pytest.mark.parametrize("scores, trust, already, scope, doubted_fields", [
    ({"price": 0.80, "side": 0.999}, 0.99, set(), "all", ["price"]),        # sure of the side: the rules are overruled
    ({"price": 0.99, "side": 0.99}, 0.99, set(), "all", []),                # at the trust level passes
    ({"price": 1.0, "side": 1.0}, None, set(), "all", ["side", "price"]),   # no trust: every disagreement counts
    ({"price": 0.2, "side": 0.2}, 0.99, {"price"}, "all", ["side"]),        # a failed field keeps its first reason
    ({"side": 0.999}, 0.99, set(), "all", ["price"]),                       # unscored field: no confidence to trust
    ({"price": 1.0, "side": 1.0}, None, set(), "omissions", ["price"]),     # the model left price empty, the rules did not
    ({"price": 0.999, "side": 0.5}, 0.99, set(), "omissions", []),          # trust applies to omissions too
    ({"price": 1.0, "side": 1.0}, None, {"price"}, "omissions", []),
])
def test_doubted(scores, trust, already, scope, doubted_fields):
    model = {**ORDER, "price": None}
    reasons = disagreements(model, {**ORDER, "side": "sell"})
    assert [r.field for r in doubted(reasons, model, scores, trust, already, scope)] == doubted_fields


@pytest.mark.parametrize("second, omissions", [
    ({**ORDER, "intent": "rfq", "side": "two_way"}, []),    # another intent is not an omission
    ({"intent": "none"}, []),
    ({**ORDER, "counterparty": "Citi"}, ["counterparty"]),
    ({**ORDER, "symbol": "EURUSD"}, []),                    # both read a value: not an omission
])
def test_only_omissions_count_by_default(second, omissions):
    reasons = disagreements(ORDER, second)
    assert [r.field for r in doubted(reasons, ORDER, {}, None, set())] == omissions


@pytest.mark.parametrize("intent, values, missing", [
    ("order", {"side": None, "asset_class": "fx_swap", "symbol": "GBPUSD", "quantity": 1e7}, []),  # a roll
    ("order", {"side": None, "asset_class": "fx_spot", "symbol": "GBPUSD", "quantity": 1e7}, ["side"]),
    ("rfq", {"side": "two_way", "asset_class": "bond", "symbol": None}, ["symbol"]),
    ("quote", {"side": "buy", "asset_class": "equity", "symbol": "AAPL"}, ["price"]),
    ("cancel", {}, []),
])
def test_missing_required(intent, values, missing):
    assert [r.field for r in missing_required(intent, values)] == missing
