"""Replay a historic chat log into the input topic, keeping its original timing.

Stages: read the file (ChatMessage JSONL, or CSV with configurable column
names) into numbered lines -> keep those inside the `--start`/`--end` window ->
wait until each message is due (original gap / speed) -> send. Every line that
is not sent is counted under a named reason, so nothing is dropped silently.
Scheduling (`replay`) only needs a `send(message)` callable, so it is testable
with a fake clock; `publish_history` is the Kafka side with the progress bar.

Plain text lines are refused with a pointer to `streamer produce`: replay
exists to re-create historic timing, and a plain line has no time to keep (a
made-up one would also change the message_id derived from text and time, so a
second replay would no longer be recognisable).
"""

from __future__ import annotations

import csv
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Literal

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas import ChatMessage, utc

SkipReason = Literal[
    "not_utf8", "plain_text", "not_json", "not_chat_message", "no_timestamp", "bad_csv_row", "oversize",
]
FileFormat = Literal["jsonl", "csv"]
OnError = Literal["skip", "stop"]


@dataclass(frozen=True)
class ReplayLine:
    """One record of the file: a message, or the reason it cannot be replayed."""

    line: int
    message: ChatMessage | None = None
    reason: SkipReason | None = None
    error: str | None = None  # "file:line: what is wrong", for people


@dataclass(frozen=True)
class CsvColumns:
    """Which CSV header names hold which ChatMessage field (only `text` and `timestamp` are required)."""

    text: str = "text"
    timestamp: str = "timestamp"
    sender: str = "sender"
    channel: str = "channel"
    message_id: str = "message_id"
    source: str = "source"


class ReplayStopped(Exception):
    """Raised under `--on-error stop` at the first line that cannot be replayed."""

    def __init__(self, line: ReplayLine):
        super().__init__(line.error)
        self.line = line


# -- reading ---------------------------------------------------------------------


def _validation_error(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or "message"
    return f"{where}: {first['msg']}"


def _bad(number: int, reason: SkipReason, name: str, what: str) -> ReplayLine:
    return ReplayLine(number, reason=reason, error=f"{name}:{number}: {what}")


def _checked(message: ChatMessage, number: int, name: str) -> ReplayLine:
    if message.timestamp is None:
        return _bad(number, "no_timestamp", name, "no timestamp (replay needs the original time)")
    return ReplayLine(number, message=message)


def read_jsonl(stream: IO[bytes], name: str) -> Iterator[ReplayLine]:
    """Numbered lines of a ChatMessage JSONL file; blank lines are not records.

    A line that is not JSON and does not start with `{` is plain text, told
    apart the way `streamer produce` tells its plain lines from JSON ones.
    """
    for number, raw in enumerate(stream, start=1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            yield _bad(number, "not_utf8", name, f"not UTF-8 ({err.reason} at byte {err.start})")
            continue
        if not line.strip():
            continue
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            if line.lstrip().startswith("{"):
                yield _bad(number, "not_json", name, f"invalid JSON ({str(err).splitlines()[0]})")
            else:
                yield _bad(number, "plain_text", name,
                           f"plain text, not ChatMessage JSON (replay needs each message's time; "
                           f"`streamer produce --file {name}` sends plain lines)")
            continue
        if not isinstance(data, dict):
            yield _bad(number, "not_chat_message", name, "not a ChatMessage (a JSON object is needed)")
            continue
        try:
            message = ChatMessage.model_validate(data)
        except ValidationError as err:
            yield _bad(number, "not_chat_message", name, f"not a ChatMessage ({_validation_error(err)})")
            continue
        yield _checked(message, number, name)


def _decoded_lines(stream: IO[bytes]) -> Iterator[str]:
    # surrogateescape keeps bad bytes visible as lone surrogates, so the row that
    # holds them can be reported with its line number instead of failing the file.
    for raw in stream:
        yield raw.decode("utf-8", errors="surrogateescape")


def _has_undecodable(values: Iterable[str]) -> bool:
    return any("\udc80" <= ch <= "\udcff" for value in values for ch in value)


def read_csv(stream: IO[bytes], name: str, columns: CsvColumns = CsvColumns()) -> Iterator[ReplayLine]:
    """Numbered rows of a CSV file with a header; line numbers are the row's first physical line."""
    reader = csv.reader(_decoded_lines(stream))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as err:
        raise ValueError(f"{name}:1: unreadable CSV header ({err})") from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in (columns.text, columns.timestamp) if c not in header]
    if missing:
        raise ValueError(
            f"{name}:1: CSV header has no column {', '.join(repr(c) for c in missing)} "
            f"(columns: {', '.join(header)}); name it with --text-column/--timestamp-column"
        )
    index = {h: i for i, h in enumerate(header)}
    wanted = {
        "text": columns.text, "timestamp": columns.timestamp, "sender": columns.sender,
        "channel": columns.channel, "message_id": columns.message_id, "source": columns.source,
    }
    number = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as err:
            yield _bad(number, "bad_csv_row", name, f"unreadable CSV row ({err})")
            number = reader.line_num + 1
            continue
        start, number = number, reader.line_num + 1
        if not any(cell.strip() for cell in row):
            continue
        if _has_undecodable(row):
            yield _bad(start, "not_utf8", name, "not UTF-8")
            continue
        if len(row) != len(header):
            yield _bad(start, "bad_csv_row", name, f"{len(row)} cells where the header has {len(header)}")
            continue
        data = {key: row[index[col]] for key, col in wanted.items() if col in index and row[index[col]] != ""}
        try:
            message = ChatMessage.model_validate(data)
        except ValidationError as err:
            yield _bad(start, "not_chat_message", name, f"not a ChatMessage ({_validation_error(err)})")
            continue
        yield _checked(message, start, name)


def detect_format(path: Path) -> FileFormat:
    return "csv" if path.suffix.lower() in (".csv", ".tsv") else "jsonl"


def read_replay_file(
    path: Path, fmt: FileFormat | None = None, columns: CsvColumns = CsvColumns(),
) -> Iterator[ReplayLine]:
    """The file's records in file order; raises OSError/ValueError for a file that cannot be read at all."""
    fmt = fmt or detect_format(path)
    with path.open("rb") as stream:
        if fmt == "csv":
            yield from read_csv(stream, str(path), columns)
        else:
            yield from read_jsonl(stream, str(path))


# -- options ---------------------------------------------------------------------

_TIME = TypeAdapter(datetime)


def parse_speed(text: str) -> float | None:
    """`max` -> None (no waiting); else a positive factor (60 = an hour of history per minute)."""
    if text.strip().lower() == "max":
        return None
    try:
        speed = float(text)
    except ValueError:
        raise ValueError(f"speed must be a positive number or 'max', not {text!r}") from None
    if not speed > 0 or speed == float("inf"):
        raise ValueError(f"speed must be a positive number or 'max', not {text!r}")
    return speed


def parse_time(text: str) -> datetime:
    """ISO 8601 (naive = UTC) or Unix seconds/milliseconds, as in ChatMessage timestamps."""
    try:
        return utc(_TIME.validate_python(text.strip()))
    except ValidationError:
        raise ValueError(f"not a time: {text!r} (use ISO 8601 like 2024-03-01T09:30:00Z, or Unix seconds)") from None


@dataclass(frozen=True)
class TimeWindow:
    """Half-open [start, end): `--end` is the first moment no longer replayed."""

    start: datetime | None = None
    end: datetime | None = None

    def __post_init__(self):
        if self.start and self.end and self.end <= self.start:
            raise ValueError(f"--end ({self.end.isoformat()}) must be after --start ({self.start.isoformat()})")

    def contains(self, ts: datetime) -> bool:
        return (self.start is None or ts >= self.start) and (self.end is None or ts < self.end)

    def describe(self) -> str:
        """The window as the options that set it, e.g. `--start 2024-03-01T09:00:00+00:00`."""
        return " ".join(f"{flag} {ts.isoformat()}" for flag, ts in (("--start", self.start), ("--end", self.end)) if ts)


def due_offset(ts: datetime, first: datetime, speed: float | None) -> float:
    """Seconds after the replay starts at which a message with time `ts` is due."""
    if speed is None:
        return 0.0
    return max(0.0, (ts - first).total_seconds() / speed)


# -- replaying -------------------------------------------------------------------


@dataclass
class ReplaySummary:
    """What happened to every line of the file."""

    sent: int = 0
    skipped: Counter = field(default_factory=Counter)      # reason -> lines
    outside_window: int = 0
    out_of_order: int = 0                                   # earlier than a message before it: sent at once
    undelivered: int = 0                                    # sent but not acknowledged by the broker
    first_time: datetime | None = None
    last_time: datetime | None = None
    wall_seconds: float = 0.0                               # from the start of sending to the last acknowledgement
    file_first: datetime | None = None                      # earliest and latest time of the file's messages,
    file_last: datetime | None = None                       # inside the window or not

    @property
    def span(self) -> timedelta:
        if self.first_time is None or self.last_time is None:
            return timedelta(0)
        return self.last_time - self.first_time

    def lines(self) -> list[str]:
        rate = delivery_rate(self.sent, self.wall_seconds)
        out = [f"sent {self.sent} messages in {self.wall_seconds:.1f} s"
               + (f" ({rate} acknowledged)" if rate else "")
               + (f"; {self.undelivered} NOT delivered" if self.undelivered else "")]
        if self.first_time:
            out.append(f"time span {self.first_time.isoformat()} .. {self.last_time.isoformat()} ({self.span})")
        skipped = sum(self.skipped.values())
        if skipped:
            out.append(f"skipped {skipped} lines: " + ", ".join(f"{n} {r}" for r, n in sorted(self.skipped.items())))
        if self.outside_window:
            out.append(f"{self.outside_window} messages outside --start/--end, not sent")
        if self.out_of_order:
            out.append(f"{self.out_of_order} messages earlier than the one before them (sent without waiting)")
        return out


def delivery_rate(acknowledged: int, seconds: float) -> str:
    """Acknowledged messages per second: the one rate both the progress bar and the summary show."""
    return f"{acknowledged / seconds:.0f} msg/s" if seconds > 0 and acknowledged else ""


def nothing_to_send(summary: ReplaySummary, window: TimeWindow, name: str) -> str:
    """Why a scanned file left nothing to send, in one line (the command exits 1 with it)."""
    skipped = sum(summary.skipped.values())
    if not skipped and not summary.outside_window:
        return f"{name} has no messages"
    why = []
    if skipped:
        reasons = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.skipped.items()))
        why.append(f"{skipped} lines skipped ({reasons})")
    if summary.outside_window:
        span = f"{summary.file_first.isoformat()} .. {summary.file_last.isoformat()}"
        why.append(f"{summary.outside_window} messages outside {window.describe()} (the file's messages span {span})")
    return f"nothing to send from {name}: " + "; ".join(why)


def scan(
    lines: Iterable[ReplayLine], window: TimeWindow, on_error: OnError, max_bytes: int | None = None,
    on_skip: Callable[[ReplayLine], None] | None = None, name: str = "input",
) -> tuple[list[ChatMessage], ReplaySummary]:
    """Check the whole file before anything is sent: under `stop` a bad line refuses the file.

    Returns the messages to send (file order, inside the window) and a summary
    holding the skipped and out-of-window counts and the file's time span (for
    `nothing_to_send` when no message is left). A message larger than
    `max_bytes` is refused here, as `streamer produce` does, rather than sent
    to be dead-lettered by the worker.
    """
    summary = ReplaySummary()
    messages: list[ChatMessage] = []
    for line in lines:
        if line.message is not None and max_bytes is not None:
            size = len(line.message.to_json())
            if size > max_bytes:
                line = _bad(line.line, "oversize", name, f"{size} bytes, more than max_message_bytes={max_bytes}")
        if line.message is None:
            if on_error == "stop":
                raise ReplayStopped(line)
            summary.skipped[line.reason] += 1
            if on_skip:
                on_skip(line)
            continue
        ts = line.message.timestamp
        summary.file_first = min(summary.file_first or ts, ts)
        summary.file_last = max(summary.file_last or ts, ts)
        if not window.contains(ts):
            summary.outside_window += 1
            continue
        messages.append(line.message)
    return messages, summary


def replay(
    messages: list[ChatMessage],
    send: Callable[[ChatMessage], None],
    speed: float | None,
    summary: ReplaySummary | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    idle: Callable[[float], None] | None = None,
    on_sent: Callable[[ChatMessage], None] | None = None,
) -> ReplaySummary:
    """Send `messages` in order, each when due: gaps between original times divided by `speed`.

    Due times are absolute from the start, so waiting never drifts; a message
    earlier than its predecessor is sent at once (order is the file's).
    `idle(seconds)` is called instead of `sleep` when given, so the producer
    can serve delivery callbacks while waiting.
    """
    summary = summary or ReplaySummary()
    wait = idle or sleep
    started = clock()
    previous: datetime | None = None
    for message in messages:
        ts = message.timestamp
        if summary.first_time is None:
            summary.first_time = ts
        if previous is not None and ts < previous:
            summary.out_of_order += 1
        previous = ts
        summary.last_time = max(summary.last_time or ts, ts)
        due = started + due_offset(ts, summary.first_time, speed)
        while (remaining := due - clock()) > 0:
            wait(min(remaining, 0.5))
        send(message)
        summary.sent += 1
        if on_sent:
            on_sent(message)
    summary.wall_seconds = clock() - started
    return summary


# -- a historic file for demos and benchmarks ------------------------------------

_PAIRS = [("cable", "GBPUSD"), ("eurusd", "EURUSD"), ("usdjpy", "USDJPY"), ("aussie", "AUDUSD"), ("fiber", "EURUSD")]
_TEMPLATES = [
    "buy {n}m {pair}",
    "sell {n}m {pair} at {px}",
    "2 way in {n} {pair} pls",
    "px on {n} {pair}?",
    "{pair} {px}/{px2}",
    "cxl my {pair} order",
    "mine {n} {pair}",
    "yours {n} {pair} @ {px}",
    "morning all, quiet one today",
    "sell {k} AAPL lmt {eq}",
    "buy {b} btc at market",
    "ty, done",
]


def synthetic_history(count: int, start: datetime, mean_gap_s: float = 20.0, seed: int = 7) -> list[ChatMessage]:
    """`count` chat messages with exponential gaps from `start`: a historic log for demos and benchmarks."""
    rng = random.Random(seed)
    ts = utc(start)
    out: list[ChatMessage] = []
    for i in range(count):
        name, _ = rng.choice(_PAIRS)
        px = round(rng.uniform(1.05, 1.35), 4)
        text = rng.choice(_TEMPLATES).format(
            n=rng.choice([1, 2, 5, 10, 25, 50]), pair=name, px=px, px2=f"{px + 0.0002:.4f}"[-2:],
            k=rng.choice([100, 500, 1000]), eq=round(rng.uniform(150, 200), 2), b=rng.choice([1, 2, 5]),
        )
        out.append(ChatMessage(
            text=text, sender=f"trader{rng.randint(1, 8)}", channel=f"desk-{rng.choice(['fx', 'eq', 'crypto'])}",
            timestamp=ts, source="synthetic-history",
        ))
        ts += timedelta(seconds=round(rng.expovariate(1.0 / mean_gap_s), 3))
    return out


def write_history(path: Path, messages: Iterable[ChatMessage]) -> int:
    count = 0
    with path.open("wb") as out:
        for message in messages:
            out.write(message.to_json() + b"\n")
            count += 1
    return count


DEFAULT_HISTORY_START = datetime(2024, 3, 1, 8, 0, tzinfo=timezone.utc)


def duration(seconds: float) -> str:
    """h:mm:ss, for schedules and ETAs."""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def publish_history(settings, messages: list[ChatMessage], speed: float | None, summary: ReplaySummary,
                    console) -> None:
    """`replay` onto the input topic with a Kafka producer, a progress bar on `console`, every ack awaited.

    Each record keeps its message's key (`pipeline.message_key`) and gets the
    original time as its Kafka timestamp; records the broker refuses or never
    acknowledges are counted in `summary.undelivered`, and the first few are named.
    The bar counts acknowledged records and its rate is `delivery_rate` over the
    same clock as the summary's, so the two end on the same number (queueing a
    record takes microseconds; its acknowledgement is what a replay is waiting for).
    """
    from confluent_kafka import Producer
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from streamer.streaming.kafka import produce, producer_config
    from streamer.streaming.pipeline import message_key

    def note(text: str) -> None:
        console.print(text, highlight=False, soft_wrap=True)

    if not messages:
        return
    first = messages[0].timestamp
    schedule_s = max(due_offset(m.timestamp, first, speed) for m in messages)
    pace = "as fast as possible" if speed is None else f"at {speed:g}x: about {duration(schedule_s)}"
    note(f"replaying {len(messages)} messages to {settings.input_topic} ({pace})")
    producer = Producer(producer_config(settings))
    errors: list[str] = []
    acknowledged = 0

    with Progress(TextColumn("replaying"), BarColumn(), MofNCompleteColumn(), TextColumn("acknowledged"),
                  TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[eta]}"), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("replay", total=len(messages), rate="", eta="")
        started = time.monotonic()

        def show(eta: str | None = None) -> None:
            elapsed = time.monotonic() - started
            if eta is None:
                if speed is not None:  # paced by the schedule: the last message's due time
                    eta = f"ETA {duration(max(0.0, schedule_s - elapsed))}"
                elif acknowledged:     # paced by the broker: from the rate so far
                    eta = f"ETA {duration((len(messages) - acknowledged) * elapsed / acknowledged)}"
                else:
                    eta = ""
            progress.update(task, completed=acknowledged, rate=delivery_rate(acknowledged, elapsed), eta=eta)

        def delivered(err, record) -> None:
            nonlocal acknowledged
            if err is not None:
                errors.append(err.str())
                if len(errors) <= 5:
                    note(f"[red]not delivered[/red] {err.str()}")
                return
            acknowledged += 1
            show()

        def send(message: ChatMessage) -> None:
            refused = produce(producer, settings.input_topic, message.to_json(), message_key(message), delivered,
                              timestamp=int(message.timestamp.timestamp() * 1000))
            if refused is not None:
                delivered(refused, None)

        replay(messages, send, speed, summary, idle=lambda s: producer.poll(s))
        show(eta="waiting for acks")
        left = producer.flush(30.0)
        summary.wall_seconds = time.monotonic() - started
        errors.extend(["unacknowledged"] * left)
        summary.sent -= len(errors)
        summary.undelivered = len(errors)
        progress.update(task, completed=acknowledged, rate=delivery_rate(summary.sent, summary.wall_seconds), eta="")
    if left:
        note(f"[red]{left} records unacknowledged after 30 s[/red]; is {settings.broker_url} up?")
