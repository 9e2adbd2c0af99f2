"""Collecting review decisions into a corrections dataset: the pure steps by table, then once through Kafka."""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import datetime, timedelta, timezone

import orjson
import pytest

from schemas import CONTRACT_FIELDS, ChatMessage, Correction, Reason, TradeFields
from streamer.data.manage import read_jsonl, split_of
from streamer.learning.collect import (
    Candidate, CollectError, Collection, RecordRejected, TopicRecord, build_collection, check_example,
    contaminated_examples, decode_correction, example_from, latest_per_message, split_heldout, write_collection,
)

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=timezone.utc)
ORDER = TradeFields(intent="order", side="buy", asset_class="fx_spot", symbol="EURUSD", quantity=10_000_000,
                    currency="EUR")


def make_correction(message_id: str = "msg-1", decision: str = "accept", decided_at: datetime = T0,
                    corrected: TradeFields | None = ORDER, text: str = "buy 10m eurusd pls",
                    reasons: tuple[str, ...] = ("low_confidence",), item: str = "t.trades.review/0/7",
                    with_message: bool = True) -> Correction:
    message = ChatMessage(message_id=message_id, text=text, sender="jdoe", channel="fx-desk",
                          timestamp=T0 - timedelta(hours=1)) if with_message else None
    return Correction(
        correction_id=f"{item}@{decided_at.isoformat()}", item=item, message_id=message_id if with_message else None,
        message=message, decision=decision, corrected=corrected, reviewer="alice", decided_at=decided_at,
        reasons=[Reason(code=code, field="symbol") for code in reasons],
        raw_b64=None if with_message else base64.b64encode(b"{broken").decode(),
    )


# --- decoding --------------------------------------------------------------------------

@pytest.mark.parametrize("value, reason", [
    (None, "empty"),
    (b"", "empty"),
    (b"\xff\xfe{}", "not_utf8"),
    (b"{not json", "not_json"),
    (b"[1, 2]", "schema_invalid"),
    (orjson.dumps({**make_correction().model_dump(mode="json"), "decision": "maybe"}), "schema_invalid"),
    (orjson.dumps({**make_correction().model_dump(mode="json"), "surprise": 1}), "schema_invalid"),
])
def test_a_record_that_is_not_a_correction_is_rejected_with_a_named_reason(value, reason):
    with pytest.raises(RecordRejected) as caught:
        decode_correction(value)
    assert caught.value.reason == reason and caught.value.detail


def test_a_correction_decodes_from_its_own_bytes():
    correction = make_correction()
    assert decode_correction(correction.to_json()) == correction


# --- one correction -> one example ----------------------------------------------------

def test_an_accept_becomes_a_dataset_record_in_the_gold_line_format():
    example = example_from(make_correction(reasons=("unknown_symbol", "low_confidence", "unknown_symbol")))
    assert example == {
        "id": "c-msg-1", "text": "buy 10m eurusd pls", "expected": ORDER.model_dump(mode="json"),
        "tags": ["correction", "low_confidence", "unknown_symbol"],
        "timestamp": (T0 - timedelta(hours=1)).isoformat(), "channel": "fx-desk", "sender": "jdoe",
        "reviewer": "alice", "decided_at": T0.isoformat(), "source": "t.trades.review/0/7", "decision": "accept",
        "correction_id": f"t.trades.review/0/7@{T0.isoformat()}",
    }
    assert list(example["expected"]) == list(CONTRACT_FIELDS)
    TradeFields.model_validate(example["expected"])


@pytest.mark.parametrize("corrected", [TradeFields(intent="none"), None])
def test_not_trade_labels_intent_none_with_every_field_null(corrected):
    example = example_from(make_correction(decision="not_trade", corrected=corrected, reasons=()))
    assert example["expected"] == {name: ("none" if name == "intent" else None) for name in CONTRACT_FIELDS}
    assert example["tags"] == ["correction"]


def test_an_example_without_a_timestamp_says_so_and_naive_decision_times_are_utc():
    correction = make_correction(decided_at=datetime(2026, 12, 6, 9, 0))
    correction.message.timestamp = None
    example = example_from(correction)
    assert example["timestamp"] is None and example["decided_at"] == T0.isoformat()


@pytest.mark.parametrize("kwargs, reason", [
    ({"decision": "skip", "corrected": None}, "not_a_label"),
    ({"decision": "dead_letter", "corrected": None, "with_message": False}, "not_a_label"),
    ({"with_message": False}, "no_message"),
    ({"corrected": None}, "no_corrected_fields"),
    ({"decision": "not_trade", "corrected": ORDER}, "contradictory_label"),
    ({"corrected": TradeFields(intent="none", symbol="EURUSD")}, "invalid_expected"),
])
def test_a_label_that_cannot_be_trained_on_is_rejected_with_a_named_reason(kwargs, reason):
    with pytest.raises(RecordRejected) as caught:
        example_from(make_correction(**kwargs))
    assert caught.value.reason == reason


def test_an_example_read_back_is_checked_like_a_new_one():
    example = example_from(make_correction())
    assert check_example(orjson.loads(orjson.dumps(example))) == example


@pytest.mark.parametrize("change, reason", [
    (lambda e: e.pop("correction_id"), "not_an_example"),
    (lambda e: e.update(id="g0001"), "not_an_example"),
    (lambda e: e.update(decided_at="yesterday"), "not_an_example"),
    (lambda e: e["expected"].pop("tenor"), "invalid_expected"),
    (lambda e: e["expected"].update(side="long"), "invalid_expected"),
])
def test_a_damaged_example_from_an_earlier_collection_is_rejected(change, reason):
    example = example_from(make_correction())
    change(example)
    with pytest.raises(RecordRejected) as caught:
        check_example(example)
    assert caught.value.reason == reason


# --- dedupe ------------------------------------------------------------------------------

def candidate(message_id: str, minutes: int, offset: int, from_topic: bool = True, cid: str | None = None):
    decided_at = T0 + timedelta(minutes=minutes)
    example = example_from(make_correction(message_id=message_id, decided_at=decided_at))
    example["correction_id"] = cid or f"{message_id}@{minutes}@{offset}"
    return Candidate(example, from_topic, offset)


@pytest.mark.parametrize("candidates, winners, superseded, repeated", [
    ([candidate("a", 0, 0)], {"a": 0}, 0, 0),
    ([candidate("a", 0, 0), candidate("b", 0, 1)], {"a": 0, "b": 1}, 0, 0),
    # the latest decided_at wins, whatever the log order
    ([candidate("a", 5, 0), candidate("a", 1, 1)], {"a": 0}, 1, 0),
    ([candidate("a", 1, 0), candidate("a", 5, 1), candidate("a", 3, 2)], {"a": 1}, 2, 0),
    # same decided_at: the later offset wins
    ([candidate("a", 1, 4), candidate("a", 1, 2)], {"a": 4}, 1, 0),
    # one decision seen twice (previous collection and topic) is a repeat, not a supersession
    ([candidate("a", 1, -1, from_topic=False, cid="x"), candidate("a", 1, 3, cid="x")], {"a": 3}, 0, 1),
    # a newer decision beats an older one carried over from the previous collection
    ([candidate("a", 9, -1, from_topic=False), candidate("a", 1, 3)], {"a": -1}, 1, 0),
])
def test_latest_decision_per_message_wins(candidates, winners, superseded, repeated):
    kept, counted_superseded, counted_repeated = latest_per_message(candidates)
    assert {c.message_id: c.offset for c in kept} == winners
    assert (counted_superseded, counted_repeated) == (superseded, repeated)


# --- split and contamination ------------------------------------------------------------

TEXTS = [f"buy {n}m eurusd at 1.08{n:02d}" for n in range(400)]


def test_the_heldout_split_is_deterministic_and_follows_split_of():
    examples = [{"text": t} for t in TEXTS]
    train, heldout = split_heldout(examples)
    again_train, again_heldout = split_heldout(list(reversed(examples)))
    assert {e["text"] for e in train} == {e["text"] for e in again_train}
    assert {e["text"] for e in heldout} == {e["text"] for e in again_heldout}
    assert {e["text"] for e in heldout} == {t for t in TEXTS if split_of(t, dev=0.2, test=0.0) == "dev"}
    assert 0.12 < len(heldout) / len(TEXTS) < 0.28


@pytest.mark.parametrize("text", TEXTS[:40])
def test_case_and_spacing_never_move_a_message_across_the_split(text):
    variant = "  " + text.upper().replace(" ", "\t ") + " "
    assert bool(split_heldout([{"text": text}])[1]) == bool(split_heldout([{"text": variant}])[1])


@pytest.mark.parametrize("text, match", [
    ("ZZ made-up line: BUY 7 widgets  off the moon desk", "exact"),
    ("zz made-up line: buy 7 widgets off the moon desk now", "near"),
    ("sell 3 sprockets to the sun desk", None),
])
def test_an_example_overlapping_a_frozen_line_is_found_without_quoting_it(text, match):
    frozen = [{"text": "zz made-up line: buy 7 widgets off the moon desk", "where": "frozen.jsonl"}]
    found = contaminated_examples([{"text": text}], frozen)
    if match is None:
        assert found == {}
    else:
        assert found == {0: {"file": "frozen.jsonl", "match": match, "score": found[0]["score"]}}
        assert "widgets" not in repr(found)


# --- records -> collection (no Kafka) ---------------------------------------------------

def test_a_collection_counts_every_record_and_drops_none_silently():
    newer, older = T0 + timedelta(minutes=5), T0
    values = [
        make_correction("m1", decided_at=newer, item="t/0/0").to_json(),
        make_correction("m1", decided_at=older, item="t/0/1",
                        corrected=ORDER.model_copy(update={"side": "sell"})).to_json(),
        make_correction("m2", decision="not_trade", corrected=TradeFields(intent="none"), text="morning all",
                        item="t/0/2").to_json(),
        make_correction("m3", decision="skip", corrected=None, item="t/0/3").to_json(),
        make_correction(decision="dead_letter", corrected=None, with_message=False, item="t/0/4").to_json(),
        b"\xff garbage",
        make_correction("m4", text="The Frozen  line", item="t/0/6").to_json(),
        make_correction("m5", corrected=None, item="t/0/7").to_json(),
    ]
    records = [TopicRecord("t", 0, offset, value) for offset, value in enumerate(values)]
    frozen = [{"text": "the frozen line", "where": "frozen.jsonl"}]
    collection = build_collection(records, frozen=frozen)
    assert collection.records_read == 8
    assert dict(collection.decisions) == {"accept": 4, "not_trade": 1, "skip": 1, "dead_letter": 1}
    assert [e["id"] for e in collection.examples] == ["c-m2", "c-m1"]  # ordered by decided_at, then id
    assert collection.examples[1]["expected"]["side"] == "buy"  # the newer decision, logged first
    assert collection.superseded == 1
    assert collection.rejected_reasons == {"no_corrected_fields": 1, "not_utf8": 1}
    garbage = next(r for r in collection.rejected if r["reason"] == "not_utf8")
    assert (garbage["topic"], garbage["partition"], garbage["offset"]) == ("t", 0, 5)
    assert base64.b64decode(garbage["payload_b64"]) == b"\xff garbage"
    assert [(c["id"], c["contaminates"]["match"]) for c in collection.contaminated] == [("c-m4", "exact")]
    assert len(collection.train) + len(collection.heldout) == 2
    assert collection.offsets == {"0": {"first": 0, "last": 7, "records": 8}}


def test_an_earlier_collection_is_merged_and_its_damaged_lines_rejected():
    kept = example_from(make_correction("m1"))
    damaged = {**example_from(make_correction("m2")), "expected": {"intent": "order"}}
    newer = make_correction("m1", decided_at=T0 + timedelta(minutes=1), item="t/0/9",
                            corrected=ORDER.model_copy(update={"quantity": 5_000_000}))
    collection = build_collection([TopicRecord("t", 0, 9, newer.to_json())],
                                  previous=[("old/corrections.jsonl:1", kept), ("old/corrections.jsonl:2", damaged)])
    assert collection.from_previous == 1 and collection.superseded == 1
    assert [e["expected"]["quantity"] for e in collection.examples] == [5_000_000]
    assert [(r["reason"], r["file"], r["line"]) for r in collection.rejected] == [
        ("invalid_expected", "old/corrections.jsonl", 2)]


def test_writing_refuses_a_folder_that_is_not_a_collection(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(CollectError, match="not a collection"):
        write_collection(Collection(), tmp_path, {})
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_writing_replaces_an_earlier_collection_whole(tmp_path):
    out = tmp_path / "v1"
    first = write_collection(build_collection([TopicRecord("t", 0, 0, make_correction().to_json())]), out, {})
    second = write_collection(Collection(), out, {})
    assert first["version"] != second["version"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1"]  # no staging or retired folder left behind
    assert read_jsonl(out / "corrections.jsonl") == []


def test_the_written_examples_are_read_by_the_evaluation_and_training_readers(tmp_path):
    from streamer.evaluation.harness import load_gold
    from streamer.finetune.targets import build_targets
    from streamer.finetune.train import read_records

    records = [TopicRecord("t", 0, 0, make_correction("m1").to_json()),
               TopicRecord("t", 0, 1, make_correction("m2", decision="not_trade", corrected=None,
                                                      text="morning all").to_json())]
    write_collection(build_collection(records), tmp_path / "v1", {})
    path = tmp_path / "v1" / "corrections.jsonl"
    assert [g.id for g in load_gold(path)] == ["c-m1", "c-m2"]
    pairs, failures = build_targets(read_records(path))
    assert len(pairs) == 2 and not failures


# --- through Kafka ---------------------------------------------------------------------

@pytest.mark.integration
def test_collect_corrections_from_the_topic(base_settings, broker, tmp_path):
    from confluent_kafka import Producer

    from streamer.learning.collect import collect_corrections
    from streamer.streaming.kafka import ensure_topics, producer_config

    run = uuid.uuid4().hex[:8]
    settings = base_settings.model_copy(update={
        "broker_url": broker.url, "corrections_topic": f"l{run}.trades.corrections", "group_id": f"l{run}",
        "topic_partitions": 2,
    })
    ensure_topics(settings, [settings.corrections_topic])
    frozen_line = "zz-test-only: lift 42 blue widgets off the moon desk"
    frozen = tmp_path / "frozen.jsonl"
    frozen.write_bytes(orjson.dumps({"id": "f1", "text": frozen_line}) + b"\n")

    def produce(pairs: list[tuple[bytes, bytes]]) -> None:
        producer = Producer(producer_config(settings))
        for key, value in pairs:
            producer.produce(settings.corrections_topic, key=key, value=value,
                             on_delivery=lambda err, _: pytest.fail(str(err)) if err else None)
        assert producer.flush(30) == 0

    newer = make_correction("m1", decided_at=T0 + timedelta(minutes=5), item="r/0/1")
    older = make_correction("m1", decided_at=T0, item="r/0/1", corrected=ORDER.model_copy(update={"side": "sell"}))
    produce([
        (b"r/0/1", newer.to_json()), (b"r/0/1", older.to_json()),  # log order is not decision order
        (b"r/0/2", make_correction("m2", decision="not_trade", corrected=TradeFields(intent="none"),
                                   text="zz-test-only: morning all, quiet one", item="r/0/2").to_json()),
        (b"r/0/3", make_correction("m3", decision="skip", corrected=None, item="r/0/3").to_json()),
        (b"r/0/4", make_correction(decision="dead_letter", corrected=None, with_message=False,
                                   item="r/0/4").to_json()),
        (b"r/0/5", b"\xfe\xff not a correction"),
        (b"r/0/6", make_correction("m6", text=frozen_line.upper(), item="r/0/6").to_json()),
    ])

    out = tmp_path / "corrections" / "v1"
    report = collect_corrections(settings, out, [frozen], idle_s=1.0)

    assert report.records_read == 7
    assert report.decisions == {"accept": 3, "not_trade": 1, "skip": 1, "dead_letter": 1}
    assert (report.examples, report.superseded, report.bad, report.contaminated) == (2, 1, 1, 1)
    assert report.train + report.heldout == 2
    examples = read_jsonl(out / "corrections.jsonl")
    assert sorted(e["id"] for e in examples) == ["c-m1", "c-m2"]
    assert next(e for e in examples if e["id"] == "c-m1")["expected"]["side"] == "buy"
    assert sorted(e["id"] for e in read_jsonl(out / "train.jsonl") + read_jsonl(out / "heldout.jsonl")) \
        == ["c-m1", "c-m2"]
    [rejected] = read_jsonl(out / "rejected.jsonl")
    assert rejected["reason"] == "not_utf8" and rejected["topic"] == settings.corrections_topic
    assert base64.b64decode(rejected["payload_b64"]) == b"\xfe\xff not a correction"
    [contaminated] = read_jsonl(out / "contaminated.jsonl")
    assert contaminated["id"] == "c-m6" and contaminated["contaminates"]["file"] == str(frozen)

    manifest = orjson.loads((out / "manifest.json").read_bytes())
    corrections_sha = hashlib.sha256((out / "corrections.jsonl").read_bytes()).hexdigest()
    assert manifest["version"] == report.version == corrections_sha[:12]
    assert manifest["topic"] == settings.corrections_topic
    assert sum(span["records"] for span in manifest["offsets"].values()) == 7
    assert manifest["counts"]["contaminated"] == 1 and manifest["counts"]["superseded"] == 1
    for name, described in manifest["files"].items():
        assert described["sha256"] == hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert described["lines"] == len(read_jsonl(out / name))
    assert "superseded" in report.render() and report.version in report.render()

    # the next version grows from this one: one more decision, the old ones repeated, not counted twice
    produce([(b"r/0/8", make_correction("m8", text="zz-test-only: sell 3 sprockets", item="r/0/8").to_json())])
    report2 = collect_corrections(settings, tmp_path / "corrections" / "v2", [frozen], previous=out, idle_s=1.0,
                                  progress=True)
    assert (report2.records_read, report2.from_previous, report2.examples) == (8, 2, 3)
    assert (report2.superseded, report2.repeated) == (1, 2)
    assert orjson.loads((tmp_path / "corrections" / "v2" / "manifest.json").read_bytes())["previous"] == {
        "path": str(out), "version": report.version}
