"""The Faust app: one per worker process, built from `Settings`.

Values travel as orjson bytes of the pydantic models in `schemas` (codec
`pydantic-orjson`), never Faust's default JSON codec. The input topic is read
as raw bytes so that undecodable records reach the dead-letter topic unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass

import faust
import orjson
from faust.serializers import codecs
from pydantic import BaseModel

from streamer.settings import Settings

CODEC = "pydantic-orjson"


class PydanticOrjsonCodec(codecs.Codec):
    """Encodes a `schemas` model with its own `to_json()`; decodes to plain JSON values."""

    def _dumps(self, obj) -> bytes:
        return obj.to_json() if isinstance(obj, BaseModel) else orjson.dumps(obj)

    def _loads(self, s: bytes):
        return orjson.loads(s)


codecs.register(CODEC, PydanticOrjsonCodec())


@dataclass
class StreamTopics:
    input: faust.TopicT
    parsed: faust.TopicT
    review: faust.TopicT
    deadletter: faust.TopicT


def create_app(settings: Settings) -> faust.App:
    """A Faust app whose consumer group is `group_id`, acks=all, committing only acknowledged work."""
    return faust.App(
        settings.group_id,
        broker=settings.broker_url,
        autodiscover=False,
        key_serializer="raw",
        value_serializer=CODEC,
        topic_partitions=settings.topic_partitions,
        topic_replication_factor=settings.topic_replication_factor,
        consumer_auto_offset_reset="earliest",  # a new group must not skip what was sent before it joined
        producer_acks=-1,
        producer_request_timeout=settings.publish_timeout_s,
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        broker_commit_interval=settings.commit_interval_s,
        stream_wait_empty=True,  # on rebalance and shutdown, finish the message in flight first
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        datadir=str(settings.data_dir),
    )


def declare_topics(app: faust.App, settings: Settings) -> StreamTopics:
    """The pipeline's topics on `app`: raw bytes in, pydantic-orjson out."""
    def output(name: str) -> faust.TopicT:
        return app.topic(name, key_serializer="raw", value_serializer=CODEC, partitions=settings.topic_partitions)

    return StreamTopics(
        input=app.topic(settings.input_topic, key_serializer="raw", value_serializer="raw",
                        partitions=settings.topic_partitions),
        parsed=output(settings.parsed_topic),
        review=output(settings.review_topic),
        deadletter=output(settings.deadletter_topic),
    )
