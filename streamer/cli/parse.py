"""`streamer parse`: one message, a file or stdin, without Kafka: one JSON result per message."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO

import click

from schemas import ChatMessage
from streamer.cli.options import dumps, load_parser, model_options, settings_from, stderr_console
from streamer.ingest.lines import read_message_lines


@click.command()
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
                  TimeRemainingColumn(), console=stderr_console(), disable=not show, transient=False) as progress:
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
