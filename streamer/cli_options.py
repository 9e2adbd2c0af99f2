"""What the `streamer` subcommands share: model options, settings, parser loading, message input.

Kept apart from cli.py so a command module can import it without importing
the command group that registers it (no import cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import IO, Iterator, get_args

import click
import orjson
from pydantic import ValidationError

from schemas import ChatMessage
from streamer.settings import CpuExtraBuffers, CrossCheckScope, Settings


def model_options(fn):
    """Options shared by every command that loads the parser."""
    for decorator in reversed([
        click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="GGUF model file (default: bundled SmolLM2-135M; env STREAMER_MODEL_PATH)."),
        click.option("--adapter", "adapter_path", default=None,
                     help="GGUF LoRA adapter path, 'bundled' or 'none' (env STREAMER_ADAPTER_PATH)."),
        click.option("--prompt-version", default=None, help="Force a prompt version (fewshot-v1, tuned-v1)."),
        click.option("--threshold", "confidence_threshold", type=float, default=None,
                     help="Confidence below which results go to review."),
        click.option("--cross-check/--no-cross-check", "rules_cross_check", default=None,
                     help="Review results the rule-based parser reads differently (default on; env STREAMER_RULES_CROSS_CHECK)."),
        click.option("--cross-check-scope", type=click.Choice(get_args(CrossCheckScope)), default=None,
                     help="Which disagreements go to review: 'omissions' (rules find a value the model left "
                          "empty; default) or 'all'."),
        click.option("--cross-check-trust", type=float, default=None,
                     help="Model confidence at which a field the rules read differently still passes (default: "
                          "never; 0.99 fits gold dev)."),
        click.option("--n-gpu-layers", type=int, default=None, help="Layers to offload to a GPU (-1 = all)."),
        click.option("--cpu-extra-buffers", type=click.Choice(get_args(CpuExtraBuffers)), default=None,
                     help="llama.cpp's extra CPU weight buffers (repacking, AMX): 'auto' (default) turns them off "
                          "on CPUs with AMX, where llama.cpp crashes with SIGILL (env STREAMER_CPU_EXTRA_BUFFERS)."),
        click.option("--n-threads", type=int, default=None, help="CPU threads for llama.cpp."),
    ]):
        fn = decorator(fn)
    return fn


def settings_from(**overrides) -> Settings:
    """Environment settings with the CLI flags that were given laid on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def load_parser(settings: Settings):
    from streamer.parsing import ModelLoadError, Parser

    try:
        return Parser(settings)
    except (ModelLoadError, ValueError) as err:
        raise click.ClickException(str(err)) from None


def start_parser_process(settings: Settings):
    """The workers' parser: the model in a supervised child process (`streamer/parsing/process.py`)."""
    from streamer.parsing.process import ParserProcess, ParserUnavailable

    try:
        return ParserProcess(settings)
    except ParserUnavailable as err:
        raise click.ClickException(str(err)) from None


def dumps(record) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


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


def stderr_console():
    """Progress and notes go to stderr, so stdout stays the data."""
    from rich.console import Console

    return Console(stderr=True)
