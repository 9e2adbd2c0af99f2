"""confluent-kafka settings from `Settings`, and topic creation on the embedded broker."""

from __future__ import annotations

import uuid

import pytest

from streamer.settings import Settings
from streamer.streaming.kafka import (
    BrokerUnavailable, bootstrap_servers, consumer_config, ensure_topics, producer_config,
)


@pytest.mark.parametrize("url, servers", [
    ("kafka://localhost:9092", "localhost:9092"),
    ("kafka://a:9092;kafka://b:9093", "a:9092,b:9093"),
    ("kafka://a:9092,kafka://b:9093", "a:9092,b:9093"),
    ("broker-1:9092", "broker-1:9092"),
    ("kafka://kafka:9092/", "kafka:9092"),
])
def test_bootstrap_servers_from_faust_style_urls(url, servers):
    assert bootstrap_servers(Settings(broker_url=url)) == servers


def test_producer_waits_for_all_replicas_and_is_idempotent():
    config = producer_config(Settings(broker_url="kafka://k:1"))
    assert (config["acks"], config["enable.idempotence"], config["bootstrap.servers"]) == ("all", True, "k:1")


def test_consumer_commits_only_by_hand_from_the_oldest_record():
    config = consumer_config(Settings(session_timeout_s=6), "g")
    assert (config["group.id"], config["enable.auto.commit"], config["auto.offset.reset"]) == ("g", False, "earliest")
    assert config["session.timeout.ms"] == 6000


@pytest.mark.integration
def test_ensure_topics_creates_only_missing_ones(broker):
    from confluent_kafka.admin import AdminClient

    settings = Settings(broker_url=broker.url, topic_partitions=3)
    names = [f"cfg-{uuid.uuid4().hex[:8]}", f"cfg-{uuid.uuid4().hex[:8]}"]
    assert ensure_topics(settings, names[:1]) == names[:1]
    assert ensure_topics(settings, names) == names[1:]
    assert ensure_topics(settings, names) == []
    topics = AdminClient({"bootstrap.servers": bootstrap_servers(settings)}).list_topics(timeout=10).topics
    assert [len(topics[name].partitions) for name in names] == [3, 3]


def test_ensure_topics_names_the_unreachable_broker():
    from streamer.streaming.broker import free_port

    url = f"kafka://127.0.0.1:{free_port()}"
    with pytest.raises(BrokerUnavailable, match=f"no broker listens at {url}"):
        ensure_topics(Settings(broker_url=url), ["x"], timeout_s=1)
