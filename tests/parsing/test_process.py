"""The parser process: a native crash in the parser costs one message, not the caller.

The stand-in parser (`tests/standin_parser.py`) kills its own process the way
llama.cpp does on a bad instruction; one test runs the real model through it.
"""

from __future__ import annotations

import pytest
from standin_parser import CRASHING_AT_LOAD, FACTORY

from schemas import ChatMessage, SourcePosition
from streamer.parsing.process import ParserCrashed, ParserProcess, ParserUnavailable
from streamer.settings import Settings


@pytest.fixture
def standin(tmp_path):
    with ParserProcess(Settings(parser_factory=FACTORY, data_dir=tmp_path)) as parser:
        yield parser


def test_results_come_back_from_the_child(standin):
    source = SourcePosition(topic="chat.raw", partition=1, offset=7)
    result = standin.parse(ChatMessage(text="hello"), source)
    assert (result.kind, result.message_id, result.source) == ("trade", ChatMessage(text="hello").message_id, source)
    assert standin.restarts == 0 and standin.description.startswith("StandInParser (parser process ")


@pytest.mark.parametrize("max_parse_crashes", [1, 2, 3])
def test_a_poison_message_raises_after_max_parse_crashes_and_the_next_one_parses(tmp_path, max_parse_crashes):
    settings = Settings(parser_factory=FACTORY, data_dir=tmp_path, max_parse_crashes=max_parse_crashes)
    with ParserProcess(settings) as parser:
        with pytest.raises(ParserCrashed, match=f"killed by SIGILL .* on each of {max_parse_crashes} attempts") as err:
            parser.parse(ChatMessage(text="CRASH buy 10m cable"))
        assert err.value.attempts == max_parse_crashes
        assert parser.restarts == max_parse_crashes
        assert parser.parse(ChatMessage(text="buy 10m cable")).kind == "trade"


def test_a_message_that_crashes_once_is_parsed_on_the_second_attempt(standin):
    assert standin.parse(ChatMessage(text="CRASH-ONCE sell 5m fiber")).kind == "trade"
    assert standin.restarts == 1


def test_an_exception_in_the_parser_is_raised_to_the_caller(standin):
    with pytest.raises(KeyError, match="a parser bug"):
        standin.parse(ChatMessage(text="FAIL"))
    assert standin.restarts == 0 and standin.parse(ChatMessage(text="ok")).kind == "trade"


@pytest.mark.parametrize("factory, words", [
    (CRASHING_AT_LOAD, "parser process was killed by SIGILL .* while loading the model; .*Illegal instruction"),
    ("standin_parser:no_such_factory", "cannot be imported"),
    ("no_such_module:build", "cannot be imported"),
])
def test_a_parser_that_cannot_start_is_unavailable(tmp_path, factory, words):
    with pytest.raises(ParserUnavailable, match=words):
        ParserProcess(Settings(parser_factory=factory, data_dir=tmp_path))


@pytest.mark.integration
def test_the_real_model_in_the_process_parses_as_in_this_one(default_parser, default_settings):
    message = ChatMessage(text="buy 10m cable 1w @ 1.2710", message_id="m")
    with ParserProcess(default_settings) as parser:
        isolated = parser.parse(message)
        assert "llama.cpp extra CPU buffer types" in parser.description
    assert isolated.model_dump(exclude={"provenance"}) == default_parser.parse(message).model_dump(exclude={"provenance"})


def test_a_batch_with_a_poison_message_costs_only_that_message(standin):
    texts = ["buy 1m cable", "CRASH sell 2m fiber", "FAIL", "buy 3m aussie"]
    results = standin.parse_batch([ChatMessage(text=t) for t in texts])
    assert [type(r).__name__ for r in results] == ["Trade", "ParserCrashed", "KeyError", "Trade"]
    assert [r.message_id for r in (results[0], results[3])] == [ChatMessage(text=t).message_id for t in texts[::3]]
    # one death on the batch, then the poison message alone max_parse_crashes times
    assert standin.restarts == 1 + standin.settings.max_parse_crashes
