"""Step 1 of the learning loop: every review decision on `trades.corrections` -> a versioned corrections dataset.

The topic is read whole, by assignment (no consumer group, nothing committed), so
a collection is a pure function of the log: rerun it and the same examples come
out. Only `accept` and `not_trade` are labels; `skip` and `dead_letter` are
counted. A message decided twice keeps its latest decision. A record that cannot
become an example is written to `rejected.jsonl` with its bytes and position,
and an example that overlaps a frozen test set is written to `contaminated.jsonl`:
nothing is dropped silently, and no test message can leak into training.

Files of a collection (`out_dir/`): `corrections.jsonl` (every example, in the
line format of `datasets/hand.jsonl` plus provenance keys), `train.jsonl` and
`heldout.jsonl` (split by a hash of the normalised text, as `streamer data split`
does), `rejected.jsonl`, `contaminated.jsonl` and `manifest.json` (counts,
offsets read, each file's sha256, and `version`: the first 12 hex digits of
corrections.jsonl's sha256).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import shutil
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import orjson
from pydantic import ValidationError

from schemas import CONTRACT_FIELDS, Correction, Decision, TradeFields, utc
from streamer.data.manage import (
    DatasetError, contamination, file_manifest, numbered_records, read_jsonl, split_of, write_jsonl,
)
from streamer.settings import Settings
from streamer.streaming.pipeline import Undecodable, first_error, json_object

__all__ = [
    "FROZEN_TEST_FILES", "HELDOUT_FRACTION", "Candidate", "CollectError", "CollectReport", "Collection",
    "RecordRejected", "TopicRecord", "build_collection", "check_example", "collect_corrections",
    "contaminated_examples", "decode_correction", "example_from", "latest_per_message", "split_heldout",
    "write_collection",
]

log = logging.getLogger(__name__)

# The blind sets and the gold test split: the numbers the loop's gate and the README report (blind_v4, blind_v5 and
# blind_v9, read after their one scoring, are development sets now and stay out of training all the same). Relative
# to the checkout the command runs in, like the gate's sets (an installed package has no datasets/ beside it).
# datasets/manifest.json marks no file as frozen (it holds counts and hashes only), so the list is named here.
FROZEN_TEST_FILES: tuple[Path, ...] = (Path("datasets/blind_v1.jsonl"), Path("datasets/blind_v2.jsonl"),
                                         Path("datasets/blind_v3.jsonl"), Path("datasets/blind_v4.jsonl"),
                                         Path("datasets/blind_v5.jsonl"), Path("datasets/blind_v6.jsonl"),
                                         Path("datasets/blind_v7.jsonl"), Path("datasets/blind_v8.jsonl"),
                                         Path("datasets/blind_v9.jsonl"), Path("datasets/blind_v10.jsonl"),
                                         Path("datasets/blind_v11.jsonl"), Path("datasets/splits/gold_test.jsonl"))
HELDOUT_FRACTION = 0.2
LABEL_DECISIONS: frozenset[str] = frozenset({"accept", "not_trade"})
DECISIONS: tuple[str, ...] = Decision.__args__
DATASET_FILES: tuple[str, ...] = ("corrections.jsonl", "train.jsonl", "heldout.jsonl", "rejected.jsonl",
                                  "contaminated.jsonl")
EXAMPLE_KEYS: tuple[str, ...] = ("id", "text", "expected", "tags", "timestamp", "channel", "sender", "reviewer",
                                 "decided_at", "source", "decision", "correction_id")


class CollectError(RuntimeError):
    """A collection that cannot be made as asked (missing topic or frozen file, unsafe out_dir); says which."""


class RecordRejected(ValueError):
    """A record that cannot become an example; `reason` is a stable name counted in the manifest."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class TopicRecord:
    """One record as read from the topic: where it was and its value bytes (None for a tombstone)."""

    topic: str
    partition: int
    offset: int
    value: bytes | None

    def position(self) -> dict:
        return {"topic": self.topic, "partition": self.partition, "offset": self.offset}


# --- one record -> one example (pure) ----------------------------------------------------


def decode_correction(value: bytes | None) -> Correction:
    """The `Correction` a record holds; raises RecordRejected (empty, not_utf8, not_json, schema_invalid)."""
    if not value:
        raise RecordRejected("empty", "the record has no value")
    try:
        return Correction.model_validate(json_object(value))
    except Undecodable as err:
        raise RecordRejected(err.reason, err.detail) from None
    except ValidationError as err:
        raise RecordRejected("schema_invalid", first_error(err)) from None


def checked_expected(fields: Mapping) -> dict:
    """All 12 contract fields, validated by `TradeFields`; intent none carries no other field (ANNOTATION.md)."""
    try:
        expected = TradeFields.model_validate(fields).model_dump(mode="json")
    except ValidationError as err:
        raise RecordRejected("invalid_expected", first_error(err)) from None
    if expected["intent"] == "none":
        filled = [name for name in CONTRACT_FIELDS if name != "intent" and expected[name] is not None]
        if filled:
            raise RecordRejected("invalid_expected", f"intent none with fields set: {', '.join(filled)}")
    return expected


def example_from(correction: Correction) -> dict:
    """The dataset record of a label decision (accept, not_trade); raises RecordRejected when it cannot be one."""
    if correction.decision not in LABEL_DECISIONS:
        raise RecordRejected("not_a_label", f"decision {correction.decision!r} labels nothing")
    message = correction.message
    if message is None:
        raise RecordRejected("no_message", f"{correction.decision} of {correction.item} carries no message")
    corrected = correction.corrected
    if correction.decision == "not_trade":
        if corrected is not None and corrected.intent != "none":
            raise RecordRejected("contradictory_label", f"not_trade with intent {corrected.intent!r}")
        corrected = corrected or TradeFields(intent="none")
    elif corrected is None:
        raise RecordRejected("no_corrected_fields", f"accept of {correction.item} carries no fields")
    message_id = correction.message_id or message.message_id
    return {
        "id": f"c-{message_id}",
        "text": message.text,
        "expected": checked_expected(corrected.model_dump()),
        "tags": ["correction", *sorted({reason.code for reason in correction.reasons})],
        "timestamp": message.timestamp.isoformat() if message.timestamp else None,
        "channel": message.channel,
        "sender": message.sender,
        "reviewer": correction.reviewer,
        "decided_at": utc(correction.decided_at).isoformat(),
        "source": correction.item,
        "decision": correction.decision,
        "correction_id": correction.correction_id,
    }


def check_example(record: Mapping) -> dict:
    """An example read back from an earlier collection, checked as `example_from` would have built it."""
    missing = [key for key in EXAMPLE_KEYS if key not in record]
    if missing:
        raise RecordRejected("not_an_example", f"missing {', '.join(missing)}")
    if not isinstance(record["id"], str) or not record["id"].startswith("c-"):
        raise RecordRejected("not_an_example", f"id {record['id']!r} is not c-<message_id>")
    if not isinstance(record["text"], str) or not record["text"]:
        raise RecordRejected("not_an_example", "text must be a non-empty string")
    if not isinstance(record["expected"], dict) or set(record["expected"]) != set(CONTRACT_FIELDS):
        raise RecordRejected("invalid_expected", "expected must hold exactly the 12 contract fields")
    try:
        decided_at = _parse_time(record["decided_at"])
    except (TypeError, ValueError):
        raise RecordRejected("not_an_example", f"decided_at {record['decided_at']!r} is not ISO 8601") from None
    return {**record, "expected": checked_expected(record["expected"]), "decided_at": decided_at.isoformat()}


def _parse_time(value) -> datetime:
    return utc(datetime.fromisoformat(value))  # Python 3.11 reads a trailing Z


# --- many examples -> one dataset (pure) -------------------------------------------------


@dataclass(frozen=True)
class Candidate:
    """An example and where it came from; `rank` orders decisions on one message (the highest wins)."""

    example: dict
    from_topic: bool
    offset: int  # -1 for an example carried over from the previous collection

    @property
    def message_id(self) -> str:
        return self.example["id"][2:]

    @property
    def rank(self) -> tuple:
        """Latest decided_at; on a tie the topic beats the previous collection, then the later offset."""
        return _parse_time(self.example["decided_at"]), self.from_topic, self.offset


def latest_per_message(candidates: Iterable[Candidate]) -> tuple[list[Candidate], int, int]:
    """(the winning candidate per message_id, superseded decisions, repeats of one decision).

    A repeat is the same correction_id seen twice (the previous collection and the
    topic both hold it): one decision, so it is not counted as superseded.
    """
    best: dict[str, Candidate] = {}
    seen: dict[str, set[str]] = {}
    repeated = 0
    for candidate in candidates:
        key = candidate.message_id
        ids = seen.setdefault(key, set())
        if candidate.example["correction_id"] in ids:
            repeated += 1
        ids.add(candidate.example["correction_id"])
        if key not in best or candidate.rank > best[key].rank:
            best[key] = candidate
    superseded = sum(len(ids) - 1 for ids in seen.values())
    return list(best.values()), superseded, repeated


def split_heldout(examples: Iterable[Mapping], fraction: float = HELDOUT_FRACTION) -> tuple[list, list]:
    """(train, heldout) by `split_of`'s hash of the normalised text: a message never moves side as the data grows."""
    train, heldout = [], []
    for example in examples:
        (heldout if split_of(example["text"], dev=fraction, test=0.0) == "dev" else train).append(example)
    return train, heldout


def contaminated_examples(examples: Sequence[Mapping], frozen: Sequence[Mapping]) -> dict[int, dict]:
    """Index of each example that overlaps a frozen line -> {file, match, score}; never the frozen line itself.

    The measure is `streamer data check`'s: equal after `normalise_text`, or word
    3-gram Jaccard >= NEAR_DUPLICATE_JACCARD. Frozen records carry `where` = their file.
    """
    probes = [{"text": example["text"], "where": str(index)} for index, example in enumerate(examples)]
    report = contamination(frozen, probes)
    found = {}
    for match, overlaps in (("exact", report.exact), ("near", report.near)):
        for overlap in overlaps:
            found[int(overlap.test_where)] = {"file": overlap.train_where, "match": match,
                                              "score": round(overlap.score, 3)}
    return found


@dataclass
class Collection:
    """What a set of records and an earlier collection make, before anything is written."""

    examples: list[dict] = field(default_factory=list)
    train: list[dict] = field(default_factory=list)
    heldout: list[dict] = field(default_factory=list)
    rejected: list[dict] = field(default_factory=list)
    contaminated: list[dict] = field(default_factory=list)
    records_read: int = 0
    decisions: Counter = field(default_factory=Counter)
    superseded: int = 0
    repeated: int = 0
    from_previous: int = 0
    offsets: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def rejected_reasons(self) -> dict[str, int]:
        return dict(sorted(Counter(record["reason"] for record in self.rejected).items()))


def build_collection(records: Iterable[TopicRecord], previous: Iterable[tuple[str, dict]] = (),
                     frozen: Sequence[Mapping] = (), heldout_fraction: float = HELDOUT_FRACTION) -> Collection:
    """Decode, label, merge with `previous` ('file:line', example), dedupe, refuse frozen overlaps, split."""
    collection = Collection()
    candidates: list[Candidate] = []
    for record in records:
        collection.records_read += 1
        _note_offset(collection.offsets, record)
        try:
            correction = decode_correction(record.value)
            collection.decisions[correction.decision] += 1
            if correction.decision not in LABEL_DECISIONS:
                continue
            candidates.append(Candidate(example_from(correction), True, record.offset))
        except RecordRejected as err:
            collection.rejected.append(_rejected(err, record.value, record.position()))
    for where, example in previous:
        try:
            candidates.append(Candidate(check_example(example), False, -1))
            collection.from_previous += 1
        except RecordRejected as err:
            file, _, line = where.rpartition(":")
            collection.rejected.append(_rejected(err, orjson.dumps(example), {"file": file, "line": int(line)}))
    winners, collection.superseded, collection.repeated = latest_per_message(candidates)
    examples = sorted((c.example for c in winners), key=lambda e: (e["decided_at"], e["id"]))
    overlaps = contaminated_examples(examples, frozen) if frozen else {}
    for index, example in enumerate(examples):
        if index in overlaps:
            collection.contaminated.append({**example, "contaminates": overlaps[index]})
        else:
            collection.examples.append(example)
    collection.train, collection.heldout = split_heldout(collection.examples, heldout_fraction)
    return collection


def _note_offset(offsets: dict, record: TopicRecord) -> None:
    span = offsets.setdefault(str(record.partition), {"first": record.offset, "last": record.offset, "records": 0})
    span["first"] = min(span["first"], record.offset)
    span["last"] = max(span["last"], record.offset)
    span["records"] += 1


def _rejected(err: RecordRejected, value: bytes | None, where: dict) -> dict:
    return {"reason": err.reason, "detail": err.detail, **where,
            "payload_b64": base64.b64encode(value).decode() if value is not None else None}


# --- Kafka and files ---------------------------------------------------------------------


def read_topic(settings: Settings, topic: str, group_id: str | None = None, idle_s: float = 2.0,
               on_record=None) -> list[TopicRecord]:
    """Every record now on `topic`, all partitions from the beginning, until `idle_s` of silence.

    By assignment: nothing is committed and no group is joined (`group_id` only
    names the client). Not bounded by watermarks: the embedded broker reports the
    high watermark as the last batch's base offset + 1, which undercounts.
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    from streamer.streaming.kafka import BrokerUnavailable, consumer_config, partitions_of

    consumer = Consumer(consumer_config(settings, group_id or f"{settings.group_id}-collect-{uuid.uuid4().hex[:8]}"))
    try:
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)
                         for partition in partitions_of(consumer, topic, settings)])
        records: list[TopicRecord] = []
        message = consumer.poll(max(2 * idle_s, 2.0))  # the first fetch takes ~0.5 s
        while message is not None:
            error = message.error()
            if error is None:
                records.append(TopicRecord(message.topic(), message.partition(), message.offset(), message.value()))
                if on_record is not None:
                    on_record(len(records))
            elif error.fatal():
                raise BrokerUnavailable(f"reading {topic!r}: {error.str()}")
            else:
                log.warning("reading %s [%s]: %s", topic, message.partition(), error.str())
            message = consumer.poll(idle_s)
        return records
    finally:
        consumer.close()


def read_frozen(paths: Iterable[Path]) -> list[dict]:
    """{text, where=file} for every line of the frozen test files; a missing file is an error, not a skip."""
    frozen = []
    for path in paths:
        try:
            records = read_jsonl(path)
        except DatasetError as err:
            raise CollectError(f"frozen test file unusable, so contamination cannot be checked: {err} (run in the "
                               f"project's checkout, or name the sets with --frozen)") from None
        frozen.extend({"text": r["text"], "where": str(path)} for r in records if isinstance(r.get("text"), str))
    return frozen


def read_previous(previous: Path) -> list[tuple[str, dict]]:
    """('file:line', example) of an earlier collection's corrections.jsonl."""
    path = previous / "corrections.jsonl"
    try:
        return [(f"{path}:{number}", record) for number, record in numbered_records(path)]
    except DatasetError as err:
        raise CollectError(f"previous collection unusable: {err}") from None


def write_collection(collection: Collection, out_dir: Path, manifest_extra: Mapping) -> dict:
    """Write every file into a sibling temporary folder, then rename it to `out_dir`: no half dataset survives a crash.

    An existing `out_dir` is replaced only if it is an earlier collection (has
    manifest.json) or empty; anything else is refused rather than deleted.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / "manifest.json").is_file():
        raise CollectError(f"{out_dir} exists and is not a collection (no manifest.json); choose an empty folder")
    staging = out_dir.with_name(f".{out_dir.name}.tmp-{uuid.uuid4().hex[:8]}")
    staging.mkdir(parents=True)
    try:
        contents = {"corrections.jsonl": collection.examples, "train.jsonl": collection.train,
                    "heldout.jsonl": collection.heldout, "rejected.jsonl": collection.rejected,
                    "contaminated.jsonl": collection.contaminated}
        for name in DATASET_FILES:
            write_jsonl(staging / name, contents[name])
        files = {name: file_manifest(staging / name) for name in DATASET_FILES}
        manifest = {"version": files["corrections.jsonl"]["sha256"][:12], **manifest_extra, "files": files}
        (staging / "manifest.json").write_bytes(orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
        for name in (*DATASET_FILES, "manifest.json"):
            with (staging / name).open("rb") as written:
                os.fsync(written.fileno())
        if out_dir.exists():
            retired = out_dir.with_name(f".{out_dir.name}.old-{uuid.uuid4().hex[:8]}")
            out_dir.rename(retired)
            staging.rename(out_dir)
            shutil.rmtree(retired)
        else:
            staging.rename(out_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


@dataclass
class CollectReport:
    """The counts and files of one collection, as the CLI shows them."""

    out_dir: Path
    version: str
    topic: str
    records_read: int
    decisions: dict[str, int]
    examples: int
    superseded: int
    repeated: int
    from_previous: int
    bad: int
    rejected_reasons: dict[str, int]
    contaminated: int
    train: int
    heldout: int
    offsets: dict[str, dict[str, int]]

    @property
    def files(self) -> dict[str, Path]:
        return {name: self.out_dir / name for name in (*DATASET_FILES, "manifest.json")}

    def render(self) -> str:
        decided = "  ".join(f"{name} {self.decisions.get(name, 0)}" for name in DECISIONS)
        reasons = ", ".join(f"{name} {count}" for name, count in self.rejected_reasons.items())
        rows = [
            ("records read", f"{self.records_read} from {self.topic} ({len(self.offsets)} partitions)"),
            ("decisions", decided),
            ("from previous", str(self.from_previous)),
            ("superseded", f"{self.superseded} (same message decided again; {self.repeated} repeats of one decision)"),
            ("bad", f"{self.bad}" + (f" ({reasons}) -> rejected.jsonl" if reasons else "")),
            ("contaminated", f"{self.contaminated} (overlap a frozen test set) -> contaminated.jsonl"),
            ("examples", f"{self.examples} = train {self.train} + heldout {self.heldout}"),
            ("version", f"{self.version} in {self.out_dir}"),
        ]
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def collect_corrections(settings: Settings, out_dir: Path, frozen_test_files: list[Path],
                        previous: Path | None = None, group_id: str | None = None, idle_s: float = 2.0,
                        progress=None) -> CollectReport:
    """Read `settings.corrections_topic` whole and write a corrections dataset version to `out_dir`.

    `previous` (an earlier `out_dir`) is merged in, so datasets grow version by
    version. `progress`: truthy shows a live record count (a rich Console is used
    as given; otherwise it goes to stderr).
    """
    out_dir = Path(out_dir)
    frozen = read_frozen(frozen_test_files)  # before Kafka: a missing frozen file fails fast
    carried = read_previous(Path(previous)) if previous is not None else []
    topic = settings.corrections_topic
    if progress:
        records = _read_with_progress(settings, topic, group_id, idle_s, progress)
    else:
        records = read_topic(settings, topic, group_id, idle_s)
    collection = build_collection(records, carried, frozen)
    extra = {
        "created_at": datetime.now(timezone.utc).isoformat(),
        "topic": topic,
        "broker": settings.broker_url,
        "offsets": collection.offsets,
        "previous": _previous_version(previous),
        "frozen_test_files": {str(path): hashlib.sha256(Path(path).read_bytes()).hexdigest()
                              for path in frozen_test_files},
        "heldout_fraction": HELDOUT_FRACTION,
        "counts": {
            "records_read": collection.records_read,
            "decisions": {name: collection.decisions.get(name, 0) for name in DECISIONS},
            "from_previous": collection.from_previous,
            "examples": len(collection.examples),
            "superseded": collection.superseded,
            "repeated": collection.repeated,
            "bad": len(collection.rejected),
            "rejected_reasons": collection.rejected_reasons,
            "contaminated": len(collection.contaminated),
            "train": len(collection.train),
            "heldout": len(collection.heldout),
        },
    }
    manifest = write_collection(collection, out_dir, extra)
    counts = manifest["counts"]
    return CollectReport(
        out_dir=out_dir, version=manifest["version"], topic=topic, records_read=counts["records_read"],
        decisions=counts["decisions"], examples=counts["examples"], superseded=counts["superseded"],
        repeated=counts["repeated"], from_previous=counts["from_previous"], bad=counts["bad"],
        rejected_reasons=counts["rejected_reasons"], contaminated=counts["contaminated"], train=counts["train"],
        heldout=counts["heldout"], offsets=collection.offsets,
    )


def _previous_version(previous: Path | None) -> dict | None:
    if previous is None:
        return None
    try:
        version = orjson.loads((Path(previous) / "manifest.json").read_bytes()).get("version")
    except (OSError, orjson.JSONDecodeError, AttributeError):
        version = None
    return {"path": str(previous), "version": version}


def _read_with_progress(settings: Settings, topic: str, group_id: str | None, idle_s: float,
                        progress) -> list[TopicRecord]:
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    console = progress if isinstance(progress, Console) else Console(stderr=True)
    with Progress(SpinnerColumn(), TextColumn(f"reading {topic}"), TextColumn("{task.completed} records"),
                  TimeElapsedColumn(), console=console) as bar:
        task = bar.add_task("read", total=None)
        return read_topic(settings, topic, group_id, idle_s, on_record=lambda n: bar.update(task, completed=n))
