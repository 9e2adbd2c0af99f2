"""Parsing core: `Parser(settings).parse(message) -> Trade | LowConfidence`."""

from streamer.parsing.model import ModelLoadError
from streamer.parsing.parser import ParseError, Parser

__all__ = ["ModelLoadError", "ParseError", "Parser"]
