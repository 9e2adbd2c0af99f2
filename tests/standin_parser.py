"""A test-only stand-in for the llama.cpp parser, loaded through `parser_factory` in the parser process.

It answers at once, so supervision, crash handling and delivery can be tested
without a model; and it kills its own process the way a native crash in
llama.cpp would, on a marker in the text:

- `CRASH`: SIGILL on every attempt (a poison pill);
- `CRASH-ONCE`: SIGSEGV on the first attempt only (remembered in `data_dir`);
- `FAIL`: raises, as a parser bug would.

Its factory `build_crashing_at_load` dies while "loading the model"; `build_crashing_on_restart`
loads once and dies on every later start.
"""

from __future__ import annotations

import os
import signal

from schemas import ChatMessage, SourcePosition, Trade
from streamer.settings import Settings

FACTORY = "standin_parser:build"
CRASHING_AT_LOAD = "standin_parser:build_crashing_at_load"
CRASHING_ON_RESTART = "standin_parser:build_crashing_on_restart"


class StandInParser:
    def __init__(self, settings: Settings):
        self.settings = settings

    def parse(self, message: ChatMessage, source: SourcePosition | None = None) -> Trade:
        if "CRASH-ONCE" in message.text:
            seen = self.settings.data_dir / f"crashed-once-{message.message_id}"
            if not seen.exists():
                seen.parent.mkdir(parents=True, exist_ok=True)
                seen.touch()
                os.kill(os.getpid(), signal.SIGSEGV)
        elif "CRASH" in message.text:
            os.kill(os.getpid(), signal.SIGILL)
        if "FAIL" in message.text:
            raise KeyError("a parser bug")
        return Trade(intent="none", confidence=1.0, message_id=message.message_id, source=source)


def build(settings: Settings) -> StandInParser:
    return StandInParser(settings)


def build_crashing_at_load(settings: Settings) -> StandInParser:
    os.kill(os.getpid(), signal.SIGILL)
    raise AssertionError("unreachable")


def build_crashing_on_restart(settings: Settings) -> StandInParser:
    """Loads once; every later start (after a crash) dies while loading, as on a machine that cannot run it."""
    started = settings.data_dir / "standin-started"
    if started.exists():
        os.kill(os.getpid(), signal.SIGILL)
    started.parent.mkdir(parents=True, exist_ok=True)
    started.touch()
    return StandInParser(settings)
