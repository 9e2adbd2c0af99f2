"""diff: pairing by message_id, per-field agreement, kind changes, counts on hand-made result sets."""

from __future__ import annotations

import io

import orjson
import pytest

from schemas import ChatMessage, DeadLetter, LowConfidence, Reason, Trade
from streamer.history.diff import NO_TRADE, ChangedResult, ResultSet, change_lines, compare, read_jsonl_results


def trade(mid: str, **fields) -> Trade:
    base = dict(intent="order", side="buy", asset_class="fx_spot", symbol="GBPUSD", quantity=10_000_000.0,
                currency="GBP")
    return Trade(**{**base, **fields}, message_id=mid, confidence=0.9)


def review(mid: str, inner: Trade | None) -> LowConfidence:
    return LowConfidence(message_id=mid, message=ChatMessage(message_id=mid, text="x"), trade=inner, confidence=0.2,
                         reasons=[Reason(code="low_confidence", field="side")])


def result_set(name: str, *records) -> ResultSet:
    return read_jsonl_results(name, [r.to_json() for r in records])


# A hand-made pair: m1 same, m2 symbol changed, m3 trade -> review (same fields), m4 review -> trade with
# quantity changed, m5 review without trade on A, m6 only in A, m7 only in B.
A = result_set(
    "a.jsonl",
    trade("m1"), trade("m2"), trade("m3"), review("m4", trade("m4")), review("m5", None), trade("m6"),
)
B = result_set(
    "b.jsonl",
    trade("m1"), trade("m2", symbol="EURUSD"), review("m3", trade("m3")), trade("m4", quantity=5e6), trade("m5"),
    trade("m7"),
)


def test_counts_on_a_hand_made_pair():
    report = compare(A, B)
    assert (report.total_a, report.total_b, report.both) == (6, 6, 5)
    assert report.only_a == ["m6"] and report.only_b == ["m7"]
    assert report.kinds == {("trade", "trade"): 2, ("trade", "low_confidence"): 1,
                            ("low_confidence", "trade"): 2}
    assert report.kind_changes == 3
    assert report.no_trade == 1


@pytest.mark.parametrize("field, agree, compared", [
    ("intent", 4, 4), ("symbol", 3, 4), ("quantity", 3, 4), ("side", 4, 4), ("price", 4, 4),
])
def test_field_agreement_uses_the_trade_inside_low_confidence(field, agree, compared):
    stats = compare(A, B).fields[field]
    assert (stats.agree, stats.compared) == (agree, compared)


def test_changed_list_names_fields_and_kind_changes():
    changed = {c.message_id: c for c in compare(A, B).changed}
    assert sorted(changed) == ["m2", "m3", "m4", "m5"]
    assert changed["m2"].changes == {"symbol": ("GBPUSD", "EURUSD")}
    assert (changed["m3"].kind_a, changed["m3"].kind_b, changed["m3"].changes) == ("trade", "low_confidence", {})
    assert changed["m4"].changes == {"quantity": (10_000_000.0, 5_000_000.0)}
    assert changed["m5"].changes == {"trade": (NO_TRADE, "present")}
    assert changed["m4"].text == "x" and changed["m2"].text is None  # only LowConfidence carries the message


LOW_SIDE = Reason(code="low_confidence", field="side")


@pytest.mark.parametrize("mid, confidence, reasons", [
    ("m3", (0.9, 0.2), ((), (LOW_SIDE,))),          # trade -> review with the same fields: why it went to review
    ("m4", (0.2, 0.9), ((LOW_SIDE,), ())),          # and back
    ("m2", (0.9, 0.9), ((), ())),
])
def test_changed_results_carry_confidence_and_reasons(mid, confidence, reasons):
    changed = {c.message_id: c for c in compare(A, B).changed}
    assert (changed[mid].confidence, changed[mid].reasons) == (confidence, reasons)


RULES_QTY = Reason(code="rules_disagree", field="quantity", detail="rules read 5m")


@pytest.mark.parametrize("change, lines", [
    (ChangedResult("m", "trade", "low_confidence", {}, None, (0.91, 0.42), ((), (LOW_SIDE, RULES_QTY))),
     ["(same fields)", "confidence: 0.91 -> 0.42", "reasons: none -> low_confidence(side), rules_disagree(quantity)"]),
    (ChangedResult("m", "low_confidence", "trade", {"quantity": (1e7, 5e6)}, None, (0.3, 0.8), ((LOW_SIDE,), ())),
     ["quantity: 10000000.0 -> 5000000.0", "confidence: 0.30 -> 0.80", "reasons: low_confidence(side) -> none"]),
    (ChangedResult("m", "low_confidence", "low_confidence", {}, None, (0.3, 0.3),
                   ((Reason(code="multiple_trades"),), (LOW_SIDE,))),      # same kind, other reasons
     ["(same fields)", "confidence: 0.30 -> 0.30", "reasons: multiple_trades -> low_confidence(side)"]),
    (ChangedResult("m", "trade", "trade", {"symbol": ("GBPUSD", "EURUSD")}, None, (0.9, 0.8), ((), ())),
     ["symbol: GBPUSD -> EURUSD"]),                                         # a field change alone: no review noise
])
def test_change_lines_say_what_changed(change, lines):
    assert change_lines(change) == lines


def test_json_report_has_confidence_and_reasons_for_each_change():
    changed = {c["message_id"]: c for c in compare(A, B).to_dict()["changed"]}
    assert changed["m3"]["changes"] == {}
    assert changed["m3"]["confidence"] == {"a": 0.9, "b": 0.2}
    assert changed["m3"]["reasons"] == {"a": [], "b": [{"code": "low_confidence", "field": "side", "detail": None}]}
    orjson.dumps(compare(A, B).to_dict())  # serialisable as the command writes it


def test_rendered_table_shows_why_a_kind_changed():
    from rich.console import Console

    from streamer.history.diff import render_lines

    console = Console(width=200, file=io.StringIO())
    for item in render_lines(compare(A, B), A, B, limit=0):
        console.print(item)
    lines = console.file.getvalue().splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("│ m3 "))
    assert "trade -> low_confidence" in lines[at] and "(same fields)" in lines[at]
    assert "confidence: 0.90 -> 0.20" in lines[at + 1]
    assert "reasons: none -> low_confidence(side)" in lines[at + 2]


def test_rendered_table_keeps_brackets_in_chat_text():
    from rich.console import Console

    from streamer.history.diff import render_lines

    a = result_set("a", trade("m"))
    b = read_jsonl_results("b", [LowConfidence(
        message_id="m", message=ChatMessage(message_id="m", text="[alice] buy 10m [/b] cable"), trade=trade("m"),
        confidence=0.2, reasons=[Reason(code="low_confidence", field="side")]).to_json()])
    console = Console(width=200, file=io.StringIO())
    for item in render_lines(compare(a, b), a, b, limit=0):
        console.print(item)
    assert "[alice] buy 10m [/b] cable" in console.file.getvalue()


def test_identical_sets_have_no_changes():
    report = compare(A, A)
    assert report.changed == [] and report.only_a == [] and report.kind_changes == 0
    assert all(s.agree == s.compared == 5 for s in report.fields.values())  # m5 has no trade


@pytest.mark.parametrize("a, b, same", [
    (1.0848, 1.0848 + 1e-12, True),      # float noise is not a change
    (1.0848, 1.0850, False),
    (None, 1.0848, False),
])
def test_price_comparison(a, b, same):
    report = compare(result_set("a", trade("m", price=a)), result_set("b", trade("m", price=b)))
    assert (report.fields["price"].agree == 1) is same


def test_unusable_records_are_counted_not_dropped():
    dead = DeadLetter.from_bytes(b"\xff", "not_utf8", "bad")
    results = read_jsonl_results("r.jsonl", [
        trade("m1").to_json(), trade("m1", side="sell").to_json(), b"", b"not json",
        dead.to_json(), orjson.dumps({"kind": "trade"}), trade(None).to_json(),
    ])
    assert list(results.results) == ["m1"] and results.results["m1"].side == "sell"  # the last one is kept
    assert results.duplicates == 1
    assert results.ignored == {"not_json": 1, "dead_letter": 1, "not_a_result": 1, "no_message_id": 1}
    assert results.problems[0] == "r.jsonl:4: not JSON"


@pytest.mark.integration
def test_diff_reads_topics_and_files_and_counts_right(broker, tmp_path):
    """A is split over two topics (trades and reviews), as the worker writes it; B is one topic plus a file."""
    import uuid

    from click.testing import CliRunner
    from confluent_kafka import Producer

    from streamer.cli import main
    from streamer.settings import Settings
    from streamer.streaming.kafka import ensure_topics, producer_config

    run = uuid.uuid4().hex[:8]
    settings = Settings(broker_url=broker.url, topic_partitions=2)
    topics = {"a.parsed": f"trades.parsed.{run}", "a.review": f"trades.review.{run}", "b": f"trades.parsed.{run}-b"}
    ensure_topics(settings, topics.values())
    producer = Producer(producer_config(settings))
    side_a = {"a.parsed": [r for r in A.results.values() if r.kind == "trade"],
              "a.review": [r for r in A.results.values() if r.kind == "low_confidence"]}
    b_records = list(B.results.values())
    side_b = {"b": b_records[:3]}
    for name, records in [*side_a.items(), *side_b.items()]:
        for record in records:
            producer.produce(topics[name], key=record.message_id, value=record.to_json())
    producer.produce(topics["b"], value=DeadLetter.from_bytes(b"\xff", "not_utf8", "bad").to_json())
    assert producer.flush(10) == 0
    b_file = tmp_path / "b.jsonl"
    b_file.write_bytes(b"".join(r.to_json() + b"\n" for r in b_records[3:]))

    result = CliRunner().invoke(main, ["diff", "--broker", broker.url, "--json",
                                       f"{topics['a.parsed']},{topics['a.review']}", f"{topics['b']},{b_file}"])
    assert result.exit_code == 0, result.output
    report = orjson.loads(result.stdout)
    assert (report["total_a"], report["total_b"], report["both"], report["only_a"], report["only_b"]) == (6, 6, 5, 1, 1)
    assert report["kind_changes"] == 3
    assert sorted(c["message_id"] for c in report["changed"]) == ["m2", "m3", "m4", "m5"]
    assert report["fields"]["symbol"] == {"agree": 3, "compared": 4, "rate": 0.75}
    m3 = next(c for c in report["changed"] if c["message_id"] == "m3")
    assert (m3["kind_a"], m3["kind_b"], m3["changes"], m3["confidence"]) == ("trade", "low_confidence", {},
                                                                            {"a": 0.9, "b": 0.2})
    assert m3["reasons"]["b"] == [{"code": "low_confidence", "field": "side", "detail": None}]
    assert report["b_notes"]["ignored"] == {"dead_letter": 1}
