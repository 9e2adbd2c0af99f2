"""Re-run the parser over a range of an existing topic into tagged output topics.

For back-testing a new model or adapter on history: the range is read by a
consumer that is *assigned* its partitions (it never joins a group) under a
throwaway group id and never commits, so the live workers' committed offsets
are untouched. Each input record goes through the same decode -> parse ->
route path as the live agents (`streamer.streaming.pipeline`) and ends on exactly one of
`<parsed>.<tag>`, `<review>.<tag>`, `<deadletter>.<tag>`.

Range semantics: offsets are half-open [from, to); a time range selects the
records whose Kafka timestamp t has from <= t < to. Brokers with a time index
start and stop the scan at `offsets_for_times`; where that lookup is not
implemented (Tansu 0.6 answers 0 for any time), the scan runs from the start
to the end of each partition and the timestamps do the selecting.

Progress is counted through the planned offsets (`offset_spans`, `RangeProgress`):
the total is fixed before the first record is read.
"""

from __future__ import annotations

import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Callable, Iterator

from schemas import SourcePosition
from streamer.settings import Settings
from streamer.streaming.kafka import produce, source_position
from streamer.streaming.pipeline import Topics, process

TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]+$")
MAX_TAG_LENGTH = 100


def check_tag(tag: str) -> str:
    if not tag or len(tag) > MAX_TAG_LENGTH or not TOPIC_NAME.match(tag):
        raise ValueError(f"tag {tag!r} must be 1-{MAX_TAG_LENGTH} characters of A-Z a-z 0-9 . _ - (it names topics)")
    return tag


def model_tag(model_file: str, adapter: str | None, prompt_version: str) -> str:
    """A tag naming what produced the results, e.g. `smollm2-135m-instruct.q4_1.base.fewshot-v1`."""
    stem = model_file.rsplit(".gguf", 1)[0]
    raw = f"{stem}.{adapter or 'base'}.{prompt_version}".lower()
    return re.sub(r"[^a-z0-9._-]+", "-", raw).strip("-.")[:MAX_TAG_LENGTH]


def tagged_topics(settings: Settings, tag: str, source_topic: str) -> Topics[str]:
    """`source_topic` in, the settings' output topics with `.<tag>` out."""
    tag = check_tag(tag)
    return Topics(source_topic, f"{settings.parsed_topic}.{tag}", f"{settings.review_topic}.{tag}",
                  f"{settings.deadletter_topic}.{tag}", f"{settings.nontrade_topic}.{tag}")


@dataclass(frozen=True)
class RangeSpec:
    """Which records of the topic: by Kafka timestamp or by offset (per partition), half-open."""

    from_time: datetime | None = None
    to_time: datetime | None = None
    from_offset: int | None = None
    to_offset: int | None = None

    def __post_init__(self):
        by_time = self.from_time is not None or self.to_time is not None
        by_offset = self.from_offset is not None or self.to_offset is not None
        if by_time and by_offset:
            raise ValueError("give a time range or an offset range, not both")
        if self.from_time and self.to_time and self.to_time <= self.from_time:
            raise ValueError("--to-timestamp must be after --from-timestamp")
        for name, value in (("--from-offset", self.from_offset), ("--to-offset", self.to_offset)):
            if value is not None and value < 0:
                raise ValueError(f"{name} must be 0 or more, not {value}")
        if self.from_offset is not None and self.to_offset is not None and self.to_offset <= self.from_offset:
            raise ValueError("--to-offset must be greater than --from-offset (the range is [from, to))")

    def selects_time(self, ts: datetime | None) -> bool:
        """Records without a timestamp are outside any time range."""
        if self.from_time is None and self.to_time is None:
            return True
        if ts is None:
            return False
        return (self.from_time is None or ts >= self.from_time) and (self.to_time is None or ts < self.to_time)


@dataclass
class PartitionRange:
    partition: int
    start: int               # an offset, or confluent_kafka.OFFSET_BEGINNING
    end: int | None = None   # first offset not read; None = up to the end of the partition


def _ms(ts: datetime) -> int:
    return int(ts.timestamp() * 1000)


def plan_ranges(consumer, topic: str, spec: RangeSpec, partitions: list[int] | None = None,
                timeout_s: float = 10.0) -> list[PartitionRange]:
    """Start and end offsets per partition; raises LookupError for a missing topic or partition."""
    from confluent_kafka import OFFSET_BEGINNING, TopicPartition

    metadata = consumer.list_topics(topic, timeout=timeout_s)
    info = metadata.topics.get(topic)
    if info is None or info.error is not None or not info.partitions:
        raise LookupError(f"topic {topic!r} does not exist at the broker")
    known = sorted(info.partitions)
    chosen = known if partitions is None else list(dict.fromkeys(partitions))
    missing = [p for p in chosen if p not in info.partitions]
    if missing:
        raise LookupError(f"topic {topic!r} has partitions {known}, not {missing}")
    ranges = [PartitionRange(p, OFFSET_BEGINNING, spec.to_offset) for p in chosen]
    if spec.from_offset is not None:
        for r in ranges:
            # Below the low watermark (deleted by retention) starts at the oldest record; past the
            # end, the consumer's reset to `latest` makes the range empty instead of re-reading it all.
            low, _ = consumer.get_watermark_offsets(TopicPartition(topic, r.partition), timeout=timeout_s)
            r.start = max(low, spec.from_offset)
    if spec.from_time is not None:
        found = consumer.offsets_for_times([TopicPartition(topic, r.partition, _ms(spec.from_time)) for r in ranges],
                                           timeout=timeout_s)
        for r, tp in zip(ranges, found):
            r.start = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING  # -1: nothing that late; the EOF ends it
    if spec.to_time is not None:
        found = consumer.offsets_for_times([TopicPartition(topic, r.partition, _ms(spec.to_time)) for r in ranges],
                                           timeout=timeout_s)
        for r, tp in zip(ranges, found):
            # Only a lookup past the start is trusted as an end: a broker without a time index
            # answers 0, and an empty range is still empty when scanned to the end.
            r.end = tp.offset if tp.offset > max(r.start, 0) else None
    return ranges


def partition_ends(consumer, topic: str, partitions: list[int], timeout_s: float = 10.0) -> dict[int, tuple[int, int]]:
    """(low watermark, offset after the last record) per partition, for the progress bar's total.

    Tansu 0.6 reports the last batch's base offset + 1 as the high watermark,
    so the last batch is read (from high - 1 to the partition's end) to find
    the real end; on Apache Kafka that reads at most one record. A partition
    that does not answer within `timeout_s` keeps its watermark. Use a consumer
    of its own: this one is assigned for the lookup and left unassigned.
    """
    from confluent_kafka import KafkaError, TopicPartition

    ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s) for p in partitions}
    probing = {p for p, (low, high) in ends.items() if high > low}
    if not probing:
        return ends
    consumer.assign([TopicPartition(topic, p, ends[p][1] - 1) for p in probing])
    deadline = time.monotonic() + timeout_s
    try:
        while probing and time.monotonic() < deadline:
            record = consumer.poll(0.2)
            if record is None:
                continue
            if record.error() is not None:
                if record.error().code() == KafkaError._PARTITION_EOF:
                    probing.discard(record.partition())
                continue
            low, end = ends[record.partition()]
            ends[record.partition()] = (low, max(end, record.offset() + 1))
    finally:
        consumer.unassign()
    return ends


@dataclass(frozen=True)
class OffsetSpan:
    """The offsets a partition's scan goes through, as planned: [first, end)."""

    partition: int
    first: int
    end: int


def offset_spans(ranges: list[PartitionRange], ends: dict[int, tuple[int, int]]) -> list[OffsetSpan]:
    """Each range clipped to its partition's (low, end) offsets: what `read_range` will go through.

    A range that starts at the beginning (or below the low watermark) starts at
    the low watermark; an open end is the partition's end; a start past the end
    is an empty span (the consumer resets to the end and reads nothing).
    """
    spans = []
    for r in ranges:
        low, end = ends[r.partition]
        first = max(low, r.start)  # OFFSET_BEGINNING is negative
        last = end if r.end is None else min(end, r.end)
        spans.append(OffsetSpan(r.partition, first, max(first, last)))
    return spans


class RangeProgress:
    """How far the scan is through the planned offsets: the progress bar's done and total.

    Counted in offsets, not records, so gaps (transaction markers, compaction)
    do not leave the bar short of its total. Records appended to a partition
    after the plan are still read (the scan runs to the partition's end) and are
    counted apart in `appended`, never by raising the total.
    """

    def __init__(self, spans: list[OffsetSpan]):
        self.spans = {s.partition: s for s in spans}
        self.total = sum(s.end - s.first for s in spans)
        self._next = {s.partition: s.first for s in spans}  # the offset after the last one read

    def advance(self, partition: int, offset: int) -> None:
        if partition in self._next:
            self._next[partition] = max(self._next[partition], offset + 1)

    def finish(self) -> None:
        """The scan reached every partition's end: offsets without a record (markers, compacted) are passed too."""
        for p, s in self.spans.items():
            self._next[p] = max(self._next[p], s.end)

    @property
    def done(self) -> int:
        return sum(min(self._next[p], s.end) - s.first for p, s in self.spans.items())

    @property
    def appended(self) -> int:
        return sum(max(0, self._next[p] - s.end) for p, s in self.spans.items())

    def describe(self) -> str:
        """`done/total offsets`, and the records read past the planned end if any."""
        text = f"{self.done}/{self.total} offsets"
        return text + (f" +{self.appended} past the planned end" if self.appended else "")


class RangeStalled(RuntimeError):
    """A partition stopped delivering before the end of its range (e.g. an open transaction)."""


def read_range(consumer, topic: str, ranges: list[PartitionRange], stall_timeout_s: float = 30.0) -> Iterator:
    """The records of `ranges` in offset order per partition; stops at each range's end or partition EOF.

    The consumer must have `enable.partition.eof` set; it is assigned, never subscribed.
    """
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    open_parts = {r.partition: r for r in ranges if r.end is None or r.start < 0 or r.start < r.end}
    if not open_parts:
        return
    consumer.assign([TopicPartition(topic, r.partition, r.start) for r in open_parts.values()])
    last_progress = time.monotonic()
    while open_parts:
        record = consumer.poll(0.5)
        if record is None:
            if time.monotonic() - last_progress > stall_timeout_s:
                raise RangeStalled(f"{topic}: partitions {sorted(open_parts)} delivered nothing for "
                                   f"{stall_timeout_s:.0f} s before the end of the range")
            continue
        last_progress = time.monotonic()
        error = record.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                open_parts.pop(record.partition(), None)
                continue
            raise KafkaException(error)
        r = open_parts.get(record.partition())
        if r is None:
            continue
        if r.end is not None and record.offset() >= r.end:
            open_parts.pop(record.partition())
            continue
        yield record
        last_progress = time.monotonic()  # the caller's parse time is not a stall


def range_consumer(settings: Settings, purpose: str):
    """A consumer with its own throwaway group id that never commits, so no real group is touched."""
    from confluent_kafka import Consumer

    from streamer.streaming.kafka import consumer_config

    return Consumer(consumer_config(
        settings, f"streamer-{purpose}-{uuid.uuid4().hex[:12]}",
        **{"enable.partition.eof": True, "enable.auto.commit": False, "enable.auto.offset.store": False,
           "auto.offset.reset": "latest"},
    ))


@dataclass
class ReprocessSummary:
    read: int = 0
    outside_time: int = 0                                   # read but outside --from/--to-timestamp
    outputs: Counter = field(default_factory=Counter)      # kind -> records published
    undelivered: int = 0
    delivery_errors: list[str] = field(default_factory=list)
    wall_seconds: float = 0.0


def reprocess(
    settings: Settings, parser, ranges: list[PartitionRange], spec: RangeSpec, topics: Topics[str],
    consumer, producer, on_record: Callable[[SourcePosition], None] | None = None,
) -> ReprocessSummary:
    """`pipeline.process` for each record of `topics.input` in range, published to `topics.route`; waits for
    every delivery. `on_record` gets each record's position once it is handled (for `RangeProgress`)."""
    summary = ReprocessSummary()
    started = time.monotonic()

    def failed(topic: str, error) -> None:
        summary.undelivered += 1
        if len(summary.delivery_errors) < 5:
            summary.delivery_errors.append(f"{topic}: {error.str()}")

    def delivered(err, msg) -> None:
        if err is not None:
            failed(msg.topic(), err)

    for record in read_range(consumer, topics.input, ranges):
        summary.read += 1
        position = source_position(record)
        if not spec.selects_time(position.timestamp):
            summary.outside_time += 1
        else:
            result, key = process(record.value(), record.key(), position, parser, settings.max_message_bytes)
            topic = topics.route(result)
            refused = produce(producer, topic, result.to_json(), key, delivered)
            if refused is not None:
                failed(topic, refused)
            summary.outputs[result.kind] += 1
        if on_record:
            on_record(position)
    summary.undelivered += producer.flush(30.0)
    summary.wall_seconds = time.monotonic() - started
    return summary
