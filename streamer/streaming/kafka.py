"""confluent-kafka configuration built from `Settings`, shared by every non-Faust client.

`streamer produce`, `streamer consume`, replay tools and the tests talk to Kafka
through confluent-kafka; these helpers keep their settings in one place:
producers wait for all in-sync replicas (acks=all) and are idempotent, so a
retried send is not written twice; consumers commit only by hand. Every client
gets the TLS/SASL keys of `security.librdkafka_security`, and `check_connection`
(run by `ensure_topics` before any command starts) turns an untrusted certificate
or a refused sign-in into one line at once, where librdkafka would retry forever.
"""

from __future__ import annotations

import logging
import socket
import time
from datetime import datetime, timezone
from typing import Callable, Iterable

from schemas import SourcePosition
from streamer.settings import Settings
from streamer.streaming.security import (
    KafkaSecurityError, connection_failure, librdkafka_security, lost_connection, uses_sasl, uses_tls,
)

# librdkafka's own log lines (one per failed connect, hundreds a minute) go here, not to stderr;
# the commands report what failed themselves. Configure logging to see them.
librdkafka_log = logging.getLogger(__name__)
librdkafka_log.addHandler(logging.NullHandler())


METADATA_POLL_S = 0.5  # how often check_connection looks at librdkafka's errors while it waits for metadata


class BrokerUnavailable(RuntimeError):
    """The broker did not answer, or refused a topic; the message says which and where."""


def bootstrap_servers(settings: Settings) -> str:
    """`kafka://a:9092;kafka://b:9092` (Faust's form) -> `a:9092,b:9092` (librdkafka's)."""
    servers = []
    for part in settings.broker_url.replace(",", ";").split(";"):
        part = part.strip()
        if part:
            servers.append(part.split("://", 1)[-1].rstrip("/"))
    if not servers:
        raise ValueError(f"broker_url has no host: {settings.broker_url!r}")
    return ",".join(servers)


def producer_config(settings: Settings, **overrides) -> dict:
    """A producer that reports a record delivered only once every in-sync replica has it."""
    return {
        "bootstrap.servers": bootstrap_servers(settings),
        "acks": "all",
        "enable.idempotence": True,
        "client.id": "tradechat-streamer",
        "logger": librdkafka_log,
        **librdkafka_security(settings),
        **overrides,
    }


def consumer_config(settings: Settings, group_id: str, **overrides) -> dict:
    """A consumer that starts from the oldest record and commits only when told to."""
    return {
        "bootstrap.servers": bootstrap_servers(settings),
        "group.id": group_id,
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "isolation.level": "read_committed",
        "session.timeout.ms": int(settings.session_timeout_s * 1000),
        "fetch.wait.max.ms": settings.fetch_max_wait_ms,
        "client.id": "tradechat-streamer",
        "logger": librdkafka_log,
        **librdkafka_security(settings),
        **overrides,
    }


def record_time(record) -> datetime | None:
    """A confluent-kafka record's broker timestamp, if it has one."""
    kind, millis = record.timestamp()
    return datetime.fromtimestamp(millis / 1000, timezone.utc) if kind and millis >= 0 else None


def source_position(record) -> SourcePosition:
    """Where a confluent-kafka record came from, with its broker timestamp."""
    return SourcePosition(topic=record.topic(), partition=record.partition(), offset=record.offset(),
                          timestamp=record_time(record))


def produce(producer, topic: str, value: bytes, key: bytes | str | None = None,
            on_delivery: Callable | None = None, **options):
    """`producer.produce`, waiting for room while the local queue is full; the error if it cannot be queued.

    Returns None once the record is queued (`on_delivery` then reports the
    broker's answer), or the `KafkaError` that refused it (unknown topic, too
    large), which the caller reports: a record is never dropped silently.
    """
    from confluent_kafka import KafkaException

    while True:
        try:
            producer.produce(topic, key=key, value=value, on_delivery=on_delivery, **options)
            break
        except BufferError:  # the local queue is full: let deliveries drain
            producer.poll(0.5)
        except KafkaException as err:
            return err.args[0]
    producer.poll(0)
    return None


def produce_acknowledged(producer, records: Iterable[tuple[str, bytes | None, bytes]],
                         timeout_s: float) -> list[tuple[int, int]]:
    """Produce (topic, key, value) records in order and wait until every one is acknowledged.

    Returns each record's (partition, offset); raises BrokerUnavailable naming
    the first record the broker refused or left unacknowledged.
    """
    records = list(records)
    outcomes: list = [None] * len(records)

    def delivered(index: int):
        def callback(err, message) -> None:
            outcomes[index] = err or (message.partition(), message.offset())
        return callback

    for index, (topic, key, value) in enumerate(records):
        refused = produce(producer, topic, value, key=key, on_delivery=delivered(index))
        if refused is not None:
            raise BrokerUnavailable(f"{topic} refused a record: {refused.str()}")
    left = producer.flush(timeout_s)
    for (topic, _, _), outcome in zip(records, outcomes):
        if outcome is None:
            raise BrokerUnavailable(f"{topic}: {left or 'a'} record(s) not acknowledged in {timeout_s:.0f} s")
        if not isinstance(outcome, tuple):
            raise BrokerUnavailable(f"{topic} did not take a record: {outcome.str()}")
    return outcomes


def partitions_of(consumer, topic: str, settings: Settings, timeout_s: float = 10.0) -> list[int]:
    """The partitions of `topic`; BrokerUnavailable when the broker does not answer or has no such topic."""
    from confluent_kafka import KafkaException

    if uses_tls(settings) or uses_sasl(settings):  # the consumer itself would retry a refused handshake for timeout_s
        check_connection(settings, timeout_s)
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
    except KafkaException as err:
        raise BrokerUnavailable(f"no answer from the broker at {settings.broker_url}: {err.args[0].str()}") from None
    if metadata is None or metadata.error is not None or not metadata.partitions:
        raise BrokerUnavailable(f"topic {topic!r} does not exist at {settings.broker_url}")
    return sorted(metadata.partitions)


def ensure_topics(settings: Settings, names: Iterable[str], timeout_s: float = 10.0, partitions: int | None = None,
                  config: dict[str, str] | None = None) -> list[str]:
    """Create the topics that do not exist yet; return those created.

    New topics get `partitions` (default: the settings' `topic_partitions`),
    the settings' replication, and `config` (e.g. cleanup.policy=compact).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    admin, existing = _connected_admin(settings, timeout_s)
    wanted = [name for name in dict.fromkeys(names) if name not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(name, partitions or settings.topic_partitions, settings.topic_replication_factor, config=config or {})
         for name in wanted],
        request_timeout=timeout_s,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
        except KafkaException as err:
            if err.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another worker won the race
                raise BrokerUnavailable(f"cannot create topic {name!r}: {err.args[0].str()}") from None
    return created


def check_connection(settings: Settings, timeout_s: float = 10.0) -> None:
    """Connect and read the cluster's metadata; BrokerUnavailable in one line naming the broker and the cause.

    An untrusted certificate, a refused sign-in, or every broker down after
    the connection was made fails within a moment, not after `timeout_s`.
    """
    _connected_admin(settings, timeout_s)


def _connected_admin(settings: Settings, timeout_s: float):
    """An AdminClient that has read the cluster's metadata, and the names of the topics it holds."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    servers = bootstrap_servers(settings)
    if not any(_accepts_connections(server) for server in servers.split(",")):  # fail now, not after timeout_s
        raise BrokerUnavailable(f"no broker listens at {settings.broker_url}")
    errors: list = []
    failures = _FailureLog()
    try:
        admin = AdminClient({"bootstrap.servers": servers, "logger": failures.logger, "error_cb": errors.append,
                             **librdkafka_security(settings)})
    except KafkaSecurityError as err:
        raise BrokerUnavailable(str(err)) from None
    except KafkaException as err:  # e.g. a CA or key file librdkafka cannot read
        raise BrokerUnavailable(f"cannot set up a client for {settings.broker_url}: {err.args[0].str()}") from None
    deadline = time.monotonic() + timeout_s
    transport = None  # the latest (broker, reason) librdkafka lost a connection with
    while True:
        try:
            return admin, set(admin.list_topics(timeout=min(METADATA_POLL_S, timeout_s)).topics)
        except KafkaException as err:
            last = err.args[0]
        admin.poll(0)  # serves error_cb: the reasons list_topics does not give
        for error in errors:
            if (failure := connection_failure(error.name(), error.str())) is not None:
                broker, cause = failure
                raise BrokerUnavailable(f"cannot connect to broker {broker}: {cause}")
            if error.code() == KafkaError._ALL_BROKERS_DOWN:  # each one hung up after accepting the connection
                broker, cause = transport or (lost_connection(failures.last) if failures.last else (servers, "hung up"))
                raise BrokerUnavailable(f"cannot connect to broker {broker}: {cause}")
            if error.code() == KafkaError._TRANSPORT:
                transport = lost_connection(error.str())
        errors.clear()
        if time.monotonic() >= deadline:
            raise BrokerUnavailable(f"no answer from the broker at {settings.broker_url}: {last.str()}")


class _FailureLog(logging.Handler):
    """librdkafka's log for one client, keeping its latest FAIL line: why a connection dropped, which
    error_cb is not always told (a plaintext client at a TLS listener). Lines go on to `librdkafka_log`."""

    def __init__(self):
        super().__init__()
        self.last: str | None = None
        self.logger = logging.Logger(f"{__name__}.connect", logging.DEBUG)  # not in the registry: one per client
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("FAIL "):  # "FAIL [rdkafka#producer-1] [thrd:...]: host:9092/bootstrap: reason"
            self.last = message.split("]: ", 1)[-1]
        if librdkafka_log.isEnabledFor(record.levelno):
            librdkafka_log.handle(record)


def _accepts_connections(server: str, timeout_s: float = 3.0) -> bool:
    host, _, port = server.rpartition(":")
    try:
        with socket.create_connection((host.strip("[]") or "localhost", int(port or 9092)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False
