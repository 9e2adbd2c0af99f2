"""Fixtures of the review desk tests: fresh topics on the embedded broker, review records put on them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from streamer.settings import Settings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "streaming"))
from streaming_helpers import fresh_stream_settings  # noqa: E402


@pytest.fixture
def desk_settings(base_settings: Settings, broker, tmp_path) -> Settings:
    """Settings on fresh topics and groups: one review partition, so the oldest-first order is the log's."""
    from streamer.streaming.broker import free_port

    settings = fresh_stream_settings(base_settings, broker, tmp_path, partitions=1)  # every pipeline topic made
    run = settings.group_id
    return settings.model_copy(update={
        "corrections_topic": f"{run}.trades.corrections",
        "review_state_topic": f"{run}.trades.review.state",
        "review_group_id": f"{run}.desk",
        "review_port": free_port(),
        "review_secret": "test-secret",
    })


def put_on_review(settings: Settings, values: list[bytes]) -> list[int]:
    """Produce raw records to the review topic; their offsets."""
    from confluent_kafka import Producer

    from streamer.streaming.kafka import producer_config

    offsets: list[int | None] = [None] * len(values)
    producer = Producer(producer_config(settings))
    for index, value in enumerate(values):
        def delivered(err, message, index=index):
            assert err is None, err
            offsets[index] = message.offset()
        producer.produce(settings.review_topic, key=b"k", value=value, on_delivery=delivered)
    assert producer.flush(30) == 0
    return offsets
