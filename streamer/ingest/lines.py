"""Chat lines as people keep them: plain text, or one `ChatMessage` JSON object per line.

Shared by `streamer parse --file` and `streamer produce`; a bad line is an
error naming `file:line`, never a silent skip.
"""

from __future__ import annotations

from typing import IO, Iterator

import orjson
from pydantic import ValidationError

from schemas import ChatMessage


def read_message_lines(stream: IO[bytes], name: str) -> Iterator[tuple[int, ChatMessage | None, str | None]]:
    """(line number, message, error) for each non-blank line: plain text or ChatMessage JSON."""
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as err:
            yield number, None, f"{name}:{number}: not UTF-8 ({err.reason} at byte {err.start})"
            continue
        if not line.strip():
            continue
        if line.lstrip().startswith("{"):
            try:
                yield number, ChatMessage.model_validate(orjson.loads(line)), None
            except orjson.JSONDecodeError as err:
                yield number, None, f"{name}:{number}: invalid JSON ({str(err).splitlines()[0]})"
            except ValidationError as err:
                first = err.errors()[0]
                where = ".".join(str(p) for p in first["loc"]) or "message"
                yield number, None, f"{name}:{number}: not a ChatMessage ({where}: {first['msg']})"
        else:
            yield number, ChatMessage(text=line, source=name), None
