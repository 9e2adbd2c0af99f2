"""What the `streamer` subcommands share: model options, settings, parser loading, message input.

Kept apart from cli.py so a command module can import it without importing
the command group that registers it (no import cycle).
"""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import click
import orjson

from streamer.settings import AdapterMerge, CpuExtraBuffers, CrossCheckScope, Settings


def model_options(fn):
    """Options shared by every command that loads the parser."""
    for decorator in reversed([
        click.option("--model", "model_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="GGUF model file (default: bundled SmolLM2-135M; env STREAMER_MODEL_PATH)."),
        click.option("--adapter", "adapter_path", default=None,
                     help="GGUF LoRA adapter path, 'bundled' or 'none' (env STREAMER_ADAPTER_PATH)."),
        click.option("--adapter-merge", type=click.Choice(get_args(AdapterMerge)), default=None,
                     help="Apply the adapter merged into the weights, quantized as this type and cached (default "
                          "q8_0), or 'off' = llama.cpp's runtime LoRA (env STREAMER_ADAPTER_MERGE)."),
        click.option("--prompt-version", default=None, help="Force a prompt version (fewshot-v1, tuned-v1)."),
        click.option("--limits", "limits_path", default=None, metavar="FILE|default|none",
                     help="Pre-trade limits (TOML); a trade over one goes to review (env STREAMER_LIMITS_PATH)."),
        click.option("--threshold", "confidence_threshold", type=float, default=None,
                     help="Confidence below which results go to review."),
        click.option("--cross-check/--no-cross-check", "rules_cross_check", default=None,
                     help="Review results the rule-based parser reads differently (default on; env STREAMER_RULES_CROSS_CHECK)."),
        click.option("--cross-check-scope", type=click.Choice(get_args(CrossCheckScope)), default=None,
                     help="Which disagreements go to review: 'omissions' (rules find a value the model left "
                          "empty; default) or 'all'."),
        click.option("--cross-check-trust", type=float, default=None,
                     help="Model confidence at which a field the rules read differently still passes: fewer flags, "
                          "more silent errors (default: never; see docs/evaluation.md)."),
        click.option("--second-opinion", default=None, metavar="bundled|none|PATH",
                     help="A second adapter that parses every message too; fields it reads differently go to review "
                          "(default bundled; env STREAMER_SECOND_OPINION)."),
        click.option("--n-gpu-layers", type=int, default=None, help="Layers to offload to a GPU (-1 = all)."),
        click.option("--cpu-extra-buffers", type=click.Choice(get_args(CpuExtraBuffers)), default=None,
                     help="llama.cpp's extra CPU weight buffers (repacking, AMX): 'auto' (default) turns them off "
                          "on CPUs with AMX, where llama.cpp crashes with SIGILL (env STREAMER_CPU_EXTRA_BUFFERS)."),
        click.option("--n-threads", type=int, default=None, help="CPU threads for llama.cpp."),
    ]):
        fn = decorator(fn)
    return fn


def broker_option(fn):
    return click.option("--broker", "broker_url", default=None,
                        help="Kafka bootstrap URL, e.g. kafka://localhost:9092 (env STREAMER_BROKER_URL).")(fn)


def settings_from(**overrides) -> Settings:
    """Environment settings with the CLI flags that were given laid on top; a bad value is one line, not a traceback."""
    from pydantic import ValidationError

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as err:
        raise click.ClickException(f"bad setting: {describe_validation_error(err)}") from None


def describe_validation_error(err) -> str:
    """A pydantic ValidationError's first problem as 'name (STREAMER_NAME): message' (values never shown)."""
    first = err.errors()[0]
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a check across several settings names them in its message
        return message
    name = str(first["loc"][0])
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"{name} (STREAMER_{name.upper()}): {message}{more}"


def load_parser(settings: Settings):
    from streamer.parsing import ModelLoadError, Parser

    try:
        return Parser(settings)
    except (ModelLoadError, ValueError) as err:
        raise click.ClickException(str(err)) from None


def dumps(record) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def stderr_console():
    """Progress and notes go to stderr, so stdout stays the data."""
    from rich.console import Console

    return Console(stderr=True)
