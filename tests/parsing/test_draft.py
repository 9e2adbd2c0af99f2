"""The template guess behind verified jump-forward: where the output is, and how it most likely goes on."""

from __future__ import annotations

import pytest

from streamer.parsing.draft import Draft
from streamer.parsing.grammar import Extraction

SYMBOL_DONE = '{"intent":"order","side":"buy","asset_class":"equity","symbol":"AAPL"'
ALL_BUT_LAST = '{"intent":"order","side":null,"asset_class":null,"symbol":null,"quantity":null,"currency":null,' \
               '"price":null,"bid":null,"ask":null,"order_type":null,"tenor":null,"counterparty":null'


@pytest.mark.parametrize("output, text, checked", [
    ("", '{"intent', 0),                                     # up to the key's closing quote: `":` or `":"` is the model's
    ('{"int', "ent", 0),
    ('{"intent', "", 0),
    ('{"intent":"', "", 0),                                  # which intent is the model's call
    ('{"intent":"or', 'der","side', 0),                      # only one intent starts so: forced
    ('{"intent":"order', '","side', 0),
    ('{"intent":"order"', ',"side', 0),
    ('{"intent":"order","', "side", 0),
    ('{"intent":"order","side":', 'null,"asset_class', 4),  # `":` without a quote: the empty value, a guess
    ('{"intent":"order","side":"', "", 0),
    ('{"intent":"order","side":nu', 'll,"asset_class', 0),
    ('{"intent":"order","side":"b', 'uy","asset_class', 0),
    ('{"intent":"order","side":"buy","asset_class":"fx_', "", 0),   # four asset classes start so
    ('{"intent":"order","side":"buy","asset_class":"equity","symbol":"AA', "", 0),  # a span ends where the model says
    (SYMBOL_DONE, ',"quantity', 0),
    (SYMBOL_DONE + ',"quantity":"1', "", 0),
    (ALL_BUT_LAST + ',"multiple_trades":', "false}", 5),
    (ALL_BUT_LAST + ',"multiple_trades":t', "rue}", 0),
    (ALL_BUT_LAST + ',"multiple_trades":false', "}", 0),
    (ALL_BUT_LAST + ',"multiple_trades":false}', "", 0),
    ('{"intent":"order","sidx', "", 0),                      # off the template: no guess
    ('["', "", 0),
])
def test_guess_runs_to_where_the_model_chooses_and_marks_what_it_must_confirm(output, text, checked):
    assert Draft().guess(output) == (text, checked)


def test_guesses_alone_write_a_whole_output_once_each_value_is_chosen():
    """Following the guesses, with the model's choices at the key ends, gives a valid output."""
    draft, output = Draft(), ""
    choices = iter(['":"rf', '":', '":', '":', '":', '":', '":', '":', '":', '":', '":', '":', '":', '":'])
    for _ in range(40):
        output += draft.guess(output).text or next(choices)
        if output.endswith("}"):
            break
    assert Extraction.model_validate_json(output).intent == "rfq"
