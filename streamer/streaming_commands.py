"""Streaming verbs: `worker`, `broker`, `dev` (both at once), `produce`, `consume`.

Faust, confluent-kafka and llama.cpp are imported inside the commands so that
`streamer --help` stays instant.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import click

from streamer.cli_options import model_options, settings_from, start_parser_process, stderr_console
from streamer.processes import describe_exit, die_with_parent, exit_hint
from streamer.settings import Settings

# A consumer group's first join on Tansu took ~23 s with default timeouts and ~3 s with 6 s ones.
DEV_PROFILE = {"session_timeout_s": 6.0, "rebalance_timeout_s": 6.0}


def broker_option(fn):
    return click.option("--broker", "broker_url", default=None,
                        help="Kafka bootstrap URL, e.g. kafka://localhost:9092 (env STREAMER_BROKER_URL).")(fn)


def worker_options(fn):
    """Topic, group and web options of a worker (each also an env var STREAMER_<NAME>)."""
    for decorator in reversed([
        broker_option,
        click.option("--group-id", default=None, help="Consumer group: workers sharing it split the partitions."),
        click.option("--input-topic", default=None, help="Chat topic to consume (default chat.raw)."),
        click.option("--parsed-topic", default=None, help="Topic for trades (default trades.parsed)."),
        click.option("--review-topic", default=None, help="Topic for low-confidence results (default trades.review)."),
        click.option("--deadletter-topic", default=None, help="Topic for undecodable input (default chat.deadletter)."),
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
        click.option("--web-host", default=None, help="Address of the web server (POST /ingest)."),
        click.option("--web-port", type=click.IntRange(1, 65535), default=None, help="Port of the web server."),
    ]):
        fn = decorator(fn)
    return fn


def _ensure_topics(settings: Settings) -> None:
    from streamer.kafka import BrokerUnavailable, ensure_topics, topic_names

    try:
        ensure_topics(settings, topic_names(settings))
    except BrokerUnavailable as err:
        raise click.ClickException(f"{err} (start one with `streamer broker`, or use `streamer dev`)") from None


def run_worker(settings: Settings) -> None:
    """Load the model, then consume until SIGTERM/SIGINT (graceful: finish, commit, leave the group)."""
    import faust

    from streamer.agents import register_agents
    from streamer.app import create_app, declare_topics
    from streamer.broker import is_listening
    from streamer.ingest.http import INGEST_PATH, register_ingest

    if settings.processing_guarantee == "exactly_once":
        return run_transactional_worker(settings)
    if is_listening(settings.web_host, settings.web_port):
        raise click.ClickException(f"port {settings.web_port} is taken: give each worker on a host its own --web-port")
    _ensure_topics(settings)
    parser = start_parser_process(settings)  # before joining the group, so a rebalance never waits on a model load
    app = create_app(settings)
    topics = declare_topics(app, settings)
    register_agents(app, topics, settings, parser)
    register_ingest(app, topics.input, settings)
    click.echo(
        f"worker: {settings.input_topic} -> {settings.parsed_topic} | {settings.review_topic} | "
        f"{settings.deadletter_topic} on {settings.broker_url}, group {settings.group_id}; "
        f"POST http://{settings.web_host}:{settings.web_port}{INGEST_PATH}; parser: {parser.description}", err=True,
    )
    try:
        faust.Worker(app, loglevel="info", quiet=True).execute_from_commandline()
    finally:
        parser.close()


def run_transactional_worker(settings: Settings) -> None:
    """The exactly-once loop (`streamer/exactly_once.py`) until SIGTERM/SIGINT: the batch in flight commits first."""
    from confluent_kafka import KafkaException

    from streamer.exactly_once import TransactionalWorker
    from streamer.parsing.process import ParserUnavailable

    _ensure_topics(settings)
    parser = start_parser_process(settings)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker = TransactionalWorker(settings, parser, stop)
    click.echo(
        f"worker (exactly-once, transactional.id {worker.transactional_id}): {settings.input_topic} -> "
        f"{settings.parsed_topic} | {settings.review_topic} | {settings.deadletter_topic} on {settings.broker_url}, "
        f"group {settings.group_id}; read outputs with isolation.level=read_committed; parser: {parser.description}",
        err=True,
    )
    try:
        worker.run()
    except KafkaException as err:
        raise click.ClickException(f"Kafka: {err.args[0].str()}") from None
    except ParserUnavailable as err:
        raise click.ClickException(str(err)) from None
    finally:
        parser.close()
    click.echo(f"worker: stopped after {worker.processed} messages in {worker.committed_batches} transactions", err=True)


@click.command()
@worker_options
@model_options
def worker(**options) -> None:
    """Consume chat, parse it, publish trades, reviews and dead letters (one model per process)."""
    run_worker(settings_from(**options))


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
    settings = settings_from(**{**DEV_PROFILE, **options})
    embedded = _start_embedded(settings, reuse=True)
    try:
        status, asked_to_stop = _supervise_worker(settings)
    finally:
        if embedded is not None:
            embedded.stop()
    if status != 0 and not (asked_to_stop and status == -signal.SIGTERM):
        hint = exit_hint(status)
        raise click.ClickException(f"dev: the worker {describe_exit(status)}" + (f"; {hint}" if hint else "")
                                   + ("; the embedded broker is stopped" if embedded is not None else ""))


def _supervise_worker(settings: Settings) -> tuple[int, bool]:
    """Run `streamer worker` with `settings` as a child until it exits; SIGINT/SIGTERM stop it gracefully.

    A child, not a call: whatever kills the worker (a native crash, the OOM
    killer) leaves `dev` alive to say so and to stop the broker it started. The
    first SIGINT/SIGTERM is passed on as SIGTERM (finish the message in flight,
    commit, leave the group); a second one kills the worker. Returns (exit
    status, whether a signal asked it to stop).
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("STREAMER_")}
    worker_process = subprocess.Popen(
        [sys.executable, "-m", "streamer", "worker"], env={**env, **settings.to_env()},
        start_new_session=True,  # terminal signals reach `dev`, which passes them on once
        preexec_fn=functools.partial(die_with_parent, os.getpid(), signal.SIGTERM),
    )
    signals: list[int] = []

    def stop(signum, _frame) -> None:
        signals.append(signum)
        worker_process.send_signal(signal.SIGTERM if len(signals) == 1 else signal.SIGKILL)

    previous = {signum: signal.signal(signum, stop) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        status = worker_process.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return status, bool(signals)


def _start_embedded(settings: Settings, reuse: bool):
    from streamer.broker import BrokerStartError, is_listening, local_address, start_broker

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

    from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaException, TopicPartition

    from streamer.kafka import consumer_config

    settings = settings_from(**options)
    topic = topic or settings.parsed_topic
    # Partitions are assigned, not subscribed: no group join, nothing committed.
    consumer = Consumer(consumer_config(settings, f"{settings.group_id}-consume"))
    try:
        try:
            metadata = consumer.list_topics(topic, timeout=10)
        except KafkaException as err:
            raise click.ClickException(f"no answer from the broker at {settings.broker_url}: {err.args[0].str()}") from None
        partitions = metadata.topics[topic].partitions
        if metadata.topics[topic].error is not None or not partitions:
            raise click.ClickException(f"topic {topic!r} does not exist at {settings.broker_url}")
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
