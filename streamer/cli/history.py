"""History verbs: `replay` (a chat log onto the input topic), `reprocess` (a topic range with another
model into tagged topics) and `diff` (two result sets by message_id).

confluent-kafka and llama.cpp are imported inside the commands so that
`streamer --help` stays instant.
"""

from __future__ import annotations

import sys
import time
from datetime import datetime
from pathlib import Path

import click

from streamer.cli.options import broker_option, load_parser, model_options, settings_from, stderr_console
from streamer.settings import Settings


def _time_option(value: str | None, flag: str) -> datetime | None:
    from streamer.history.replay import parse_time

    if value is None:
        return None
    try:
        return parse_time(value)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=flag) from None


def _ensure(settings: Settings, names: list[str]) -> None:
    from streamer.streaming.kafka import BrokerUnavailable, ensure_topics

    try:
        ensure_topics(settings, names)
    except BrokerUnavailable as err:
        raise click.ClickException(f"{err} (start one with `streamer broker`)") from None


def _note(console, text: str) -> None:
    """One line on stderr, never wrapped, so a log keeps `file:line: error` greppable."""
    console.print(text, highlight=False, soft_wrap=True)


# -- replay ----------------------------------------------------------------------------


@click.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--speed", default="1", show_default=True,
              help="Divide the gaps between messages by this (60 = an hour of history per minute); 'max' = no waiting.")
@click.option("--start", default=None,
              help="Replay messages at or after this time (ISO 8601 or Unix seconds; naive = UTC).")
@click.option("--end", default=None, help="Replay messages before this time (exclusive).")
@click.option("--on-error", type=click.Choice(["stop", "skip"]), default="stop", show_default=True,
              help="stop: check the whole file first, send nothing if a line is bad; "
                   "skip: send the good lines, count the bad.")
@click.option("--format", "file_format", type=click.Choice(["auto", "jsonl", "csv"]), default="auto", show_default=True,
              help="auto: .csv/.tsv files are CSV, anything else ChatMessage JSONL.")
@click.option("--text-column", default="text", show_default=True, help="CSV column with the message text.")
@click.option("--timestamp-column", default="timestamp", show_default=True, help="CSV column with the original time.")
@click.option("--sender-column", default="sender", show_default=True, help="CSV column with the sender (optional).")
@click.option("--channel-column", default="channel", show_default=True, help="CSV column with the channel (optional).")
@click.option("--id-column", default="message_id", show_default=True,
              help="CSV column with the message id (optional; derived from text and time when absent).")
@click.option("--topic", "input_topic", default=None, help="Topic to replay into (default: the input topic, chat.raw).")
@click.option("--write-sample", "sample_count", type=click.IntRange(min=1), default=None,
              help="Instead of replaying, write a synthetic historic chat log of this many messages to FILE.")
@broker_option
def replay(file: Path, speed: str, start: str | None, end: str | None, on_error: str, file_format: str,
           text_column: str, timestamp_column: str, sender_column: str, channel_column: str, id_column: str,
           sample_count: int | None, **options) -> None:
    """Publish a historic chat log (ChatMessage JSONL or CSV) to the input topic, keeping its timing.

    Records keep their message ids and get the original time as Kafka timestamp,
    so a replay read twice is recognisable. Bad lines are reported with their
    line number; the summary counts every line that was not sent. Plain text
    lines have no time to replay: `streamer produce` sends those. Exit 1 when
    nothing is sent (empty file, every line skipped or outside --start/--end)
    or a record is not acknowledged.
    """
    from streamer.history.replay import (
        DEFAULT_HISTORY_START, CsvColumns, ReplayStopped, TimeWindow, nothing_to_send, parse_speed, publish_history,
        read_replay_file, scan, synthetic_history, write_history,
    )

    if sample_count is not None:
        try:
            written = write_history(file, synthetic_history(sample_count, DEFAULT_HISTORY_START))
        except OSError as err:
            raise click.ClickException(f"cannot write {file}: {err.strerror}") from None
        click.echo(f"wrote {written} messages to {file}", err=True)
        return
    try:
        factor = parse_speed(speed)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--speed") from None
    try:
        window = TimeWindow(_time_option(start, "--start"), _time_option(end, "--end"))
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    settings = settings_from(**options)
    columns = CsvColumns(text=text_column, timestamp=timestamp_column, sender=sender_column,
                         channel=channel_column, message_id=id_column)
    console = stderr_console()
    fmt = None if file_format == "auto" else file_format
    try:
        messages, summary = scan(
            read_replay_file(file, fmt, columns), window, on_error, settings.max_message_bytes,
            on_skip=lambda line: _note(console, f"[yellow]skipped[/yellow] {line.error}"),
            name=str(file),
        )
    except ReplayStopped as stopped:
        raise click.ClickException(
            f"{stopped.line.error}; nothing was sent (--on-error skip sends the good lines)") from None
    except OSError as err:
        raise click.ClickException(f"cannot read {file}: {err.strerror}") from None
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    if not messages:  # a replay that sends nothing did not do what was asked: say why, exit 1
        raise click.ClickException(nothing_to_send(summary, window, str(file)))
    _ensure(settings, [settings.input_topic])
    publish_history(settings, messages, factor, summary, console)
    for line in summary.lines():
        click.echo(line, err=True)
    if summary.undelivered:
        sys.exit(1)


# -- reprocess -------------------------------------------------------------------------


@click.command()
@click.option("--topic", "source_topic", default=None, help="Topic to read (default: the input topic, chat.raw).")
@click.option("--from-timestamp", default=None, help="First record time (inclusive; ISO 8601 or Unix seconds).")
@click.option("--to-timestamp", default=None, help="End of the time range (exclusive).")
@click.option("--from-offset", type=int, default=None, help="First offset, in every chosen partition (inclusive).")
@click.option("--to-offset", type=int, default=None, help="End offset, in every chosen partition (exclusive).")
@click.option("--partition", "partitions", type=click.IntRange(min=0), multiple=True,
              help="Only this partition (repeatable; default all).")
@click.option("--tag", default=None,
              help="Output topics are <parsed>.<tag>, <review>.<tag>, <deadletter>.<tag> "
                   "(default: from the model, adapter and prompt).")
@broker_option
@model_options
def reprocess(source_topic: str | None, from_timestamp: str | None, to_timestamp: str | None,
              from_offset: int | None, to_offset: int | None, partitions: tuple[int, ...], tag: str | None,
              broker_url: str | None, **options) -> None:
    """Parse a range of an existing topic again (another model or adapter) into tagged topics.

    The range is read without joining or committing for any consumer group, so
    live workers' offsets are untouched; every record in range gives exactly one
    output (trade, review or dead letter).
    """
    from confluent_kafka import KafkaException, Producer
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from streamer.history.reprocess import (
        RangeProgress, RangeSpec, RangeStalled, check_tag, model_tag, offset_spans, partition_ends, plan_ranges,
        range_consumer, tagged_topics,
    )
    from streamer.history.reprocess import reprocess as run_reprocess
    from streamer.streaming.kafka import producer_config

    try:
        spec = RangeSpec(_time_option(from_timestamp, "--from-timestamp"), _time_option(to_timestamp, "--to-timestamp"),
                         from_offset, to_offset)
        if tag is not None:
            check_tag(tag)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    settings = settings_from(broker_url=broker_url, **options)
    topic = source_topic or settings.input_topic
    console = stderr_console()
    consumer = range_consumer(settings, "reprocess")
    try:
        try:
            ranges = plan_ranges(consumer, topic, spec, list(partitions) or None)
            end_probe = range_consumer(settings, "reprocess-end")
            try:
                ends = partition_ends(end_probe, topic, [r.partition for r in ranges])
            finally:
                end_probe.close()
            scan = RangeProgress(offset_spans(ranges, ends))
        except LookupError as err:
            raise click.ClickException(f"{err.args[0]} ({settings.broker_url})") from None
        except KafkaException as err:
            raise click.ClickException(
                f"no answer from the broker at {settings.broker_url}: {err.args[0].str()}") from None
        parser = load_parser(settings)
        tag = tag or model_tag(parser.model.path.name, parser.adapter_id, parser.prompt_version)
        outputs = tagged_topics(settings, tag, topic)
        if topic in outputs.outputs():
            raise click.UsageError(f"the output topics of tag {tag!r} include the topic being read")
        _ensure(settings, outputs.outputs())
        _note(console, f"reprocess {topic} -> {' | '.join(outputs.outputs())}")
        producer = Producer(producer_config(settings))
        # The total is the planned offset range, fixed before the first record is read.
        with Progress(TextColumn("reprocessing"), BarColumn(), TextColumn("{task.fields[count]}"),
                      TextColumn("{task.fields[rate]}"), TimeRemainingColumn(), console=console) as progress:
            task = progress.add_task("reprocess", total=scan.total, count=scan.describe(), rate="")
            started, read = time.monotonic(), 0

            def on_record(position) -> None:
                nonlocal read
                read += 1
                scan.advance(position.partition, position.offset)
                elapsed = time.monotonic() - started
                progress.update(task, completed=scan.done, count=scan.describe(),
                                rate=f"{read / elapsed:.2f} records/s" if elapsed > 0 else "")

            try:
                summary = run_reprocess(settings, parser, ranges, spec, outputs, consumer, producer, on_record)
            except KafkaException as err:
                raise click.ClickException(f"reprocess stopped: {err.args[0].str()}") from None
            except RangeStalled as err:
                raise click.ClickException(f"reprocess stopped: {err}") from None
            scan.finish()
            progress.update(task, completed=scan.done, count=scan.describe())
    finally:
        consumer.close()
    kinds = summary.outputs
    click.echo(
        f"read {summary.read} records in {summary.wall_seconds:.1f} s: {kinds['trade']} -> {outputs.parsed}, "
        f"{kinds['low_confidence']} -> {outputs.review}, {kinds['dead_letter']} -> {outputs.deadletter}"
        + (f", {summary.outside_time} outside the time range" if summary.outside_time else ""), err=True,
    )
    if summary.undelivered:
        for error in summary.delivery_errors:
            click.echo(f"not delivered: {error}", err=True)
        raise click.ClickException(f"{summary.undelivered} outputs were not acknowledged by the broker")


# -- diff ------------------------------------------------------------------------------

FILE_SUFFIXES = (".jsonl", ".ndjson", ".json")


def _is_file_source(source: str) -> bool:
    return Path(source).exists() or "/" in source or source.lower().endswith(FILE_SUFFIXES)


def load_result_set(settings: Settings, spec: str):
    """A comma-separated list of JSONL files and topics, read into one ResultSet."""
    from streamer.history.diff import ResultSet, read_jsonl_results

    sources = [s.strip() for s in spec.split(",") if s.strip()]
    if not sources:
        raise click.UsageError(f"empty result set {spec!r}")
    results = ResultSet(spec)
    for source in sources:
        if _is_file_source(source):
            try:
                with open(source, "rb") as stream:
                    read_jsonl_results(source, stream, into=results)
            except OSError as err:
                raise click.ClickException(f"cannot read {source}: {err.strerror}") from None
        else:
            _read_topic_results(settings, source, results)
    return results


def _read_topic_results(settings: Settings, topic: str, results) -> None:
    from confluent_kafka import KafkaException

    from streamer.history.reprocess import RangeSpec, RangeStalled, plan_ranges, range_consumer, read_range

    consumer = range_consumer(settings, "diff")
    try:
        ranges = plan_ranges(consumer, topic, RangeSpec())
        for record in read_range(consumer, topic, ranges):
            results.add(f"{topic}[{record.partition()}]@{record.offset()}", record.value() or b"")
    except LookupError as err:
        raise click.ClickException(
            f"{err.args[0]} ({settings.broker_url}); a file needs a path or a .jsonl name") from None
    except KafkaException as err:
        raise click.ClickException(
            f"cannot read topic {topic!r} at {settings.broker_url}: {err.args[0].str()}") from None
    except RangeStalled as err:
        raise click.ClickException(f"cannot read topic {topic!r}: {err}") from None
    finally:
        consumer.close()


@click.command()
@click.argument("a")
@click.argument("b")
@click.option("--limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="Changed results to list (0 = all).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout.")
@broker_option
def diff(a: str, b: str, limit: int, as_json: bool, **options) -> None:
    """Compare two result sets by message_id: per-field agreement, changed trades, only in A or B.

    A and B are each a JSONL file or a topic, or a comma-separated list of them,
    e.g. `trades.parsed,trades.review trades.parsed.v2,trades.review.v2`.
    """
    import orjson
    from rich.console import Console

    from streamer.history.diff import compare, render_lines

    settings = settings_from(**options)
    left, right = load_result_set(settings, a), load_result_set(settings, b)
    report = compare(left, right)
    if as_json:
        data = report.to_dict()
        for key, side in (("a_notes", left), ("b_notes", right)):
            data[key] = {"duplicates": side.duplicates, "ignored": dict(side.ignored), "problems": side.problems}
        sys.stdout.buffer.write(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
        return
    console = Console()
    for item in render_lines(report, left, right, limit):
        console.print(item, highlight=False, soft_wrap=True)
