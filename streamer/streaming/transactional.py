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
workers only.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections import Counter

from streamer.settings import Settings
from streamer.streaming.kafka import consumer_config, librdkafka_log, produce, producer_config, source_position
from streamer.streaming.pipeline import Topics, process_batch

log = logging.getLogger(__name__)


def transactional_id(settings: Settings) -> str:
    """Stable per worker slot, so a restarted worker fences its crashed predecessor's open transaction."""
    return settings.transactional_id or f"{settings.group_id}-{socket.gethostname()}-{settings.web_port}"


class TransactionalWorker:
    """Consume a batch, parse it, produce its outputs and commit its offsets in one transaction."""

    def __init__(self, settings: Settings, parser, stop: threading.Event | None = None):
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
        self.published: Counter[str] = Counter()  # committed outputs by topic role (parsed, review, ...)

    def run(self) -> None:
        """Until `stop` is set (SIGTERM/SIGINT): the batch in flight is finished and committed first."""
        from confluent_kafka import KafkaError, KafkaException

        self.producer.init_transactions(self.settings.publish_timeout_s)
        self.consumer.subscribe([self.settings.input_topic])
        try:
            while not self.stop.is_set():
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
            self.consumer.close()  # leave the group now, not after the session timeout

    def _commit_batch(self, records) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        # Parse the whole batch before the transaction opens: the transaction then lasts milliseconds, not
        # the batch's seconds of generation, so read_committed readers are held back (LSO) only that long.
        results = process_batch([(record.value(), record.key(), source_position(record)) for record in records],
                                self.parser, self.settings.max_message_bytes)
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
        self.published.update(Topics.role(result) for result, _ in results)

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
