"""reprocess: range and tag rules, and a real run over the embedded broker with the real model."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest
from click.testing import CliRunner

from schemas import ChatMessage
from streamer.history.reprocess import (
    OffsetSpan, PartitionRange, RangeProgress, RangeSpec, check_tag, model_tag, offset_spans, tagged_topics,
)
from streamer.settings import Settings

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)


@pytest.mark.parametrize("kwargs, error", [
    (dict(from_time=T0, to_time=T0 + timedelta(minutes=1)), None),
    (dict(from_offset=0, to_offset=10), None),
    (dict(to_offset=3), None),
    (dict(from_time=T0, from_offset=1), "not both"),
    (dict(from_time=T0, to_time=T0), "must be after"),
    (dict(from_offset=5, to_offset=5), "greater than --from-offset"),
    (dict(from_offset=-1), "0 or more"),
])
def test_range_spec_rules(kwargs, error):
    if error is None:
        RangeSpec(**kwargs)
    else:
        with pytest.raises(ValueError, match=error):
            RangeSpec(**kwargs)


@pytest.mark.parametrize("spec, ts, selected", [
    (RangeSpec(), None, True),
    (RangeSpec(from_time=T0), T0, True),                                      # from is inclusive
    (RangeSpec(from_time=T0), T0 - timedelta(milliseconds=1), False),
    (RangeSpec(to_time=T0), T0, False),                                       # to is exclusive
    (RangeSpec(from_time=T0), None, False),                                   # no timestamp: outside a time range
    (RangeSpec(from_offset=3), None, True),                                   # offsets are not a time filter
])
def test_range_spec_selects_time(spec, ts, selected):
    assert spec.selects_time(ts) is selected


@pytest.mark.parametrize("tag, ok", [("v2", True), ("smollm2.base.fewshot-v1", True), ("a_b", True),
                                     ("", False), ("has space", False), ("slash/x", False), ("x" * 101, False)])
def test_check_tag(tag, ok):
    if ok:
        assert check_tag(tag) == tag
    else:
        with pytest.raises(ValueError, match="names topics"):
            check_tag(tag)


@pytest.mark.parametrize("model, adapter, prompt, tag", [
    ("SmolLM2-135M-Instruct.Q4_1.gguf", None, "fewshot-v1", "smollm2-135m-instruct.q4_1.base.fewshot-v1"),
    ("m.gguf", "smollm2-135m-trades", "tuned-v1", "m.smollm2-135m-trades.tuned-v1"),
    ("My Model (v3).gguf", "lora:7", "p", "my-model-v3-.lora-7.p"),
])
def test_model_tag_is_a_valid_topic_suffix(model, adapter, prompt, tag):
    assert model_tag(model, adapter, prompt) == tag
    check_tag(tag)


def test_tagged_topics_follow_the_settings():
    settings = Settings(parsed_topic="p", review_topic="r", deadletter_topic="d", nontrade_topic="n")
    topics = tagged_topics(settings, "v2", "chat.raw")
    assert (topics.input, topics.outputs()) == ("chat.raw", ["p.v2", "r.v2", "d.v2", "n.v2"])


BEGINNING = -2  # confluent_kafka.OFFSET_BEGINNING


@pytest.mark.parametrize("start, end, low, log_end, span", [
    (BEGINNING, None, 0, 9, (0, 9)),     # the whole partition
    (BEGINNING, None, 4, 9, (4, 9)),     # from the oldest record retention kept
    (2, 8, 0, 9, (2, 8)),                # an offset range inside the partition
    (2, 20, 0, 9, (2, 9)),               # --to-offset past the end: to the end
    (12, None, 0, 9, (12, 12)),          # --from-offset past the end: nothing to read
    (BEGINNING, None, 0, 0, (0, 0)),     # an empty partition
    (5, 7, 0, 9, (5, 7)),                # a time range ended by the broker's time index
])
def test_offset_spans_are_the_planned_range_clipped_to_the_partition(start, end, low, log_end, span):
    [got] = offset_spans([PartitionRange(0, start, end)], {0: (low, log_end)})
    assert (got.first, got.end) == span


@pytest.mark.parametrize("spans, read, done, appended, text", [
    ([(0, 0, 9)], [], 0, 0, "0/9 offsets"),
    ([(0, 0, 9)], [(0, 0), (0, 1), (0, 2)], 3, 0, "3/9 offsets"),
    ([(0, 2, 8)], [(0, 2), (0, 5)], 4, 0, "4/6 offsets"),                      # a gap (offsets 3, 4) is passed
    ([(0, 0, 3), (1, 0, 2)], [(0, 0), (1, 0), (1, 1)], 3, 0, "3/5 offsets"),   # summed over partitions
    ([(0, 0, 2)], [(0, 0), (0, 1), (0, 2), (0, 3)], 2, 2, "2/2 offsets +2 past the planned end"),
    ([(0, 0, 2)], [(7, 0)], 0, 0, "0/2 offsets"),                              # a partition not in the plan
])
def test_range_progress_counts_offsets_against_a_fixed_total(spans, read, done, appended, text):
    progress = RangeProgress([OffsetSpan(*s) for s in spans])
    total = progress.total
    for partition, offset in read:
        progress.advance(partition, offset)
    assert (progress.done, progress.appended, progress.describe()) == (done, appended, text)
    assert progress.total == total == sum(end - first for _, first, end in spans)  # never follows done


def test_range_progress_finish_passes_offsets_without_records():
    progress = RangeProgress([OffsetSpan(0, 0, 5)])
    progress.advance(0, 2)  # offsets 3, 4: transaction markers, no records to read
    progress.finish()
    assert progress.describe() == "5/5 offsets"


@pytest.mark.parametrize("args, message", [
    (["--from-timestamp", "soon"], "not a time"),
    (["--from-offset", "1", "--from-timestamp", "2024-03-01"], "not both"),
    (["--tag", "bad tag"], "names topics"),
])
def test_reprocess_rejects_bad_options_in_one_line(args, message):
    from streamer.cli import main

    result = CliRunner().invoke(main, ["reprocess", "--broker", "kafka://127.0.0.1:1", *args])
    assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output


# -- with the embedded broker ----------------------------------------------------------


def _produce(settings: Settings, topic: str, records: list[tuple[bytes, datetime]]) -> None:
    from confluent_kafka import Producer

    from streamer.streaming.kafka import ensure_topics, producer_config

    ensure_topics(settings, [topic])
    producer = Producer(producer_config(settings))
    for value, ts in records:
        producer.produce(topic, value=value, key=b"desk", timestamp=int(ts.timestamp() * 1000))
    assert producer.flush(10) == 0


def _read_all(settings: Settings, topic: str) -> list[dict]:
    from streamer.history.reprocess import RangeSpec, plan_ranges, range_consumer, read_range

    consumer = range_consumer(settings, "test")
    try:
        return [orjson.loads(r.value()) for r in read_range(consumer, topic, plan_ranges(consumer, topic, RangeSpec()))]
    finally:
        consumer.close()


def _committed(settings: Settings, group: str, topic: str) -> list[int]:
    from confluent_kafka import Consumer, TopicPartition

    from streamer.streaming.kafka import consumer_config

    consumer = Consumer(consumer_config(settings, group))
    try:
        return [tp.offset for tp in consumer.committed([TopicPartition(topic, 0)], timeout=10)]
    finally:
        consumer.close()


def _chat(text: str, ts: datetime) -> bytes:
    return orjson.dumps({"text": text, "channel": "desk", "timestamp": ts.isoformat()})


@pytest.fixture
def reprocess_cli(monkeypatch, default_parser):
    """The CLI with the session's real parser, so the model is loaded once for all tests."""
    import streamer.cli.history as commands
    from streamer.cli import main

    monkeypatch.setattr(commands, "load_parser", lambda settings: default_parser)
    return lambda *args: CliRunner().invoke(main, ["reprocess", *args])


@pytest.mark.integration
def test_reprocess_time_range_one_output_per_input_and_live_offsets_untouched(broker, reprocess_cli):
    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient

    from streamer.streaming.kafka import consumer_config

    run = uuid.uuid4().hex[:8]
    settings = Settings(broker_url=broker.url, topic_partitions=1)
    topic, live_group = f"chat.raw.{run}", f"live-{run}"
    minute = timedelta(minutes=1)
    _produce(settings, topic, [
        (_chat("good morning", T0 - minute), T0 - minute),            # before the range
        (_chat("buy 10m cable", T0), T0),                             # in range (from is inclusive)
        (b"\xffnot utf-8", T0 + minute),                              # in range: dead letter
        (b'{"text": ""}', T0 + 2 * minute),                           # in range: dead letter
        (_chat("ty", T0 + 3 * minute), T0 + 3 * minute),              # to is exclusive
    ])  # one message for the model: it parses ~1-2 s per message on an idle 2-core machine
    live = Consumer(consumer_config(settings, live_group))
    live.commit(offsets=[TopicPartition(topic, 0, 2)], asynchronous=False)
    live.close()

    result = reprocess_cli("--broker", broker.url, "--topic", topic, "--tag", run,
                           "--from-timestamp", T0.isoformat(), "--to-timestamp", (T0 + 3 * minute).isoformat())
    assert result.exit_code == 0, result.output

    outputs = {name: _read_all(settings, f"{name}.{run}")
               for name in ("trades.parsed", "trades.review", "chat.deadletter", "chat.nontrade")}
    everything = [o for records in outputs.values() for o in records]
    assert sorted(o["source"]["offset"] for o in everything) == [1, 2, 3]       # one output per input in range
    dead = outputs["chat.deadletter"]
    assert [(d["error_class"], d["source"]["offset"]) for d in dead] == [("not_utf8", 2), ("schema_invalid", 3)]
    parsed = [o for o in everything if o["kind"] != "dead_letter"]
    assert [o["message_id"] for o in parsed] == [ChatMessage.model_validate_json(_chat("buy 10m cable", T0)).message_id]
    # Tansu has no time index, so the whole partition is scanned: what was read is in range or counted outside.
    read = int(re.search(r"read (\d+) records", result.output).group(1))
    outside = re.search(r"(\d+) outside the time range", result.output)
    assert read - (int(outside.group(1)) if outside else 0) == 3
    assert f"{read}/{read} offsets" in result.output  # no time index: the whole partition is the planned range
    assert _committed(settings, live_group, topic) == [2]                       # the live group's offset is untouched
    admin = AdminClient({"bootstrap.servers": f"{broker.host}:{broker.port}"})
    groups = admin.list_consumer_groups(request_timeout=10).result()
    assert not [g.group_id for g in groups.valid if g.group_id.startswith("streamer-reprocess")]  # nothing committed


@pytest.mark.integration
def test_reprocess_offset_range_is_half_open(broker, reprocess_cli):
    run = uuid.uuid4().hex[:8]
    settings = Settings(broker_url=broker.url, topic_partitions=1)
    topic = f"chat.raw.{run}"
    # Not JSON, so every output is a dead letter and the test costs no model time.
    _produce(settings, topic, [(f"junk {i}".encode(), T0 + timedelta(seconds=i)) for i in range(5)])

    result = reprocess_cli("--broker", broker.url, "--topic", topic, "--tag", run,
                           "--from-offset", "1", "--to-offset", "3")
    assert result.exit_code == 0, result.output
    dead = _read_all(settings, f"chat.deadletter.{run}")
    assert [(d["source"]["offset"], d["error_class"], d["payload_text"]) for d in dead] == [
        (1, "not_json", "junk 1"), (2, "not_json", "junk 2")]
    assert "read 2 records" in result.output
    assert "2/2 offsets" in result.output  # the bar's total is the offset range, not the records read so far


@pytest.mark.integration
def test_partition_ends_finds_the_last_batch_tansu_does_not_count(broker):
    """Tansu reports the last batch's base offset + 1 as the high watermark: 7 for batches of 5, 1 and 3."""
    from confluent_kafka import Producer, TopicPartition

    from streamer.history.reprocess import partition_ends, plan_ranges, range_consumer, read_range
    from streamer.streaming.kafka import ensure_topics, producer_config

    settings = Settings(broker_url=broker.url, topic_partitions=2)
    topic = f"chat.raw.{uuid.uuid4().hex[:8]}"
    ensure_topics(settings, [topic])
    producer = Producer(producer_config(settings))
    for batch in (5, 1, 3):
        for i in range(batch):
            producer.produce(topic, value=f"r{i}".encode(), partition=0)
        assert producer.flush(10) == 0
    consumer, probe = range_consumer(settings, "test"), range_consumer(settings, "test-end")
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
        ends = partition_ends(probe, topic, [0, 1])
        ranges = plan_ranges(consumer, topic, RangeSpec(from_offset=2))
        read = [r.offset() for r in read_range(consumer, topic, ranges[:1])]  # partition 0, where the records are
    finally:
        probe.close()
        consumer.close()
    assert (low, high) in [(0, 7), (0, 9)]   # 9 on a broker whose watermark counts every record
    assert ends == {0: (0, 9), 1: (0, 0)}
    assert [(s.first, s.end) for s in offset_spans(ranges[:1], ends)] == [(2, 9)] and read == list(range(2, 9))


@pytest.mark.integration
def test_reprocess_missing_topic_is_a_one_line_error(broker, reprocess_cli):
    result = reprocess_cli("--broker", broker.url, "--topic", f"missing.{uuid.uuid4().hex[:8]}")
    assert result.exit_code == 1 and "does not exist" in result.output and "Traceback" not in result.output
