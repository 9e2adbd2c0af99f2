"""The second opinion: a second adapter reads every message, and the fields the two read differently go to review."""

from pathlib import Path

import pytest

from schemas import CONTRACT_FIELDS, LowConfidence
from streamer.parsing import ModelLoadError, Parser
from streamer.parsing.confidence import same_value
from streamer.parsing.model import (
    BUNDLED_ADAPTER,
    BUNDLED_MODEL_FILE,
    BUNDLED_SECOND_ADAPTER,
    resolve_second_opinion_path,
)
from streamer.settings import Settings

# written for this test: exit phrasing, terse upper case, a quote, chatter
MESSAGES = ["take me out of the 3k MSFT, long from friday", "get me square in aussie, short 12", "SELL EURJPY 25 3W",
            "ust 5y 99-12/99-14 in 20mm", "coffee anyone?", "bid 40 cable 1.2655"]


@pytest.mark.parametrize("choice, model_name, expected", [
    ("bundled", BUNDLED_MODEL_FILE, BUNDLED_SECOND_ADAPTER),
    ("bundled", "llama-2-7b-chat.Q4_K_M.gguf", None),       # the shipped adapter fits the bundled model only
    ("none", BUNDLED_MODEL_FILE, None),
    ("off", BUNDLED_MODEL_FILE, None),
    ("", BUNDLED_MODEL_FILE, None),
    ("/models/other.gguf", BUNDLED_MODEL_FILE, Path("/models/other.gguf")),
])
def test_which_second_opinion(choice, model_name, expected):
    assert resolve_second_opinion_path(Settings(second_opinion=choice), Path("/m") / model_name) == expected


def test_the_shipped_second_adapter_is_another_adapter():
    assert BUNDLED_SECOND_ADAPTER.is_file()
    assert BUNDLED_SECOND_ADAPTER.read_bytes() != BUNDLED_ADAPTER.read_bytes()


@pytest.mark.integration
def test_a_missing_second_adapter_is_one_line(tmp_path):
    with pytest.raises(ModelLoadError, match="second-opinion adapter file not found") as caught:
        Parser(Settings(n_threads=2, second_opinion=str(tmp_path / "nope.gguf")))
    assert "\n" not in str(caught.value)


@pytest.mark.integration
def test_flags_exactly_the_fields_the_two_adapters_read_differently(default_parser):
    """Each adapter alone, then together: the reasons name the fields where the two alone differ, no more, no fewer."""
    assert default_parser.second is not None, "the default configuration has a second opinion"
    alone = Settings(n_threads=2, second_opinion="none")
    main = Parser(alone)
    second = Parser(alone.model_copy(update={"adapter_path": str(BUNDLED_SECOND_ADAPTER)}))
    try:
        for text in MESSAGES:
            ours, theirs = main.parse(text), second.parse(text)
            ours_fields = (ours.trade if isinstance(ours, LowConfidence) else ours).model_dump()
            theirs_fields = (theirs.trade if isinstance(theirs, LowConfidence) else theirs).model_dump()
            if ours_fields["intent"] != theirs_fields["intent"]:
                differ = ["intent"]
            else:
                differ = [f for f in CONTRACT_FIELDS if not same_value(ours_fields[f], theirs_fields[f])]
            both = default_parser.parse(text)
            flagged = [r.field for r in both.reasons if r.code == "models_disagree"] if isinstance(both, LowConfidence) else []
            other_reasons = {r.field for r in getattr(both, "reasons", []) if r.code != "models_disagree"}
            assert flagged == [f for f in differ if f not in other_reasons], text  # a field keeps its first reason
            assert (both.trade if isinstance(both, LowConfidence) else both).model_dump()["side"] == ours_fields["side"]
            assert (both.provenance.second_opinion, ours.provenance.second_opinion) == ("smollm2-135m-trades-v10a", None)
    finally:
        main.close()
        second.close()


@pytest.mark.integration
def test_one_adapter_as_its_own_second_opinion_never_disagrees():
    parser = Parser(Settings(n_threads=2, second_opinion=str(BUNDLED_ADAPTER)))
    try:
        for result in parser.parse_batch(MESSAGES):
            assert not any(r.code == "models_disagree" for r in getattr(result, "reasons", [])), result
    finally:
        parser.close()
