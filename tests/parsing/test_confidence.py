"""Deterministic parts of confidence: the rules cross-check and when it counts."""

from __future__ import annotations

import pytest

from streamer.parsing.confidence import disagreements, doubted

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


@pytest.mark.parametrize("scores, trust, already, doubted_fields", [
    ({"price": 0.80, "side": 0.999}, 0.99, set(), ["price"]),          # sure of the side: the rules are overruled
    ({"price": 0.99, "side": 0.99}, 0.99, set(), []),                  # at the trust level passes
    ({"price": 1.0, "side": 1.0}, None, set(), ["side", "price"]),     # no trust: every disagreement counts
    ({"price": 0.2, "side": 0.2}, 0.99, {"price"}, ["side"]),          # a failed field keeps its first reason
    ({"side": 0.999}, 0.99, set(), ["price"]),                         # unscored field: no confidence to trust
])
def test_doubted(scores, trust, already, doubted_fields):
    reasons = disagreements(ORDER, {**ORDER, "price": None, "side": "sell"})
    assert [r.field for r in doubted(reasons, scores, trust, already)] == doubted_fields
