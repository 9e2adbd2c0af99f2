"""Streaming verbs: `worker`, `broker`, `dev` (both at once), `produce`, `consume`.

Faust, confluent-kafka and llama.cpp are imported inside the commands so that
`streamer --help` stays instant.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from typing import IO

import click

from streamer.cli.options import broker_option, model_options, settings_from, stderr_console
from streamer.processes import describe_exit, exit_hint
from streamer.settings import Settings

# A consumer group's first join on Tansu took ~23 s with default timeouts and ~3 s with 6 s ones.
DEV_PROFILE = {"session_timeout_s": 6.0, "rebalance_timeout_s": 6.0}


def worker_options(fn):
    """Topic, group and web options of a worker (each also an env var STREAMER_<NAME>)."""
    for decorator in reversed([
        broker_option,
        click.option("--group-id", default=None, help="Consumer group: workers sharing it split the partitions."),
        click.option("--input-topic", default=None, help="Chat topic to consume (default chat.raw)."),
        click.option("--parsed-topic", default=None, help="Topic for trades (default trades.parsed)."),
        click.option("--review-topic", default=None, help="Topic for low-confidence results (default trades.review)."),
        click.option("--deadletter-topic", default=None, help="Topic for undecodable input (default chat.deadletter)."),
        click.option("--nontrade-topic", default=None,
                     help="Topic for messages that hold no trade, intent none (default chat.nontrade)."),
        click.option("--partitions", "topic_partitions", type=click.IntRange(min=1), default=None,
                     help="Partitions of topics the worker creates."),
        click.option("--max-message-bytes", type=click.IntRange(min=1), default=None,
                     help="Larger inputs are dead-lettered as oversize."),
        click.option("--max-parse-crashes", type=click.IntRange(min=1), default=None,
                     help="Dead-letter a message (processing_crash) once the parser process has died on it this "
                          "many times (default 2)."),
        click.option("--exactly-once", "processing_guarantee", flag_value="exactly_once", default=None,
                     help="One Kafka transaction per batch: each input's result exactly once for read_committed "
                          "readers (env STREAMER_PROCESSING_GUARANTEE=exactly_once)."),
        click.option("--registry", "registry_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Model registry (streamer learn): run its current version and swap live to a newly "
                          "promoted one (env STREAMER_REGISTRY_DIR)."),
        click.option("--web-host", default=None, help="Address of the web server (POST /ingest)."),
        click.option("--web-port", type=click.IntRange(1, 65535), default=None, help="Port of the web server."),
    ]):
        fn = decorator(fn)
    return fn


def _ensure_topics(settings: Settings) -> None:
    from streamer.streaming.worker import WorkerError, ensure_pipeline_topics

    try:
        ensure_pipeline_topics(settings)
    except WorkerError as err:
        raise click.ClickException(str(err)) from None


@click.command()
@worker_options
@model_options
def worker(**options) -> None:
    """Consume chat, parse it, publish trades, reviews and dead letters (one model per process)."""
    from streamer.streaming.worker import WorkerError, run_worker

    try:
        run_worker(settings_from(**options))
    except WorkerError as err:
        raise click.ClickException(str(err)) from None


@click.command()
@broker_option
def broker(broker_url: str | None) -> None:
    """Run the embedded Tansu broker (in memory) on localhost until Ctrl-C."""
    embedded = _start_embedded(settings_from(broker_url=broker_url), reuse=False)
    click.echo(f"broker: Tansu listening at {embedded.url} (memory only); Ctrl-C stops it", err=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.is_set() and embedded.process.poll() is None:
            stop.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        status = embedded.stop()
    if not stop.is_set() and status not in (0, -signal.SIGTERM, None):
        raise click.ClickException(f"the broker exited with status {status}")


@click.command()
@worker_options
@model_options
def dev(**options) -> None:
    """Embedded broker + worker in one command, with short group timeouts: a first run with no Kafka."""
    from streamer.streaming.worker import supervise_worker

    settings = settings_from(**{**DEV_PROFILE, **options})
    embedded = _start_embedded(settings, reuse=True)
    try:
        status, asked_to_stop = supervise_worker(settings)
    finally:
        if embedded is not None:
            embedded.stop()
    if status != 0 and not (asked_to_stop and status == -signal.SIGTERM):
        hint = exit_hint(status)
        raise click.ClickException(f"dev: the worker {describe_exit(status)}" + (f"; {hint}" if hint else "")
                                   + ("; the embedded broker is stopped" if embedded is not None else ""))


def _start_embedded(settings: Settings, reuse: bool):
    from streamer.streaming.broker import BrokerStartError, is_listening, local_address, start_broker

    try:
        host, port = local_address(settings)
    except ValueError as err:
        raise click.UsageError(str(err)) from None
    if reuse and is_listening(host, port):
        click.echo(f"dev: using the broker already listening at {host}:{port}", err=True)
        return None
    try:
        return start_broker(port=port, host=host, log=None)
    except BrokerStartError as err:
        raise click.ClickException(str(err)) from None


@click.command()
@click.option("--file", "file_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Read messages from this file instead of stdin.")
@click.option("--topic", "input_topic", default=None, help="Topic to send to (default: the input topic, chat.raw).")
@broker_option
def produce(file_path: Path | None, **options) -> None:
    """Send chat (plain lines or ChatMessage JSONL) from stdin or --file; prints each message_id."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from streamer.ingest.produce import produce_messages

    settings = settings_from(**options)
    if file_path is not None:
        try:
            stream: IO[bytes] = file_path.open("rb")
            total = sum(1 for _ in file_path.open("rb"))
        except OSError as err:
            raise click.ClickException(f"cannot read {file_path}: {err.strerror}") from None
        name = str(file_path)
    else:
        stream, name, total = sys.stdin.buffer, "stdin", None
    _ensure_topics(settings)
    with Progress(TextColumn("producing"), BarColumn(), MofNCompleteColumn(), console=stderr_console(),
                  disable=total is None) as progress:
        task = progress.add_task("produce", total=total)
        report = produce_messages(
            settings, stream, name,
            on_error=lambda line: progress.console.print(f"[red]error[/red] {line}", highlight=False, soft_wrap=True),
            on_line=lambda number: progress.update(task, completed=number),
        )
    for message_id in report.message_ids:
        click.echo(message_id)
    click.echo(f"{report.sent} sent to {settings.input_topic}, {report.bad_lines} bad lines, "
               f"{report.undelivered} not delivered", err=True)
    if report.bad_lines or report.undelivered:
        sys.exit(1)


@click.command()
@click.argument("topic", required=False)
@click.option("--new", "only_new", is_flag=True, help="Only records that arrive from now on (default: from the start).")
@click.option("--max", "max_records", type=click.IntRange(min=1), default=None, help="Stop after this many records.")
@click.option("--idle", "idle_s", type=click.FloatRange(min=0.1), default=None,
              help="Stop after this many seconds without a record (default: follow until Ctrl-C).")
@broker_option
def consume(topic: str | None, only_new: bool, max_records: int | None, idle_s: float | None, **options) -> None:
    """Print the records of TOPIC (default: the trades topic), one JSON value per line."""
    import time

    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, TopicPartition

    from streamer.streaming.kafka import BrokerUnavailable, consumer_config, partitions_of

    settings = settings_from(**options)
    topic = topic or settings.parsed_topic
    # Partitions are assigned, not subscribed: no group join, nothing committed.
    consumer = Consumer(consumer_config(settings, f"{settings.group_id}-consume"))
    try:
        try:
            partitions = partitions_of(consumer, topic, settings)
        except BrokerUnavailable as err:
            raise click.ClickException(str(err)) from None
        start = OFFSET_END if only_new else OFFSET_BEGINNING
        consumer.assign([TopicPartition(topic, p, start) for p in partitions])
        count, last = 0, time.monotonic()
        out = sys.stdout.buffer
        while max_records is None or count < max_records:
            record = consumer.poll(0.5)
            if record is None:
                if idle_s is not None and time.monotonic() - last > idle_s:
                    break
                continue
            if record.error():
                raise click.ClickException(f"consume failed: {record.error().str()}")
            out.write((record.value() or b"") + b"\n")
            out.flush()
            count, last = count + 1, time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()


def register(group: click.Group) -> None:
    """Add the streaming verbs to the `streamer` command group."""
    for command in (worker, broker, dev, produce, consume):
        group.add_command(command)
