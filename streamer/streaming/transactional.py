"""Exactly-once processing: a Kafka transaction per batch (`processing_guarantee=exactly_once`).

The at-least-once Faust worker (`faust_worker.py`) may publish a message's result
twice after a crash; downstream a duplicated trade is a double booking. Here a
confluent-kafka consume-transform-produce loop writes a batch's outputs *and*
the batch's input offsets in one transaction (KIP-98/447), so a reader with
`isolation.level=read_committed` sees each input's result exactly once, crash
or not: a worker killed mid-batch leaves an open transaction that the broker
aborts (or the restarted worker, sharing its `transactional.id`, fences and
aborts on `init_transactions`), and the batch is read again from the last
committed offset.

Measured against the embedded Tansu 0.6: transactions, transactional offset
commits and the last-stable-offset (an open transaction's records are held
back from read_committed readers) work, but records of an *aborted*
transaction are still served to read_committed readers. Parsing the batch
before the transaction opens keeps that window to the milliseconds of
produce+commit; on Apache Kafka aborted records are filtered and the guarantee
is complete.

Faust's own `processing_guarantee="exactly_once"` cannot be used: against the
embedded Tansu it fails at InitProducerId (aiokafka UnknownError), while
librdkafka's transactions work end to end. Decoding, parsing and routing are
`pipeline.process`, as in the Faust worker; HTTP ingest is served by Faust
workers only. GET /metrics, /health and /ready are served by both runners
(here `health.ProbeServer`, started by `worker.py`; `alive`/`ready` below).
"""

from __future__ import annotations

import logging
import socket
import threading
import time

from streamer.settings import Settings
from streamer.streaming.health import assignment_problem, parser_problem
from streamer.streaming.kafka import consumer_config, librdkafka_log, produce, producer_config, source_position
from streamer.streaming.metrics import WorkerMetrics, consumer_lag
from streamer.streaming.pipeline import Topics, process_batch

log = logging.getLogger(__name__)

LAG_QUERY_TIMEOUT_S = 2.0  # each lag refresh waits at most this per broker request, between batches


def transactional_id(settings: Settings) -> str:
    """Stable per worker slot, so a restarted worker fences its crashed predecessor's open transaction."""
    return settings.transactional_id or f"{settings.group_id}-{socket.gethostname()}-{settings.web_port}"


class TransactionalWorker:
    """Consume a batch, parse it, produce its outputs and commit its offsets in one transaction."""

    def __init__(self, settings: Settings, parser, stop: threading.Event | None = None,
                 metrics: WorkerMetrics | None = None):
        from confluent_kafka import Consumer, Producer

        self.settings = settings
        self.parser = parser
        self.stop = stop or threading.Event()
        self.topics = Topics.from_settings(settings)
        self.transactional_id = transactional_id(settings)
        self.producer = Producer(producer_config(
            settings, **{"transactional.id": self.transactional_id,
                         "transaction.timeout.ms": int(settings.transaction_timeout_s * 1000)}))
        self.consumer = Consumer(consumer_config(
            settings, settings.group_id, **{"isolation.level": "read_committed",
                                            # a whole batch is parsed between two polls
                                            "max.poll.interval.ms": int(max(settings.rebalance_timeout_s,
                                                                            settings.transaction_timeout_s) * 1000),
                                            "heartbeat.interval.ms": int(settings.heartbeat_interval_s * 1000)}))
        self.committed_batches = 0
        self.processed = 0
        self.metrics = metrics or WorkerMetrics.for_worker(settings, parser)
        self.published = self.metrics.published  # committed outputs by topic role (parsed, review, ...)
        self.stopped = False  # the consume loop has ended (a liveness probe fails from then on)
        self.assigned: frozenset[tuple[str, int]] = frozenset()  # set by the consumer's rebalance callbacks
        self._lag_due = 0.0

    def alive(self) -> str | None:
        """GET /health: None until the consume loop has ended (starting up, e.g. init_transactions, is alive)."""
        return "the consume loop has stopped" if self.stopped else None

    def ready(self) -> str | None:
        """GET /ready: None once the parser is loaded and input partitions are assigned, else why not."""
        return parser_problem(self.parser) or assignment_problem(self.assigned, self.settings.input_topic)

    def run(self) -> None:
        """Until `stop` is set (SIGTERM/SIGINT): the batch in flight is finished and committed first."""
        from confluent_kafka import KafkaError, KafkaException

        self.producer.init_transactions(self.settings.publish_timeout_s)
        self.consumer.subscribe([self.settings.input_topic], on_assign=self._on_assign, on_revoke=self._on_revoke,
                                on_lost=self._on_revoke)
        try:
            while not self.stop.is_set():
                self._refresh_lag()
                records = self.consumer.consume(num_messages=self.settings.transaction_batch_size, timeout=0.5)
                records = [r for r in records if not self._is_harmless_error(r)]
                if not records:
                    continue
                try:
                    self._commit_batch(records)
                except KafkaException as err:
                    error: KafkaError = err.args[0]
                    if not error.txn_requires_abort():
                        raise  # fatal (fenced by a newer worker with our id, or the broker is gone)
                    log.warning("transaction aborted, batch will be re-read: %s", error.str())
                    self.producer.abort_transaction(self.settings.publish_timeout_s)
                    self._rewind(records)
        finally:
            self.stopped = True
            self.consumer.close()  # leave the group now, not after the session timeout

    def _commit_batch(self, records) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        # Parse the whole batch before the transaction opens: the transaction then lasts milliseconds, not
        # the batch's seconds of generation, so read_committed readers are held back (LSO) only that long.
        started = time.perf_counter()
        results = process_batch([(record.value(), record.key(), source_position(record)) for record in records],
                                self.parser, self.settings.max_message_bytes)
        parse_s = time.perf_counter() - started
        next_offsets: dict[tuple[str, int], int] = {}
        self.producer.begin_transaction()
        for record, (result, key) in zip(records, results):
            refused = produce(self.producer, self.topics.route(result), result.to_json(), key)
            if refused is not None:
                raise KafkaException(refused)  # aborts or stops, as any failed produce in the transaction
            next_offsets[(record.topic(), record.partition())] = record.offset() + 1
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in next_offsets.items()]
        self.producer.send_offsets_to_transaction(offsets, self.consumer.consumer_group_metadata(),
                                                  self.settings.publish_timeout_s)
        self.producer.commit_transaction(self.settings.publish_timeout_s)
        self.committed_batches += 1
        self.processed += len(records)
        self.metrics.record_batch(results, parse_s, getattr(self.parser, "restarts", 0))

    def _on_assign(self, consumer, partitions) -> None:
        self.assigned = frozenset((tp.topic, tp.partition) for tp in partitions)
        self._lag_due = 0.0  # the new partitions' lag at the next turn of the loop

    def _on_revoke(self, consumer, partitions) -> None:
        self.assigned = frozenset()
        self.metrics.set_consumer_lag({})

    def _refresh_lag(self) -> None:
        """Every `lag_refresh_s`, between batches: each assigned partition's high watermark - committed offset."""
        from confluent_kafka import KafkaException, TopicPartition

        now = time.monotonic()
        if now < self._lag_due:
            return
        self._lag_due = now + self.settings.lag_refresh_s
        partitions = [TopicPartition(topic, partition) for topic, partition in sorted(self.assigned)]
        try:
            committed = self.consumer.committed(partitions, timeout=LAG_QUERY_TIMEOUT_S) if partitions else []
            watermarks = {(tp.topic, tp.partition): self.consumer.get_watermark_offsets(tp, LAG_QUERY_TIMEOUT_S)
                          for tp in partitions}
        except KafkaException as err:  # a slow broker: keep the last values, try again next time
            log.warning("consumer lag not refreshed: %s", err.args[0].str())
            return
        known = {tp: marks for tp, marks in watermarks.items() if marks is not None}  # None: timed out
        self.metrics.set_consumer_lag(consumer_lag({tp: high for tp, (_, high) in known.items()},
                                                   {(tp.topic, tp.partition): tp.offset for tp in committed},
                                                   {tp: low for tp, (low, _) in known.items()}))

    def _rewind(self, records) -> None:
        """Seek each partition back to the batch's first record, so the aborted batch is processed again."""
        from confluent_kafka import TopicPartition

        first: dict[tuple[str, int], int] = {}
        for record in records:
            first.setdefault((record.topic(), record.partition()), record.offset())
        for (topic, partition), offset in first.items():
            self.consumer.seek(TopicPartition(topic, partition, offset))

    @staticmethod
    def _is_harmless_error(record) -> bool:
        from confluent_kafka import KafkaError, KafkaException

        error = record.error()
        if error is None:
            return False
        if error.code() == KafkaError._PARTITION_EOF:
            return True
        librdkafka_log.warning("consumer error: %s", error.str())
        if error.fatal():
            raise KafkaException(error)
        return True
