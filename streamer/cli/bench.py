"""`streamer bench`: parser speed and memory, printed as numbers (not asserted in tests);
`streamer bench soak` and `streamer bench outage`: a real worker through kills and a broker outage, every input
accounted for (docs/reliability.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from streamer.cli.options import load_parser, settings_from


@click.group(invoke_without_command=True)
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
    """Parse N messages and print latency, throughput, KV-cache reuse and peak memory (`soak`, `outage`: delivery
    through worker kills and a broker outage)."""
    if click.get_current_context().invoked_subcommand:
        return
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


def _reliability_options(fn):
    """What `bench soak` and `bench outage` share: the inputs, the parser, the guarantee, where results go."""
    for decorator in reversed([
        click.option("--messages", type=click.IntRange(min=1), default=10000, show_default=True,
                     help="Chat messages to send (plus one undecodable record per 500, at least 4)."),
        click.option("--parser", type=click.Choice(["rules", "model"]), default="rules", show_default=True,
                     help="'rules': the rule-based parser, no model (fast, deterministic); 'model': the default "
                          "llama.cpp parser."),
        click.option("--exactly-once", is_flag=True, help="Run the transactional worker (read_committed readers)."),
        click.option("--rate", type=click.FloatRange(min=0, min_open=True), default=None,
                     help="Send this many messages a second while the worker runs (default: all before it starts)."),
        click.option("--n-threads", type=click.IntRange(min=1), default=None, help="CPU threads for llama.cpp."),
        click.option("--texts", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="Message texts (plain lines or JSONL with 'text'); default datasets/hand.jsonl, cycled."),
        click.option("--out", type=click.Path(dir_okay=False, path_type=Path), default=None,
                     help="Write the result JSON here (and a chart beside it), "
                          "e.g. docs/results/reliability/NAME.json."),
        click.option("--update-docs", is_flag=True,
                     help="Then rewrite the figures in docs/reliability.md and README.md "
                          "from docs/results/reliability/."),
    ]):
        fn = decorator(fn)
    return fn


@bench.command("soak")
@_reliability_options
@click.option("--kill-every", "kill_every_s", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="SIGKILL the worker about this often (±30%), then start it again; 0 = never.")
@click.option("--broker", "broker_url", default=None, help="A running Kafka to use instead of the embedded broker.")
@click.option("--render-docs", is_flag=True,
              help="Only rewrite the docs figures from the committed results; run nothing.")
def soak(render_docs: bool, **options) -> None:
    """Send messages through a real worker that is SIGKILLed and restarted; count answered, duplicates and lost.

    Exits 1 when any input has no output.
    """
    if render_docs:
        _update_reliability_docs()
        return
    _run_reliability(**options)


@bench.command("outage")
@_reliability_options
@click.option("--down", "outage_down_s", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds the broker stays unreachable (every connection reset, new ones refused).")
@click.option("--at", "outage_at_share", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="Cut the broker off once this share of the inputs is committed.")
@click.option("--kill-every", "kill_every_s", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Also SIGKILL the worker about this often; 0 = never.")
def outage(**options) -> None:
    """Cut the embedded broker off mid-stream for --down seconds; did the worker recover, and was anything lost?

    Exits 1 when any input has no output.
    """
    _run_reliability(**options)


def _run_reliability(out: Path | None, update_docs: bool, n_threads: int | None, **options) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streamer.cli.options import stderr_console
    from streamer.evaluation import soak as reliability
    from streamer.streaming.broker import BrokerStartError
    from streamer.streaming.kafka import BrokerUnavailable
    from streamer.streaming.worker import WorkerError

    if update_docs and (out is None or out.resolve().parent != (reliability.REPO_ROOT / reliability.RESULTS_DIR)):
        raise click.UsageError(f"--update-docs needs --out {reliability.RESULTS_DIR}/NAME.json")
    config = reliability.SoakConfig(**options)
    settings = settings_from(n_threads=n_threads)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=stderr_console(), transient=True) as progress:
        task = progress.add_task("inputs committed", total=None)

        def show(state: dict) -> None:
            note = ", broker cut off" if state["broker_cut"] else ""
            counts = f"kills {state['kills']}, restarts {state['restarts']}{note}"
            progress.update(task, completed=state["committed"], total=state["total"],
                            description=f"inputs committed ({counts})")

        try:
            payload = reliability.run_soak(config, progress=show, settings=settings, command=sys.argv)
        except (reliability.SoakError, BrokerStartError, BrokerUnavailable, WorkerError) as err:
            raise click.ClickException(str(err)) from None
    _print_reliability(payload)
    if out is not None:
        written = reliability.write_results(out, payload)
        click.echo(f"wrote {', '.join(map(str, written))}", err=True)
    if update_docs:
        _update_reliability_docs()
    lost = payload["reads"]["read_committed"]["lost"]
    if lost:
        examples = ", ".join(payload["reads"]["read_committed"]["lost_ids"][:5])
        click.echo(f"{lost} input(s) have no output, e.g. {examples}; the worker's log: {payload['worker_log']}",
                   err=True)
        sys.exit(1)


def _print_reliability(payload: dict) -> None:
    from rich.table import Table

    from streamer.cli.options import stderr_console

    table = Table(title=payload["config"]["broker"] + ": " + _label(payload))
    table.add_column("")
    for isolation in payload["reads"]:
        table.add_column(isolation, justify="right")
    reads = payload["reads"].values()
    for role, topic in payload["topics"].items():
        table.add_row(f"outputs: {role}", *(f"{r['outputs_per_topic'][topic]:,}" for r in reads))
    for key in ("answered", "duplicates", "duplicates_undone_by_a_worker_death", "duplicates_unexplained",
                "answered_on_several_topics", "lost"):
        table.add_row(key.replace("_", " "), *(f"{r[key]:,}" for r in reads))
    table.caption = (f"inputs {payload['inputs']:,}; kills {payload['kills']}, restarts {payload['restarts']}; "
                     f"{payload['wall_s']:.0f} s, {payload['throughput_msg_s']:.1f} msg/s")
    stderr_console().print(table)
    if payload.get("outage"):
        from streamer.evaluation.soak import describe_outage

        click.echo(describe_outage(payload), err=True)


def _label(payload: dict) -> str:
    from streamer.evaluation.soak import run_label

    return run_label(payload)


def _update_reliability_docs() -> None:
    from streamer.evaluation import soak as reliability

    try:
        changed = reliability.update_documents()
    except reliability.DocsError as err:
        raise click.ClickException(str(err)) from None
    click.echo(f"rewrote {', '.join(map(str, changed)) or 'nothing'}", err=True)
