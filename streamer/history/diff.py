"""Compare two result sets by `message_id`: how a model or adapter upgrade is reviewed.

A result set is what the parser published for a range of chat: `Trade` and
`LowConfidence` records, read from JSONL files or topics. Records are paired
by `message_id`; for each pair the contract fields of the trade (a
`LowConfidence` contributes the `trade` it carries) are compared, and a change
of kind (trade <-> review) is counted, with the confidence and the review
reasons on each side, so a kind change with the same fields still says why.
Records that cannot be paired (dead letters, unreadable lines) are counted,
never dropped silently.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterable, Iterator

import orjson
from pydantic import TypeAdapter, ValidationError

from schemas import CONTRACT_FIELDS, LowConfidence, ParseResult, Reason, Trade

_RESULT = TypeAdapter(ParseResult)
NO_TRADE = "<no trade>"


@dataclass
class ResultSet:
    """The latest result per message_id of one side, plus what could not be used."""

    name: str
    results: dict[str, ParseResult] = field(default_factory=dict)
    duplicates: int = 0                                      # same message_id seen again: the last one is kept
    ignored: Counter = field(default_factory=Counter)       # reason -> records
    problems: list[str] = field(default_factory=list)       # "where: what", the first few

    def add(self, where: str, payload: bytes) -> None:
        """Add one raw record (a JSONL line or a topic record value)."""
        try:
            data = orjson.loads(payload)
        except orjson.JSONDecodeError:
            self._ignore("not_json", f"{where}: not JSON")
            return
        kind = data.get("kind") if isinstance(data, dict) else None
        if kind == "dead_letter":
            self._ignore("dead_letter", None)
            return
        try:
            result = _RESULT.validate_python(data)
        except ValidationError as err:
            first = err.errors()[0]
            self._ignore("not_a_result", f"{where}: not a Trade or LowConfidence ({first['msg']})")
            return
        if not result.message_id:
            self._ignore("no_message_id", f"{where}: {result.kind} without message_id")
            return
        if result.message_id in self.results:
            self.duplicates += 1
        self.results[result.message_id] = result

    def _ignore(self, reason: str, problem: str | None) -> None:
        self.ignored[reason] += 1
        if problem and len(self.problems) < 5:
            self.problems.append(problem)


def read_jsonl_results(name: str, lines: Iterable[bytes], into: ResultSet | None = None) -> ResultSet:
    results = into or ResultSet(name)
    for number, line in enumerate(lines, start=1):
        if line.strip():
            results.add(f"{name}:{number}", line)
    return results


def trade_of(result: ParseResult) -> Trade | None:
    return result.trade if isinstance(result, LowConfidence) else result


def text_of(*results: ParseResult) -> str | None:
    return next((r.message.text for r in results if isinstance(r, LowConfidence)), None)


def reasons_of(result: ParseResult) -> tuple[Reason, ...]:
    """Why a result went to review; a trade has none."""
    return tuple(result.reasons) if isinstance(result, LowConfidence) else ()


def show_reasons(reasons: tuple[Reason, ...]) -> str:
    """`code(field)` per reason, e.g. `low_confidence(side), multiple_trades`; `none` for a trade."""
    return ", ".join(f"{r.code}({r.field})" if r.field else r.code for r in reasons) or "none"


def _same(a, b) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


@dataclass(frozen=True)
class ChangedResult:
    message_id: str
    kind_a: str
    kind_b: str
    changes: dict[str, tuple[object, object]]  # field -> (A value, B value); NO_TRADE where a side has none
    text: str | None = None                    # the chat message, when a side is a LowConfidence (it carries it)
    confidence: tuple[float, float] | None = None               # (A, B): the result's overall confidence
    reasons: tuple[tuple[Reason, ...], tuple[Reason, ...]] = ((), ())  # (A, B): review reasons; none for a trade

    @property
    def review_changed(self) -> bool:
        """The kind or the review reasons differ: worth showing confidence and reasons beside the fields."""
        return self.kind_a != self.kind_b or self.reasons[0] != self.reasons[1]


@dataclass
class FieldAgreement:
    agree: int = 0
    compared: int = 0

    @property
    def rate(self) -> float | None:
        return self.agree / self.compared if self.compared else None


@dataclass
class DiffReport:
    name_a: str
    name_b: str
    total_a: int
    total_b: int
    both: int
    only_a: list[str]
    only_b: list[str]
    kinds: Counter                         # (kind A, kind B) -> pairs
    fields: dict[str, FieldAgreement]
    no_trade: int                          # pairs where a side has no trade: fields not comparable
    changed: list[ChangedResult]

    @property
    def kind_changes(self) -> int:
        return sum(n for (a, b), n in self.kinds.items() if a != b)

    def to_dict(self) -> dict:
        return {
            "a": self.name_a, "b": self.name_b, "total_a": self.total_a, "total_b": self.total_b,
            "both": self.both, "only_a": len(self.only_a), "only_b": len(self.only_b),
            "only_a_ids": self.only_a, "only_b_ids": self.only_b,
            "kinds": [{"a": a, "b": b, "count": n} for (a, b), n in sorted(self.kinds.items())],
            "kind_changes": self.kind_changes,
            "no_trade": self.no_trade,
            "fields": {f: {"agree": s.agree, "compared": s.compared, "rate": s.rate} for f, s in self.fields.items()},
            "changed": [
                {"message_id": c.message_id, "text": c.text, "kind_a": c.kind_a, "kind_b": c.kind_b,
                 "changes": {f: {"a": a, "b": b} for f, (a, b) in c.changes.items()},
                 "confidence": None if c.confidence is None else {"a": c.confidence[0], "b": c.confidence[1]},
                 "reasons": {"a": [r.model_dump(mode="json") for r in c.reasons[0]],
                             "b": [r.model_dump(mode="json") for r in c.reasons[1]]}}
                for c in self.changed
            ],
        }


def compare(a: ResultSet, b: ResultSet) -> DiffReport:
    """Pair by message_id and compare kinds and contract fields."""
    both_ids = [m for m in a.results if m in b.results]
    kinds: Counter = Counter()
    fields = {f: FieldAgreement() for f in CONTRACT_FIELDS}
    changed: list[ChangedResult] = []
    no_trade = 0
    for message_id in sorted(both_ids):
        ra, rb = a.results[message_id], b.results[message_id]
        kinds[(ra.kind, rb.kind)] += 1
        ta, tb = trade_of(ra), trade_of(rb)
        changes: dict[str, tuple[object, object]] = {}
        if ta is None or tb is None:
            if ta is not None or tb is not None:
                changes["trade"] = (NO_TRADE if ta is None else "present", NO_TRADE if tb is None else "present")
            no_trade += 1
        else:
            for name in CONTRACT_FIELDS:
                va, vb = getattr(ta, name), getattr(tb, name)
                fields[name].compared += 1
                if _same(va, vb):
                    fields[name].agree += 1
                else:
                    changes[name] = (va, vb)
        if changes or ra.kind != rb.kind:
            changed.append(ChangedResult(message_id, ra.kind, rb.kind, changes, text_of(ra, rb),
                                         (ra.confidence, rb.confidence), (reasons_of(ra), reasons_of(rb))))
    return DiffReport(
        name_a=a.name, name_b=b.name, total_a=len(a.results), total_b=len(b.results), both=len(both_ids),
        only_a=sorted(m for m in a.results if m not in b.results),
        only_b=sorted(m for m in b.results if m not in a.results),
        kinds=kinds, fields=fields, no_trade=no_trade, changed=changed,
    )


def render_lines(report: DiffReport, a: ResultSet, b: ResultSet, limit: int) -> Iterator[object]:
    """Rich renderables (tables and text) for a person reviewing the diff."""
    from rich.table import Table
    from rich.text import Text

    yield (f"A = {report.name_a}: {report.total_a} results   B = {report.name_b}: {report.total_b} results   "
           f"in both: {report.both}   only in A: {len(report.only_a)}   only in B: {len(report.only_b)}")
    for side in (a, b):
        notes = []
        if side.duplicates:
            notes.append(f"{side.duplicates} duplicate message_ids (kept the last)")
        notes += [f"{n} {reason} ignored" for reason, n in sorted(side.ignored.items())]
        if notes:
            yield f"{side.name}: " + ", ".join(notes)
        for problem in side.problems:
            yield f"  {problem}"

    kinds = Table(title="kind (A -> B)")
    kinds.add_column("A")
    kinds.add_column("B")
    kinds.add_column("messages", justify="right")
    for (ka, kb), n in sorted(report.kinds.items()):
        kinds.add_row(ka, kb, str(n), style=None if ka == kb else "yellow")
    yield kinds

    table = Table(title=f"field agreement over {report.both - report.no_trade} pairs with a trade on both sides")
    table.add_column("field")
    table.add_column("agree", justify="right")
    table.add_column("differ", justify="right")
    table.add_column("agreement", justify="right")
    for name, stats in report.fields.items():
        rate = "-" if stats.rate is None else f"{stats.rate:.1%}"
        table.add_row(name, str(stats.agree), str(stats.compared - stats.agree), rate,
                      style="yellow" if stats.agree < stats.compared else None)
    yield table
    if report.no_trade:
        yield f"{report.no_trade} pairs where a side has no trade (model output unreadable): fields not compared"

    if report.changed:
        shown = report.changed if limit <= 0 else report.changed[:limit]
        more = f" (first {len(shown)})" if len(shown) < len(report.changed) else ""
        changes = Table(title=f"changed results: {len(report.changed)}{more}")
        changes.add_column("message_id")
        changes.add_column("text")
        changes.add_column("kind")
        changes.add_column("changes (A -> B)", overflow="fold")
        for c in shown:
            kind = c.kind_a if c.kind_a == c.kind_b else f"{c.kind_a} -> {c.kind_b}"
            # Text, not markup: chat like "[alice] buy 10m" would otherwise lose its brackets to rich.
            changes.add_row(Text(c.message_id), Text(c.text or ""), kind, Text("\n".join(change_lines(c))))
        yield changes
    else:
        yield "no changed results"


def change_lines(change: ChangedResult) -> list[str]:
    """What differs, one line each: the fields, then (when the kind or the reasons changed) confidence and reasons."""
    lines = [f"{f}: {_show(va)} -> {_show(vb)}" for f, (va, vb) in change.changes.items()] or ["(same fields)"]
    if change.review_changed:
        if change.confidence is not None:
            lines.append(f"confidence: {change.confidence[0]:.2f} -> {change.confidence[1]:.2f}")
        lines.append(f"reasons: {show_reasons(change.reasons[0])} -> {show_reasons(change.reasons[1])}")
    return lines


def _show(value) -> str:
    return "null" if value is None else str(value)
