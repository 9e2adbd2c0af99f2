"""Starting a worker: checks, topics, the parser process, then the runner the delivery guarantee picks.

Also `supervise_worker`, which runs a worker as a child process (`streamer
dev`): whatever kills the worker (a native crash, the OOM killer) leaves the
supervisor alive to say so and to stop what it started.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from typing import Callable

from streamer.processes import die_with_parent
from streamer.settings import Settings
from streamer.streaming.pipeline import Topics


class WorkerError(RuntimeError):
    """A worker cannot start or cannot go on; the message is the one line to show."""


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def ensure_pipeline_topics(settings: Settings) -> None:
    """Create the four pipeline topics that do not exist yet; `WorkerError` when the broker does not answer."""
    from streamer.streaming.kafka import BrokerUnavailable, ensure_topics

    try:
        ensure_topics(settings, Topics.from_settings(settings).all())
    except BrokerUnavailable as err:  # the hint only where no broker answered (not a refused certificate or sign-in)
        hint = " (start one with `streamer broker`, or use `streamer dev`)" if "no broker listens" in str(err) else ""
        raise WorkerError(f"{err}{hint}") from None


def start_parser(settings: Settings, announce: Callable[[str], None] = _stderr):
    """The workers' parser: the model in a supervised child process (`streamer/parsing/process.py`).

    With `registry_dir` set, the registry's current version, swapped live for
    a newly promoted one (`streamer/learning/swap.py`); the runners see the
    same `parse_batch` either way.
    """
    from streamer.parsing.process import ParserProcess, ParserUnavailable

    try:
        if settings.registry_dir is None:
            return ParserProcess(settings)
        from streamer.learning.registry import RegistryError
        from streamer.learning.swap import SwappableParser, SwapRefused

        try:
            return SwappableParser(settings, announce=announce)
        except (RegistryError, SwapRefused) as err:
            raise WorkerError(str(err)) from None
    except ParserUnavailable as err:
        raise WorkerError(str(err)) from None


def check_ingest_exposure(settings: Settings) -> None:
    """`WorkerError` for unreadable ingest credentials, or for /ingest open to anyone beyond loopback."""
    from streamer.ingest.auth import IngestConfigError, ingest_refusal, load_credentials

    try:
        refusal = ingest_refusal(settings, load_credentials(settings)) if settings.ingest_enabled else None
    except IngestConfigError as err:
        raise WorkerError(str(err)) from None
    if refusal:
        raise WorkerError(refusal)


def run_worker(settings: Settings, announce: Callable[[str], None] = _stderr) -> None:
    """Load the model, then consume until SIGTERM/SIGINT; `WorkerError` for a start-up or parser failure."""
    from streamer.parsing.limits import LimitsError, load_limits
    from streamer.parsing.process import ParserUnavailable

    try:
        load_limits(settings.limits_path)  # here too: a bad file is one line before anything starts
    except LimitsError as err:
        raise WorkerError(str(err)) from None
    exactly_once = settings.processing_guarantee == "exactly_once"
    if not exactly_once:
        check_ingest_exposure(settings)
    from streamer.streaming.broker import is_listening

    if is_listening(settings.web_host, settings.web_port):  # both runners serve /metrics, /health, /ready there
        raise WorkerError(f"port {settings.web_port} is taken: give each worker on a host its own --web-port")
    ensure_pipeline_topics(settings)
    parser = start_parser(settings, announce)  # before joining the group, so a rebalance never waits on a model load
    route = (f"{settings.input_topic} -> {settings.parsed_topic} | {settings.review_topic} | "
             f"{settings.nontrade_topic} | {settings.deadletter_topic} on {settings.broker_url}, group {settings.group_id}")
    try:
        if exactly_once:
            _run_transactional(settings, parser, route, announce)
        else:
            from streamer.ingest.http import INGEST_PATH
            from streamer.streaming import faust_worker

            ingest = (f"POST http://{settings.web_host}:{settings.web_port}{INGEST_PATH}" if settings.ingest_enabled
                      else "no HTTP ingest")
            announce(f"worker: {route}; {ingest}; "
                     f"parser: {parser.description}")
            faust_worker.run(settings, parser)
    except ParserUnavailable as err:
        raise WorkerError(str(err)) from None
    finally:
        parser.close()


def _run_transactional(settings: Settings, parser, route: str, announce: Callable[[str], None]) -> None:
    """The exactly-once loop until SIGTERM/SIGINT: the batch in flight commits first."""
    import threading

    from confluent_kafka import KafkaException

    from streamer.streaming.health import Probes, ProbeServer
    from streamer.streaming.transactional import TransactionalWorker

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker = TransactionalWorker(settings, parser, stop)
    try:
        probes = ProbeServer(Probes(worker.metrics, worker.alive, worker.ready), settings.web_host, settings.web_port)
    except OSError as err:
        raise WorkerError(f"cannot serve /metrics on {settings.web_host}:{settings.web_port}: {err.strerror}") from None
    announce(f"worker (exactly-once, transactional.id {worker.transactional_id}): {route}; "
             f"read outputs with isolation.level=read_committed; parser: {parser.description}; "
             f"GET http://{settings.web_host}:{settings.web_port}/metrics")
    try:
        worker.run()
    except KafkaException as err:
        raise WorkerError(f"Kafka: {err.args[0].str()}") from None
    finally:
        probes.close()
    from streamer.streaming.pipeline import OUTPUT_ROLES

    counts = ", ".join(f"{role} {worker.published[role]}" for role in OUTPUT_ROLES)
    announce(f"worker: stopped after {worker.processed} messages in {worker.committed_batches} transactions ({counts})")


def supervise_worker(settings: Settings) -> tuple[int, bool]:
    """Run `streamer worker` with `settings` as a child until it exits; SIGINT/SIGTERM stop it gracefully.

    The first SIGINT/SIGTERM is passed on as SIGTERM (finish the message in
    flight, commit, leave the group); a second one kills the worker. The child
    gets SIGTERM too if this process dies. Returns (exit status, whether a
    signal asked it to stop).
    """
    env = {name: value for name, value in os.environ.items() if not name.startswith("STREAMER_")}
    worker_process = subprocess.Popen(
        [sys.executable, "-m", "streamer", "worker"], env={**env, **settings.to_env()},
        start_new_session=True,  # terminal signals reach the supervisor, which passes them on once
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
