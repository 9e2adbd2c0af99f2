"""Deterministic parts of confidence: the rules cross-check."""

from __future__ import annotations

import pytest

from streamer.parsing.confidence import disagreements

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
