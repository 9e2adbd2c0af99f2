"""`streamer bench`: parser speed and memory, printed as numbers (not asserted in tests)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from streamer.cli.options import load_parser, settings_from


@click.command()
@click.option("--n", "count", type=int, default=50, show_default=True, help="Messages to parse.")
@click.option("--batch", "batch_max_messages", type=click.IntRange(min=1), default=None,
              help="Messages per llama.cpp decode (default: batch_max_messages, 8).")
@click.option("--file", "file_path", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
              help="Messages to use (plain lines or JSONL with 'text'); default: a built-in sample.")
def bench(count: int, file_path: Path | None, **options) -> None:
    """Parse N messages and print latency, throughput, KV-cache reuse and peak memory."""
    from streamer.evaluation.benchmark import load_texts, run_benchmark

    started = time.perf_counter()
    parser = load_parser(settings_from(**options))
    load_s = time.perf_counter() - started
    rows = run_benchmark(parser, load_texts(file_path, count), load_s)
    width = max(map(len, rows))
    for key, value in rows.items():
        click.echo(f"{key:<{width}}  {value}")
