"""`streamer`: the command line. Each verb lives with its stage; this file wires them.

Heavy imports (llama_cpp, faust, confluent_kafka, torch, matplotlib) happen
inside the commands, so `streamer --help` stays instant.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Iterator

import click
import orjson
from pydantic import ValidationError

from schemas import ChatMessage
from streamer.settings import Settings


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
        click.option("--cross-check-trust", type=float, default=None,
                     help="Model confidence at which a field the rules read differently still passes (default: "
                          "never; 0.99 fits gold dev)."),
        click.option("--n-gpu-layers", type=int, default=None, help="Layers to offload to a GPU (-1 = all)."),
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


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tradechat-streamer")
def main() -> None:
    """Parse trader chat and RFQs into structured trades, on the command line or from Kafka."""


@main.command()
@click.argument("text", required=False)
@click.option("--file", "file_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Read one message per line (plain text or ChatMessage JSONL).")
@click.option("--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write results here instead of stdout.")
@model_options
def parse(text: str | None, file_path: Path | None, out_path: Path | None, **options) -> None:
    """Parse TEXT, or '-' for stdin, or --file F: one JSON result (Trade or LowConfidence) per message."""
    if (text is None) == (file_path is None):
        raise click.UsageError("give either TEXT ('-' for stdin) or --file F")
    if file_path is not None:
        try:
            stream: IO[bytes] = file_path.open("rb")
        except OSError as err:
            raise click.ClickException(f"cannot read {file_path}: {err.strerror}") from None
    settings = settings_from(**options)
    parser = load_parser(settings)
    out = out_path.open("wb") if out_path else sys.stdout.buffer

    if text is not None and text != "-":
        out.write(dumps(parser.parse(ChatMessage(text=text, source="cli"))) + b"\n")
        out.flush()
        return
    if text == "-":
        stream, name, total = sys.stdin.buffer, "stdin", None
    else:
        name = str(file_path)
        total = sum(1 for _ in file_path.open("rb"))
    _parse_stream(parser, stream, name, out, total)


def _parse_stream(parser, stream, name: str, out, total: int | None) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from streamer.parsing import ParseError

    counts = {"trade": 0, "low_confidence": 0, "error": 0}
    show = total is not None
    with Progress(TextColumn("parsing"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                  TimeRemainingColumn(), console=_stderr_console(), disable=not show, transient=False) as progress:
        task = progress.add_task("parse", total=total, rate="")
        for number, message, error in read_message_lines(stream, name):
            if message is not None:
                try:
                    result = parser.parse(message)
                except ParseError as err:
                    error = f"{name}:{number}: {err}"
                else:
                    counts[result.kind] += 1
                    out.write(dumps(result) + b"\n")
                    rate = progress.tasks[0].speed
                    progress.update(task, rate=f"{rate:.1f} msg/s" if rate else "")
            if error:
                counts["error"] += 1
                progress.console.print(f"[red]error[/red] {error}", highlight=False)
            progress.update(task, completed=number)
        out.flush()
    click.echo(f"{counts['trade']} trades, {counts['low_confidence']} for review, {counts['error']} bad lines", err=True)
    if counts["error"]:
        sys.exit(1)


def _stderr_console():
    from rich.console import Console

    return Console(stderr=True)


# Verbs that live with their stages.
from streamer.benchmark import bench as _bench  # noqa: E402

main.add_command(model_options(_bench))
from streamer.streaming_commands import register as _register_streaming; _register_streaming(main)  # noqa: E402,E702
from streamer.evaluation.commands import eval_command as _eval_command; main.add_command(_eval_command)  # noqa: E402,E702
from streamer.replay_commands import diff as _diff, replay as _replay, reprocess as _reprocess; [main.add_command(c) for c in (_replay, _reprocess, _diff)]  # noqa: E402,E702
from streamer.data.commands import data as _data  # noqa: E402

main.add_command(_data)
from streamer.finetune.commands import finetune as _finetune; main.add_command(_finetune)  # noqa: E402,E702
