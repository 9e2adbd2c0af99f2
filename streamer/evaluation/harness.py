"""Running a parser over a gold file: read the annotations, parse each message, score.

Gold file: JSONL, one example a line: `{"id", "text", "expected": {TradeFields...},
"timestamp"?, "ambiguous"?, "multiple_trades"?, "lang"?, "tags"?}`. `expected`
may leave fields out; those are not scored (see `metrics`). The example's
`timestamp` becomes `ChatMessage.timestamp`, so relative value dates resolve
against the day the annotator assumed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from datetime import datetime
from pathlib import Path
from typing import Protocol, Sequence

import orjson
from pydantic import ValidationError

from schemas import CONTRACT_FIELDS, ChatMessage, LowConfidence, ParseResult, Trade, TradeFields
from streamer.evaluation.metrics import EvalCase, is_exact_match, summarize, wrong_fields


class GoldFileError(ValueError):
    """A gold file that cannot be read; the message names the file and line."""


class MessageParser(Protocol):
    def parse(self, message: ChatMessage) -> ParseResult: ...


@dataclass(frozen=True)
class GoldExample:
    id: str
    text: str
    expected: dict[str, object]
    timestamp: datetime | None = None
    ambiguous: bool = False
    multiple_trades: bool = False
    line: int = 0
    tags: tuple[str, ...] = ()

    def message(self) -> ChatMessage:
        return ChatMessage(message_id=self.id, text=self.text, timestamp=self.timestamp, source="gold")


def load_gold(path: Path, limit: int | None = None) -> list[GoldExample]:
    """The first `limit` examples of a gold JSONL file, validated against the contract."""
    try:
        lines = path.read_bytes().splitlines()
    except OSError as err:
        raise GoldFileError(f"cannot read {path}: {err.strerror}") from None
    examples: list[GoldExample] = []
    for number, raw in enumerate(lines, start=1):
        if limit is not None and len(examples) >= limit:
            break
        if raw.strip():
            examples.append(_gold_example(raw, f"{path}:{number}", number))
    if not examples:
        raise GoldFileError(f"{path}: no examples")
    return examples


def _gold_example(raw: bytes, where: str, number: int) -> GoldExample:
    try:
        record = orjson.loads(raw)
    except orjson.JSONDecodeError as err:
        raise GoldFileError(f"{where}: invalid JSON ({str(err).splitlines()[0]})") from None
    if not isinstance(record, dict):
        raise GoldFileError(f"{where}: not a JSON object")
    text, expected = record.get("text"), record.get("expected")
    if not isinstance(text, str) or not text.strip():
        raise GoldFileError(f"{where}: 'text' must be a non-empty string")
    if not isinstance(expected, dict):
        raise GoldFileError(f"{where}: 'expected' must be an object of Trade fields")
    unknown = sorted(set(expected) - set(CONTRACT_FIELDS))
    if unknown:
        raise GoldFileError(f"{where}: 'expected' has fields outside the contract: {', '.join(unknown)}")
    try:
        TradeFields.model_validate({"intent": "none", **expected})
        timestamp = ChatMessage(text=text, timestamp=record.get("timestamp")).timestamp
    except ValidationError as err:
        first = err.errors()[0]
        raise GoldFileError(f"{where}: {'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    return GoldExample(
        id=str(record.get("id") or f"line-{number}"), text=text, expected=expected, timestamp=timestamp,
        ambiguous=bool(record.get("ambiguous")), multiple_trades=bool(record.get("multiple_trades")), line=number,
        tags=tuple(str(tag) for tag in record.get("tags") or () if isinstance(tag, str)),
    )


@dataclass
class Prediction:
    """What the parser returned for one gold example (or why it returned nothing)."""

    example: GoldExample
    result: ParseResult | None
    error: str | None = None

    @property
    def trade(self) -> Trade | None:
        """The extraction to score: the trade itself, or the best effort a review record carries."""
        return self.result.trade if isinstance(self.result, LowConfidence) else self.result

    def case(self) -> EvalCase:
        result, trade = self.result, self.trade
        provenance = result.provenance if result is not None else None
        return EvalCase(
            expected=self.example.expected,
            predicted=None if trade is None else {name: getattr(trade, name) for name in CONTRACT_FIELDS},
            flagged=result is None or isinstance(result, LowConfidence),
            confidence=None if result is None else result.confidence,
            ambiguous=self.example.ambiguous,
            multiple_trades=self.example.multiple_trades,
            tags=self.example.tags,
            latency_ms=provenance.latency_ms if provenance else None,
            generated_tokens=provenance.generated_tokens if provenance else None,
            flagged_for_reason=result is None or (
                isinstance(result, LowConfidence) and any(r.code != "low_confidence" for r in result.reasons)),
        )

    def record(self, config: str) -> dict:
        """One line of predictions JSONL: enough to see what went wrong without re-running."""
        case, result = self.case(), self.result
        return {
            "config": config, "id": self.example.id, "text": self.example.text,
            "expected": self.example.expected, "predicted": case.predicted,
            "kind": result.kind if result is not None else "error",
            "exact_match": is_exact_match(case), "wrong_fields": wrong_fields(case), "flagged": case.flagged,
            "ambiguous": self.example.ambiguous, "confidence": case.confidence,
            "reasons": [r.model_dump(exclude_none=True) for r in result.reasons] if isinstance(result, LowConfidence) else [],
            "field_confidence": self.trade.field_confidence if self.trade is not None else {},
            "latency_ms": case.latency_ms, "error": self.error,
        }


@dataclass
class EvaluationRun:
    """One configuration's predictions and the metrics computed from them."""

    name: str
    description: dict
    predictions: list[Prediction] = field(default_factory=list)

    @cached_property
    def metrics(self) -> dict:
        return summarize([p.case() for p in self.predictions])


def run_parser(parser: MessageParser, examples: Sequence[GoldExample], name: str, console=None) -> list[Prediction]:
    """Parse every example with a progress bar on stderr; a `ParseError` becomes an error row, not a crash.

    A parser with `parse_batch` gets the examples in batches of its
    `batch_max_messages`, as a worker would, so latencies are a batch's.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from streamer.parsing import ParseError

    batched = getattr(parser, "parse_batch", None)
    size = parser.settings.batch_max_messages if batched else 1
    predictions: list[Prediction] = []
    exact = 0
    columns = (TextColumn(f"eval [bold]{name}[/bold]"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[score]}"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(name, total=len(examples), score="")
        for start in range(0, len(examples), size):
            chunk = examples[start:start + size]
            if batched:
                results = batched([example.message() for example in chunk])
            else:
                results = []
                for example in chunk:
                    try:
                        results.append(parser.parse(example.message()))
                    except ParseError as err:
                        results.append(err)
            for example, result in zip(chunk, results):
                if isinstance(result, ParseError):
                    prediction = Prediction(example, None, error=str(result))
                    progress.console.print(f"[red]error[/red] {example.id} (line {example.line}): {result}", highlight=False)
                else:
                    prediction = Prediction(example, result)
                predictions.append(prediction)
                exact += is_exact_match(prediction.case())
            progress.update(task, advance=len(chunk), score=f"exact {exact}/{len(predictions)}")
    return predictions


def close_parser(parser: object) -> None:
    """Free the llama.cpp model now, so the next configuration does not hold two in memory."""
    second = getattr(parser, "second", None)
    for model in (getattr(parser, "model", None), getattr(second, "model", None)):
        llm = getattr(model, "llm", None)
        if llm is not None and hasattr(llm, "close"):
            llm.close()
