"""Annotated lines into `trades.corrections`, as if a reviewer had decided each one.

For backfills (a desk's own labelled history) and demonstrations: the loop then
treats them like any desk decision. Each record says where it came from
(`item` = `import:<file>:<line>`, the reviewer given) and, when a parser is
passed, what the model said about the line (`model_output`), as a desk record does.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

from schemas import ChatMessage, Correction, LowConfidence, Trade, TradeFields
from streamer.data.manage import DatasetError, numbered_records
from streamer.settings import Settings


class FeedError(ValueError):
    """An annotated file that cannot become corrections; the message names the file and line."""


def corrections_from_file(path: Path, reviewer: str, parser=None, now: datetime | None = None) -> list[Correction]:
    """One `accept` (or `not_trade` for intent none) per annotated line of `path`."""
    now = now or datetime.now(timezone.utc)
    try:
        records = numbered_records(path)
    except DatasetError as err:
        raise FeedError(str(err)) from None
    messages = []
    for line, record in records:
        try:
            stamp = record.get("timestamp")
            messages.append(ChatMessage(text=record["text"], channel=record.get("channel"),
                                        sender=record.get("sender"), timestamp=stamp or None, source="import"))
            TradeFields.model_validate(record["expected"])
        except (KeyError, TypeError, ValueError) as err:
            raise FeedError(f"{path}:{line}: not an annotated line ({err})") from None
    outputs = parser.parse_batch(messages) if parser is not None else [None] * len(messages)
    corrections = []
    for (line, record), message, output in zip(records, messages, outputs):
        corrected = TradeFields.model_validate(record["expected"])
        model = output.trade if isinstance(output, LowConfidence) else output if isinstance(output, Trade) else None
        corrections.append(Correction(
            correction_id=f"import:{path.name}:{line}@{now.isoformat()}", item=f"import:{path.name}:{line}",
            message_id=message.message_id, message=message, model_output=model,
            decision="not_trade" if corrected.intent == "none" else "accept", corrected=corrected,
            reviewer=reviewer, decided_at=now,
            reasons=list(output.reasons) if isinstance(output, LowConfidence) else [],
        ))
    return corrections


def publish_corrections(settings: Settings, corrections: list[Correction]) -> int:
    """Produce to the corrections topic, every record acknowledged (acks=all); returns how many."""
    from confluent_kafka import Producer

    from streamer.streaming.kafka import ensure_topics, produce_acknowledged, producer_config

    ensure_topics(settings, [settings.corrections_topic])
    records = [(settings.corrections_topic, record.item.encode(), record.to_json()) for record in corrections]
    return len(produce_acknowledged(Producer(producer_config(settings)), records, timeout_s=60.0))
