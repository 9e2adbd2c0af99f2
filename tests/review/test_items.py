"""Review records as the desk shows them: decoding, reasons in words, highlighted spans."""

from __future__ import annotations

import pytest

from schemas import ChatMessage, LowConfidence, Reason, SourcePosition, Trade
from streamer.parsing.confidence import disagreements
from streamer.review.items import copied_spans, describe_reason, highlighted_html, read_item

HERE = SourcePosition(topic="trades.review", partition=2, offset=40)


@pytest.mark.parametrize("raw, error", [
    (b"\xff\xfe", "not UTF-8 (invalid start byte at byte 0)"),
    (b"{not json", "not JSON"),
    (b'{"kind": "trade", "intent": "order"}', "not a LowConfidence record"),
    (b"", "not JSON"),
])
def test_a_bad_record_becomes_a_malformed_item_not_an_exception(raw, error):
    item = read_item(raw, HERE)
    assert item.malformed and error in item.error
    assert (item.id, item.raw, item.reason_codes) == ("trades.review/2/40", raw, ["malformed"])


def rules_reason(model, rules):
    (reason,) = disagreements({"tenor": model}, {"tenor": rules})
    return reason


@pytest.mark.parametrize("reason, words", [
    (rules_reason(None, "1M"), "rules read tenor as 1M, model left it empty"),
    (rules_reason("1M", None), "model read tenor as 1M, rules found none"),
    (rules_reason("2W", "1M"), "rules read tenor as 1M, model as 2W"),
    (Reason(code="low_confidence", field="asset_class", detail="p=0.31 < 0.50"),
     "the model is unsure of asset class (p=0.31 < 0.50)"),
    (Reason(code="missing_required_field", field="symbol", detail="order needs symbol"),
     "symbol is missing (order needs symbol)"),
    (Reason(code="instruction_like", detail="override: 'ignore previous instructions'"),
     "the message reads like instructions to the parser (override: 'ignore previous instructions')"),
    (Reason(code="limit_exceeded", field="quantity", detail="fx max_quantity 1e9"),
     "over a pre-trade limit (fx max_quantity 1e9)"),
    (Reason(code="models_disagree", field="side", detail="model 'buy', smollm2-135m-trades-v10a 'sell'"),
     "second model read side as sell, model as buy"),
    (Reason(code="models_disagree", field="tenor", detail="model None, smollm2-135m-trades-v10a '1M'"),
     "second model read tenor as 1M, model left it empty"),
    (Reason(code="models_disagree", detail="smollm2-135m-trades-v10a wrote no readable output"),
     "the second model reads a field differently (smollm2-135m-trades-v10a wrote no readable output)"),
])
def test_reasons_in_words(reason, words):
    assert describe_reason(reason) == words


@pytest.mark.parametrize("text, spans, html", [
    ("buy 10m cable", {"quantity": "10m", "symbol": "cable"},
     'buy <mark title="quantity">10m</mark> <mark title="symbol">cable</mark>'),
    ("<b>buy</b> 5 BTC", {"symbol": "btc"}, '&lt;b&gt;buy&lt;/b&gt; 5 <mark title="symbol">BTC</mark>'),
    ("sell 2m", {"quantity": "2m", "tenor": "2m"}, 'sell <mark title="quantity">2m</mark>'),  # overlaps once
    ("sell 2m", {"symbol": "eurusd"}, "sell 2m"),
])
def test_highlighting_marks_spans_and_escapes_the_rest(text, spans, html):
    assert highlighted_html(text, spans) == html


def test_copied_spans_are_found_in_the_message():
    message = ChatMessage(text="buy 10m cable 1w", sender="ann")
    trade = Trade(intent="order", side="buy", asset_class="fx_forward", symbol="GBPUSD", quantity=1e7,
                  currency="GBP", tenor="1W", confidence=0.3)
    flagged = LowConfidence(message_id=message.message_id, message=message, trade=trade, confidence=0.3,
                            reasons=[Reason(code="low_confidence", field="tenor")])
    assert copied_spans(flagged) == {"symbol": "cable", "quantity": "10m", "tenor": "1w"}
