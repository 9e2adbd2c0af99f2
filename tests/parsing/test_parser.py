"""The parser through the real bundled model and the real llama.cpp."""

import math

import pytest

from schemas import ChatMessage, LowConfidence, Trade
from streamer.parsing import ParseError

pytestmark = pytest.mark.integration

MESSAGES = ["buy 10m eurusd 1w @ 1.0850", "2 way in 50 usdjpy 6m pls", "sell 200 AAPL lmt 187.5", "morning all"]


@pytest.mark.parametrize("text", MESSAGES)
def test_result_is_contract_valid(default_parser, text):
    result = default_parser.parse(ChatMessage(text=text))
    assert isinstance(result, (Trade, LowConfidence))
    again = type(result).model_validate_json(result.to_json())
    assert again == result
    assert 0.0 <= result.confidence <= 1.0
    assert result.provenance.model_sha256 and len(result.provenance.model_sha256) == 64
    assert result.provenance.generated_tokens > 0


@pytest.mark.parametrize("which", ["base_parser", "default_parser"])
def test_prompt_prefix_comes_from_the_kv_cache(request, which):
    """Per message llama.cpp evaluates about the message's own tokens, not the whole prompt."""
    parser = request.getfixturevalue(which)
    llm = parser.model.llm
    for text in MESSAGES:
        result = parser.parse(text)
        own = len(llm.tokenize(text.encode(), add_bos=False, special=False)) + len(parser.tokens.suffix)
        assert result.provenance.prompt_tokens_evaluated <= own + 1


def test_few_shot_prefix_is_long_but_not_re_evaluated(base_parser):
    """The few-shot prompt is hundreds of tokens; a message costs a few dozen."""
    assert base_parser.prompt_version == "fewshot-v1" and base_parser.prefix_token_count > 300
    result = base_parser.parse(MESSAGES[0])
    assert result.provenance.prompt_tokens_evaluated < base_parser.prefix_token_count / 10


def test_message_longer_than_context_is_refused(default_parser):
    with pytest.raises(ParseError, match="exceeds n_ctx"):
        default_parser.parse("buy 10m cable " * 2000)


@pytest.mark.parametrize("output, code", [
    (b'{"intent":"order","side":"buy"', "invalid_model_output"),
    (b'{"intent":"order","side":"buy","asset_class":"fx_spot","symbol":"euros","quantity":"10m","currency":null,'
     b'"price":null,"bid":null,"ask":null,"order_type":null,"tenor":null,"counterparty":null,"multiple_trades":false}',
     "ungrounded_span"),
    (b'{"intent":"order","side":"buy","asset_class":"fx_spot","symbol":"cable","quantity":null,"currency":null,'
     b'"price":null,"bid":null,"ask":null,"order_type":null,"tenor":null,"counterparty":null,"multiple_trades":false}',
     "missing_required_field"),
    (b'{"intent":"order","side":"buy","asset_class":"fx_spot","symbol":"cable","quantity":"10m","currency":null,'
     b'"price":null,"bid":null,"ask":null,"order_type":null,"tenor":null,"counterparty":null,"multiple_trades":true}',
     "multiple_trades"),
])
def test_doubtful_output_goes_to_review(default_parser, output, code):
    """The decision stage, fed model outputs that must be flagged (all tokens certain)."""
    ranges = [(i, i + 1) for i in range(len(output))]
    result = default_parser._decide(ChatMessage(text="buy 10m cable"), output, ranges, [0.0] * len(ranges),
                                    None, None)
    assert isinstance(result, LowConfidence)
    assert code in {r.code for r in result.reasons}


def test_certain_grounded_output_is_a_trade(default_parser):
    output = (b'{"intent":"order","side":"buy","asset_class":"fx_forward","symbol":"cable","quantity":"10m",'
              b'"currency":null,"price":"1.2710","bid":null,"ask":null,"order_type":null,"tenor":"1w",'
              b'"counterparty":null,"multiple_trades":false}')
    ranges = [(i, i + 1) for i in range(len(output))]
    result = default_parser._decide(ChatMessage(text="buy 10m cable 1w @ 1.2710"), output, ranges,
                                    [0.0] * len(ranges), None, None)
    assert isinstance(result, Trade)
    assert (result.symbol, result.quantity, result.currency, result.tenor) == ("GBPUSD", 1e7, "GBP", "1W")
    assert result.confidence == 1.0


# The model (all tokens certain) misses the price the rules see: a second opinion sends it to review.
_MISSED_PRICE = (b'{"intent":"order","side":"buy","asset_class":"fx_forward","symbol":"cable","quantity":"10m",'
                 b'"currency":null,"price":null,"bid":null,"ask":null,"order_type":null,"tenor":"1w",'
                 b'"counterparty":null,"multiple_trades":false}')


@pytest.mark.parametrize("cross_check, trust, token_probability, kind", [
    (True, None, 1.0, "low_confidence"),  # default: an omission (the rules see a price) goes to review
    (True, 0.99, 0.95, "low_confidence"),  # the model is fairly sure, the rules differ: review
    (True, 0.99, 1.0, "trade"),            # the model is certain: the disagreement is overruled
    (False, None, 0.95, "trade"),
])
def test_rules_cross_check_reviews_what_the_rules_read_differently(default_parser, monkeypatch, cross_check, trust,
                                                                    token_probability, kind):
    monkeypatch.setattr(default_parser.settings, "rules_cross_check", cross_check)
    monkeypatch.setattr(default_parser.settings, "cross_check_trust", trust)
    ranges = [(i, i + 1) for i in range(len(_MISSED_PRICE))]
    result = default_parser._decide(ChatMessage(text="buy 10m cable 1w @ 1.2710"), _MISSED_PRICE, ranges,
                                    [math.log(token_probability)] * len(ranges), None, None)
    assert result.kind == kind
    if kind == "low_confidence":
        assert [(r.code, r.field) for r in result.reasons] == [("rules_disagree", "price")]
        assert result.trade.field_confidence["price"] == 0.0 and result.trade.price is None


@pytest.mark.parametrize("change, differ", [
    ({"adapter_path": "none"}, "adapter_path"),
    ({"max_tokens": 10, "n_ctx": 512}, "n_ctx, max_tokens"),
])
def test_only_parsers_that_generate_alike_share_generations(default_parser, change, differ):
    settings = default_parser.settings.model_copy(update=change)
    with pytest.raises(ValueError, match=f"{differ} differ"):
        default_parser.sharing_generations(settings)


def test_an_adapter_without_its_card_is_warned_about(default_parser, tmp_path, caplog):
    """A copied adapter.gguf without adapter.json gets the few-shot prompt: say so, or it scores like the base model."""
    import dataclasses

    from streamer.parsing import Parser

    cardless = dataclasses.replace(default_parser.model, adapter=tmp_path / "copied.gguf", adapter_card={})
    with caplog.at_level("WARNING", logger="streamer.parsing.parser"):
        parser = Parser(default_parser.settings, model=cardless)
    assert parser.prompt_version == "fewshot-v1"
    assert "copied.json" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="streamer.parsing.parser"):
        Parser(default_parser.settings, model=default_parser.model)
    assert caplog.text == ""
