"""`streamer bench`: parser speed and memory, printed as numbers (not asserted in tests)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from streamer.cli.options import load_parser, settings_from


@click.command()
@click.option("--n", "count", type=int, default=50, show_default=True, help="Messages to parse.")
@click.option("--batch", "batch_max_messages", type=click.IntRange(min=1), default=None,
              help="Messages per llama.cpp decode (default: batch_max_messages, 8).")
@click.option("--max-draft", "max_draft_tokens", type=click.IntRange(min=0), default=None,
              help="Jump-forward: template tokens checked per step (default: max_draft_tokens, 16; 0 = off).")
@click.option("--kafka", "kafka_count", type=click.IntRange(min=1), default=None,
              help="Then also send this many messages through a real `streamer worker` on the embedded broker "
                   "(or --broker) and print that rate and its ratio to the in-process one.")
@click.option("--kafka-rate", type=click.FloatRange(min=0, min_open=True), default=None,
              help="With --kafka: produce this many messages a second (latency under sustained load) instead of all at once.")
@click.option("--broker", "kafka_broker", default=None, help="With --kafka: a running Kafka to use instead of the embedded broker.")
@click.option("--update-docs", "docs_label", default=None, metavar="LABEL",
              help="Record this run as LABEL in docs/results/eval/throughput.json (replacing a run of that label) "
                   "and rewrite the speed table in README.md from it.")
@click.option("--file", "file_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Messages to use (plain lines or JSONL with 'text'); default: a built-in sample.")
def bench(count: int, file_path: Path | None, kafka_count: int | None, kafka_rate: float | None, kafka_broker: str | None,
          docs_label: str | None, **options) -> None:
    """Parse N messages and print latency, throughput, KV-cache reuse and peak memory."""
    from streamer.evaluation.benchmark import load_texts, run_benchmark

    settings = settings_from(**options)
    started = time.perf_counter()
    parser = load_parser(settings)
    load_s = time.perf_counter() - started
    rows = run_benchmark(parser, load_texts(file_path, count), load_s)
    if kafka_count:
        parser.close()
        rows.update(_through_kafka(settings, load_texts(file_path, kafka_count), kafka_broker, kafka_rate))
        if kafka_rate is None:  # a paced run's rate is the pace
            rows["kafka_ratio_to_in_process"] = round(rows["kafka_throughput_msg_s"] / rows["throughput_msg_s"], 3)
    width = max(map(len, rows))
    for key, value in rows.items():
        click.echo(f"{key:<{width}}  {value}")
    if docs_label:
        from streamer.evaluation import report

        try:
            source = report.record_bench(rows, sys.argv, docs_label)
            changed = report.update_documents(names=["throughput"])
        except report.DocsError as err:
            raise click.ClickException(str(err)) from None
        click.echo(f"recorded {docs_label!r} in {source}; rewrote {', '.join(map(str, changed)) or 'nothing'}", err=True)


def _through_kafka(settings, messages, broker_url: str | None, rate: float | None) -> dict:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streamer.cli.options import stderr_console
    from streamer.evaluation.kafka_bench import KafkaBenchError, run_kafka_benchmark

    if broker_url:
        settings = settings.model_copy(update={"broker_url": broker_url})
    columns = (TextColumn("through Kafka"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr_console(), transient=True) as progress:
        task = progress.add_task("kafka", total=len(messages))
        try:
            return run_kafka_benchmark(settings, messages, embedded=broker_url is None,
                                       progress=lambda: progress.advance(task), rate=rate)
        except KafkaBenchError as err:
            raise click.ClickException(str(err)) from None
