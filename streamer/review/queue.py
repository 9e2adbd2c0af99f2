"""The desk's view of `trades.review`, kept in step with Kafka by one background thread.

Reading: the review topic is read from the desk's consumer group's committed
offsets (all partitions assigned, so every desk sees the whole queue); the
state topic (claims and decisions, keyed by item) is read from its beginning,
so a restarted desk knows what was decided and does not offer it again.

Deciding: the outputs (the corrected trade on `trades.parsed`, or a dead letter),
the `trades.corrections` record and the `decided` state record are produced and
acknowledged by every in-sync replica first; only then does the consumer commit,
and only up to the oldest item still open in each partition (`CommitTracker`).
If the desk dies between the outputs and the state record (one flush), the item
shows again after a restart: at least once, never lost.

Claims: opening an item writes a claim and waits to read it back; the first live
claim in the state topic's log order holds the item (`ClaimBook`), so two desks
never both accept it. A claim lapses after `review_claim_ttl_s`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import Callable

from schemas import Correction, DeadLetter, Decision, TradeFields
from streamer.review.decisions import (
    ClaimBook, CommitTracker, ReviewState, accepted_trade, claim_record, correction,
)
from streamer.review.items import ReviewItem, read_item
from streamer.settings import Settings
from streamer.streaming.kafka import (
    BrokerUnavailable, consumer_config, ensure_topics, partitions_of, produce_acknowledged, producer_config,
    source_position,
)
from streamer.streaming.pipeline import message_key

log = logging.getLogger(__name__)

POLL_S = 0.1


class ReviewError(RuntimeError):
    """A decision the desk cannot carry out (claimed by someone else, already decided, broker refused)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class ReviewQueue:
    """Open review items and the decisions on them, for one desk process (any number of reviewers)."""

    def __init__(self, settings: Settings, desk_id: str | None = None, clock: Callable[[], datetime] = utcnow):
        self.settings = settings
        self.desk_id = desk_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"
        self.clock = clock
        self.items: dict[str, ReviewItem] = {}
        self.book = ClaimBook()
        self.tracker = CommitTracker()
        self._lock = threading.RLock()
        self._applied: dict[int, int] = {}          # state partition -> last offset applied
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._commit_wanted = threading.Event()
        self._committed = threading.Condition(self._lock)
        self._commits = 0
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    # --- life cycle -------------------------------------------------------------------------------------------

    def start(self, timeout_s: float = 30.0) -> "ReviewQueue":
        """Create missing topics, connect, read the state topic up to now; raises BrokerUnavailable."""
        from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

        s = self.settings
        ensure_topics(s, [s.review_topic, s.parsed_topic, s.deadletter_topic, s.corrections_topic])
        # one partition: one log order for every claim; compacted: the latest record per item is what matters
        ensure_topics(s, [s.review_state_topic], partitions=1, config={"cleanup.policy": "compact"})
        self.producer = Producer(producer_config(s))
        self.review_consumer = Consumer(consumer_config(s, s.review_group_id))
        self.state_consumer = Consumer(consumer_config(s, f"{s.review_group_id}.state.{self.desk_id}"))
        self.review_consumer.assign([TopicPartition(s.review_topic, p)
                                    for p in partitions_of(self.review_consumer, s.review_topic, s)])
        state_partitions = partitions_of(self.state_consumer, s.review_state_topic, s)
        self._state_ends = {}
        for p in state_partitions:
            low, high = self.state_consumer.get_watermark_offsets(TopicPartition(s.review_state_topic, p), timeout=10)
            if high > low:
                self._state_ends[p] = high - 1
        self.state_consumer.assign([TopicPartition(s.review_state_topic, p, OFFSET_BEGINNING)
                                    for p in state_partitions])
        self._thread = threading.Thread(target=self._run, name="review-queue", daemon=True)
        self._thread.start()
        if not self._caught_up.wait(timeout_s):
            self.close()
            raise BrokerUnavailable(f"the desk could not read {s.review_state_topic!r} within {timeout_s:.0f} s")
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        for client in ("review_consumer", "state_consumer"):
            if hasattr(self, client):
                getattr(self, client).close()
        if hasattr(self, "producer"):
            self.producer.flush(10)

    def _run(self) -> None:
        try:
            self._check_caught_up()
            last_commit = 0.0
            while not self._stop.is_set():
                for record in self.state_consumer.consume(100, POLL_S):
                    if not record.error():
                        self._apply_state(record)
                self._check_caught_up()
                if self._caught_up.is_set():
                    for record in self.review_consumer.consume(100, POLL_S):
                        if not record.error():
                            self._read_review(record)
                if self._commit_wanted.is_set() or time.monotonic() - last_commit > 5:
                    self._commit()
                    last_commit = time.monotonic()
        except BaseException as err:  # reported to every waiting caller, and by `healthy`
            log.exception("the review queue's reader stopped")
            self._failure = err
            with self._lock:
                self._committed.notify_all()

    def _check_caught_up(self) -> None:
        if not self._caught_up.is_set() and all(self._applied.get(p, -1) >= end for p, end in self._state_ends.items()):
            self._caught_up.set()

    @property
    def healthy(self) -> bool:
        return self._failure is None and self._thread is not None and self._thread.is_alive()

    # --- reading ----------------------------------------------------------------------------------------------

    def _apply_state(self, record) -> None:
        try:
            state = ReviewState.model_validate_json(record.value())
        except ValueError:
            log.warning("state record %s/%d/%d is not a review state; ignored",
                        record.topic(), record.partition(), record.offset())
            return
        with self._lock:
            self.book.apply(state)
            self._applied[record.partition()] = record.offset()
            item = self.items.get(state.item)
            if item is not None:
                if state.kind == "skipped":
                    item.skipped_by.add(state.reviewer)
                if state.item in self.book.decided:
                    self.tracker.close(item.position.partition, item.position.offset)
                    del self.items[state.item]
            self._committed.notify_all()

    def _read_review(self, record) -> None:
        item = read_item(record.value() or b"", source_position(record), self.clock())
        with self._lock:
            self.tracker.read(record.partition(), record.offset())
            if item.id in self.book.decided:
                self.tracker.close(record.partition(), record.offset())
                return
            item.skipped_by = {s.reviewer for s in self.book.history if s.item == item.id and s.kind == "skipped"}
            self.items[item.id] = item

    def _commit(self) -> None:
        from confluent_kafka import KafkaError, KafkaException, TopicPartition

        self._commit_wanted.clear()
        with self._lock:
            positions = self.tracker.positions()
        if positions:
            try:
                self.review_consumer.commit(offsets=[TopicPartition(self.settings.review_topic, p, o)
                                                     for p, o in positions.items()], asynchronous=False)
            except KafkaException as err:
                if err.args[0].code() != KafkaError._NO_OFFSET:  # nothing to commit
                    raise
        with self._lock:
            self._commits += 1
            self._committed.notify_all()

    def open_items(self) -> list[ReviewItem]:
        """Undecided items, oldest first."""
        with self._lock:
            items = list(self.items.values())
        return sorted(items, key=lambda item: (item.arrived or self.clock(), item.position.partition,
                                               item.position.offset))

    def get(self, item_id: str) -> ReviewItem | None:
        with self._lock:
            return self.items.get(item_id)

    def is_decided(self, item_id: str) -> bool:
        with self._lock:
            return item_id in self.book.decided

    def next_item(self, reviewer: str, after: str | None = None) -> ReviewItem | None:
        """The oldest open item no one else holds, the ones this reviewer skipped last."""
        now = self.clock()
        candidates = []
        for item in self.open_items():
            holder = self.book.holder(item.id, now)
            if item.id == after or (holder is not None and holder.reviewer != reviewer):
                continue
            candidates.append(item)
        candidates.sort(key=lambda item: reviewer in item.skipped_by)  # stable: oldest first within each group
        return candidates[0] if candidates else None

    def metrics(self) -> dict:
        """Queue depth, the oldest item's age, decisions in the last hour (overall and per reviewer)."""
        now = self.clock()
        items = self.open_items()
        oldest = min((item.arrived for item in items if item.arrived), default=None)
        with self._lock:
            recent = self.book.decisions_since(now - timedelta(hours=1))
        return {
            "queue_depth": len(items),
            "oldest_age_s": round((now - oldest).total_seconds(), 1) if oldest else None,
            "decisions_last_hour": len(recent),
            "decisions_last_hour_by_reviewer": dict(Counter(state.reviewer for state in recent)),
            "desk": self.desk_id,
        }

    # --- claims and decisions ---------------------------------------------------------------------------------

    def claim(self, item_id: str, reviewer: str, timeout_s: float = 10.0):
        """Claim (or renew) `item_id` for `reviewer`; returns the holder as the state topic's order decides."""
        if self.is_decided(item_id):
            raise ReviewError(f"{item_id} is already decided")
        record = claim_record(item_id, reviewer, self.desk_id, self.clock(), self.settings.review_claim_ttl_s)
        self._publish_state_and_wait(record, timeout_s)
        with self._lock:
            return self.book.holder(item_id, self.clock())

    def release(self, item_id: str, reviewer: str) -> None:
        record = ReviewState(kind="release", item=item_id, reviewer=reviewer, desk=self.desk_id, at=self.clock())
        self._publish_state_and_wait(record, 10.0)

    def decide(self, item_id: str, reviewer: str, decision: Decision, fields: TradeFields | None = None,
               timeout_s: float | None = None) -> Correction:
        """Carry out one decision: outputs and state acknowledged, then the offset committed."""
        timeout_s = timeout_s or self.settings.publish_timeout_s
        item = self.get(item_id)
        if item is None:
            raise ReviewError(f"no open item {item_id}")
        holder = self.claim(item_id, reviewer)
        if holder is None or not holder.held_by(reviewer, self.desk_id):
            raise ReviewError(f"{item_id} is being reviewed by {holder.reviewer if holder else 'someone else'}")
        if decision in ("accept", "not_trade") and item.malformed:
            raise ReviewError("a malformed record can only be dead-lettered or skipped")
        if decision == "accept" and fields is None:
            raise ReviewError("accept needs the corrected fields")
        if decision == "dead_letter" and not item.malformed:
            raise ReviewError("only a malformed record can be dead-lettered; use not a trade")
        now = self.clock()
        record = correction(item, decision, reviewer, now, fields)
        s = self.settings
        outputs: list[tuple[str, bytes | None, bytes]] = []
        if decision == "accept":
            flagged = item.flagged
            trade = accepted_trade(flagged.trade, flagged.message_id, item.id, fields, reviewer, now,
                                   provenance=flagged.provenance, source=flagged.source)
            outputs.append((s.parsed_topic, message_key(flagged.message).encode(), trade.to_json()))
        elif decision == "dead_letter":
            letter = DeadLetter.from_bytes(item.raw, "schema_invalid", f"review desk, {reviewer}: {item.error}",
                                           source=item.position)
            outputs.append((s.deadletter_topic, None, letter.to_json()))
        outputs.append((s.corrections_topic, item.id.encode(), record.to_json()))
        kind = "skipped" if decision == "skip" else "decided"
        state = ReviewState(kind=kind, item=item.id, reviewer=reviewer, desk=self.desk_id, at=now, decision=decision)
        self._produce_acknowledged(outputs + [(s.review_state_topic, item.id.encode(), state.model_dump_json().encode())],
                                   timeout_s)
        with self._lock:
            self.book.apply(state)
            if kind == "skipped":
                item.skipped_by.add(reviewer)
            else:
                self.tracker.close(item.position.partition, item.position.offset)
                self.items.pop(item.id, None)
            target = self._commits + 1
        self._commit_wanted.set()
        with self._lock:
            if not self._committed.wait_for(lambda: self._commits >= target or self._failure is not None, timeout_s):
                raise ReviewError("the review consumer did not commit in time")
        if self._failure is not None:
            raise ReviewError(f"the review queue's reader stopped: {self._failure}")
        return record

    def _publish_state_and_wait(self, state: ReviewState, timeout_s: float) -> None:
        """Produce a state record and wait until the reader has applied it, so the log order has spoken."""
        delivered = self._produce_acknowledged(
            [(self.settings.review_state_topic, state.item.encode(), state.model_dump_json().encode())], timeout_s)
        partition, offset = delivered[-1]
        with self._lock:
            if not self._committed.wait_for(
                    lambda: self._applied.get(partition, -1) >= offset or self._failure is not None, timeout_s):
                raise ReviewError(f"the desk did not read back its own {state.kind} in {timeout_s:.0f} s")
        if self._failure is not None:
            raise ReviewError(f"the review queue's reader stopped: {self._failure}")

    def _produce_acknowledged(self, records: list[tuple[str, bytes | None, bytes]],
                              timeout_s: float) -> list[tuple[int, int]]:
        """Produce in order and wait for every acknowledgement; ReviewError naming the first refusal."""
        try:
            return produce_acknowledged(self.producer, records, timeout_s)
        except BrokerUnavailable as err:
            raise ReviewError(str(err)) from None
