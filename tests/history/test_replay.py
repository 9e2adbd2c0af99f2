"""Replay: file reading, time window, speed scheduling (fake clock), and the real broker."""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone

import pytest

from schemas import ChatMessage
from streamer.history.replay import (
    CsvColumns, ReplayLine, ReplayStopped, ReplaySummary, TimeWindow, delivery_rate, due_offset, nothing_to_send,
    parse_speed, parse_time, read_csv, read_jsonl, replay, scan,
)

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=timezone.utc)


def _jsonl(*lines: bytes) -> io.BytesIO:
    return io.BytesIO(b"\n".join(lines) + b"\n")


@pytest.mark.parametrize("raw, reason, where", [
    (b'{"text": "buy 10m cable", "timestamp": "2024-03-01T09:00:00Z"}', None, None),
    (b'{"text": "buy 10m cable", "timestamp": 1709283600}', None, None),
    (b'{"text": "buy 10m cable"}', "no_timestamp", "f.jsonl:2: no timestamp"),
    (b'{"text": "", "timestamp": "2024-03-01T09:00:00Z"}', "not_chat_message", "f.jsonl:2: not a ChatMessage (text:"),
    (b'{"text": "x", "timestamp": "yesterday"}', "not_chat_message", "f.jsonl:2: not a ChatMessage (timestamp:"),
    (b'["buy 10m cable"]', "not_chat_message", "f.jsonl:2: not a ChatMessage"),
    (b"buy 10m cable", "plain_text", "f.jsonl:2: plain text, not ChatMessage JSON"),
    (b"[09:00] alice: buy 10m cable", "plain_text", "f.jsonl:2: plain text, not ChatMessage JSON"),
    (b'{"text": "buy 10m cable"', "not_json", "f.jsonl:2: invalid JSON"),   # meant as JSON: starts with {
    (b'  {oops', "not_json", "f.jsonl:2: invalid JSON"),
    (b'{"text": "caf\xe9", "timestamp": 1}', "not_utf8", "f.jsonl:2: not UTF-8"),
])
def test_read_jsonl_names_the_line_and_reason(raw, reason, where):
    first = b'{"text": "hello", "timestamp": "2024-03-01T08:59:00Z"}'
    lines = list(read_jsonl(_jsonl(first, raw, b"", b"   "), "f.jsonl"))
    assert [line.line for line in lines] == [1, 2]  # blank lines are not records
    second = lines[1]
    assert second.reason == reason
    if reason is None:
        assert second.message.text == "buy 10m cable" and second.message.timestamp == T0
    else:
        assert second.message is None and second.error.startswith(where)


def test_plain_text_points_to_produce_with_the_file_name():
    [line] = list(read_jsonl(_jsonl(b"buy 10m cable"), "chat.txt"))
    assert line.error == ("chat.txt:1: plain text, not ChatMessage JSON (replay needs each message's time; "
                          "`streamer produce --file chat.txt` sends plain lines)")


def test_read_jsonl_keeps_given_ids_and_derives_stable_ones():
    lines = list(read_jsonl(_jsonl(
        b'{"message_id": "m-1", "text": "a", "timestamp": "2024-03-01T09:00:00Z"}',
        b'{"text": "b", "timestamp": "2024-03-01T09:00:00Z"}',
    ), "f"))
    again = list(read_jsonl(_jsonl(b'{"text": "b", "timestamp": "2024-03-01T09:00:00Z"}'), "f"))
    assert lines[0].message.message_id == "m-1"
    assert lines[1].message.message_id.startswith("msg-")
    assert lines[1].message.message_id == again[0].message.message_id  # a second replay is recognisable


CSV_OK = (
    "when,body,who,room\n"
    "2024-03-01T09:00:00Z,buy 10m cable,alice,fx\n"
    '2024-03-01T09:00:05Z,"sell 5m eurusd,\nlimit 1.0850",bob,fx\n'
    "2024-03-01T09:00:09Z,mine 5,,\n"
)
COLUMNS = CsvColumns(text="body", timestamp="when", sender="who", channel="room")


def test_read_csv_with_configured_columns_and_multiline_cells():
    lines = list(read_csv(io.BytesIO(CSV_OK.encode()), "c.csv", COLUMNS))
    assert [line.line for line in lines] == [2, 3, 5]
    assert [line.message.text for line in lines] == ["buy 10m cable", "sell 5m eurusd,\nlimit 1.0850", "mine 5"]
    assert lines[0].message.sender == "alice" and lines[0].message.channel == "fx"
    assert lines[2].message.sender is None  # empty cells are absent, not ""
    assert lines[1].message.timestamp == T0 + timedelta(seconds=5)


@pytest.mark.parametrize("row, reason, where", [
    (b"2024-03-01T09:00:00Z,buy 1m cable,a,fx", None, None),
    (b"not a time,buy 1m cable,a,fx", "not_chat_message", "c.csv:3: not a ChatMessage (timestamp:"),
    (b",buy 1m cable,a,fx", "no_timestamp", "c.csv:3: no timestamp"),
    (b"2024-03-01T09:00:00Z,,a,fx", "not_chat_message", "c.csv:3: not a ChatMessage (text:"),
    (b"2024-03-01T09:00:00Z,buy 1m cable,a", "bad_csv_row", "c.csv:3: 3 cells where the header has 4"),
    (b"2024-03-01T09:00:00Z,caf\xe9,a,fx", "not_utf8", "c.csv:3: not UTF-8"),
])
def test_read_csv_names_the_line_and_reason(row, reason, where):
    data = b"when,body,who,room\n2024-03-01T08:00:00Z,ok,a,fx\n" + row + b"\n"
    lines = list(read_csv(io.BytesIO(data), "c.csv", COLUMNS))
    assert lines[1].line == 3 and lines[1].reason == reason
    if where:
        assert lines[1].error.startswith(where)


def test_read_csv_refuses_a_header_without_the_text_column():
    with pytest.raises(ValueError, match="no column 'body'"):
        list(read_csv(io.BytesIO(b"when,text\n1,x\n"), "c.csv", COLUMNS))


@pytest.mark.parametrize("text, speed", [("max", None), ("MAX", None), ("60", 60.0), ("0.5", 0.5)])
def test_parse_speed(text, speed):
    assert parse_speed(text) == speed


@pytest.mark.parametrize("text", ["0", "-2", "fast", "inf", "nan"])
def test_parse_speed_rejects(text):
    with pytest.raises(ValueError, match="positive number or 'max'"):
        parse_speed(text)


@pytest.mark.parametrize("text, expected", [
    ("2024-03-01T09:00:00Z", T0),
    ("2024-03-01T09:00:00", T0),            # naive = UTC
    ("2024-03-01T10:00:00+01:00", T0),
    ("1709283600", T0),
])
def test_parse_time(text, expected):
    assert parse_time(text) == expected


@pytest.mark.parametrize("start, end, ts, inside", [
    (None, None, T0, True),
    (T0, None, T0, True),                                   # start is inclusive
    (T0, None, T0 - timedelta(seconds=1), False),
    (None, T0, T0, False),                                  # end is exclusive
    (None, T0, T0 - timedelta(microseconds=1), True),
])
def test_time_window(start, end, ts, inside):
    assert TimeWindow(start, end).contains(ts) is inside


def test_time_window_rejects_end_before_start():
    with pytest.raises(ValueError, match="must be after"):
        TimeWindow(T0, T0)


@pytest.mark.parametrize("gap_s, speed, due", [
    (3600, 60.0, 60.0),      # an hour per minute
    (10, 1.0, 10.0),
    (10, None, 0.0),         # max: no waiting
    (-5, 1.0, 0.0),          # earlier than the first: at once
])
def test_due_offset(gap_s, speed, due):
    assert due_offset(T0 + timedelta(seconds=gap_s), T0, speed) == due


def _line(n, seconds=None, reason=None):
    if reason:
        return ReplayLine(n, reason=reason, error=f"f:{n}: {reason}")
    return ReplayLine(n, message=ChatMessage(text=f"m{n}", timestamp=T0 + timedelta(seconds=seconds)))


def test_scan_skip_counts_every_line_by_reason_and_window():
    lines = [_line(1, 0), _line(2, reason="not_json"), _line(3, 30), _line(4, reason="not_json"),
             _line(5, reason="no_timestamp"), _line(6, 90)]
    window = TimeWindow(None, T0 + timedelta(seconds=60))
    messages, summary = scan(lines, window, "skip")
    assert [m.text for m in messages] == ["m1", "m3"]
    assert summary.skipped == {"not_json": 2, "no_timestamp": 1}
    assert summary.outside_window == 1


T1 = T0 + timedelta(seconds=90)


@pytest.mark.parametrize("lines, window, message", [
    ([], TimeWindow(), "f.jsonl has no messages"),
    ([_line(1, reason="plain_text"), _line(2, reason="plain_text")], TimeWindow(),
     "nothing to send from f.jsonl: 2 lines skipped (2 plain_text)"),
    ([_line(1, 0), _line(2, 90)], TimeWindow(start=T0 + timedelta(hours=1)),
     "nothing to send from f.jsonl: 2 messages outside --start 2024-03-01T10:00:00+00:00 "
     f"(the file's messages span {T0.isoformat()} .. {T1.isoformat()})"),
    ([_line(1, reason="not_json"), _line(2, 90), _line(3, reason="no_timestamp"), _line(4, reason="not_json")],
     TimeWindow(end=T0), "nothing to send from f.jsonl: 3 lines skipped (1 no_timestamp, 2 not_json); "
     f"1 messages outside --end {T0.isoformat()} (the file's messages span {T1.isoformat()} .. {T1.isoformat()})"),
])
def test_nothing_to_send_says_why(lines, window, message):
    messages, summary = scan(lines, window, "skip")
    assert messages == [] and nothing_to_send(summary, window, "f.jsonl") == message


@pytest.mark.parametrize("acknowledged, seconds, rate", [
    (1000, 1.02, "980 msg/s"),
    (1, 0.0, ""),          # no time yet: no rate, not a division by zero
    (0, 2.0, ""),
])
def test_delivery_rate(acknowledged, seconds, rate):
    assert delivery_rate(acknowledged, seconds) == rate


@pytest.mark.parametrize("sent, undelivered, seconds, first_line", [
    (1000, 0, 1.02, "sent 1000 messages in 1.0 s (980 msg/s acknowledged)"),
    (998, 2, 1.02, "sent 998 messages in 1.0 s (978 msg/s acknowledged); 2 NOT delivered"),
    (0, 3, 30.0, "sent 0 messages in 30.0 s; 3 NOT delivered"),
])
def test_summary_rate_counts_acknowledged_messages(sent, undelivered, seconds, first_line):
    summary = ReplaySummary(sent=sent, undelivered=undelivered, wall_seconds=seconds)
    assert summary.lines()[0] == first_line


def test_scan_refuses_oversize_messages_like_produce():
    big = ReplayLine(7, message=ChatMessage(text="x" * 300, timestamp=T0))
    messages, summary = scan([_line(1, 0), big], TimeWindow(), "skip", max_bytes=200, name="f")
    assert [m.text for m in messages] == ["m1"] and summary.skipped == {"oversize": 1}
    with pytest.raises(ReplayStopped, match=r"^f:7: \d+ bytes, more than max_message_bytes=200$"):
        scan([big], TimeWindow(), "stop", max_bytes=200, name="f")


def test_scan_stop_refuses_the_file_at_the_first_bad_line():
    with pytest.raises(ReplayStopped) as stopped:
        scan([_line(1, 0), _line(2, reason="not_json"), _line(3, reason="not_utf8")], TimeWindow(), "stop")
    assert stopped.value.line.line == 2 and str(stopped.value) == "f:2: not_json"


class FakeClock:
    """Time that moves only when the replayer waits: scheduling is checked exactly, without timing."""

    def __init__(self):
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0
        self.now += seconds


@pytest.mark.parametrize("offsets, speed, sent_at", [
    ([0, 60, 60, 180], 60.0, [0, 1, 1, 3]),
    ([0, 10, 5, 20], 10.0, [0, 1, 1, 2]),       # out of order: sent at once, order kept
    ([0, 3600, 7200], None, [0, 0, 0]),         # max
])
def test_replay_sends_in_order_at_scaled_gaps(offsets, speed, sent_at):
    clock = FakeClock()
    messages = [ChatMessage(text=f"m{i}", timestamp=T0 + timedelta(seconds=s)) for i, s in enumerate(offsets)]
    sent: list[tuple[str, float]] = []
    summary = replay(messages, lambda m: sent.append((m.text, clock.now - 100.0)), speed,
                     clock=clock, sleep=clock.sleep)
    assert [t for t, _ in sent] == [m.text for m in messages]
    assert [round(at, 9) for _, at in sent] == sent_at
    assert summary.sent == len(messages)
    assert summary.out_of_order == sum(1 for a, b in zip(offsets, offsets[1:]) if b < a)
    assert summary.first_time == T0 and summary.last_time == T0 + timedelta(seconds=max(offsets))


# -- the command -------------------------------------------------------------------------

CLOSED_PORT = "kafka://127.0.0.1:1"


def _replay_cli(*args: str):
    from click.testing import CliRunner

    from streamer.cli import main

    return CliRunner().invoke(main, ["replay", *args])


def _write(tmp_path, name: str, lines: list[bytes]):
    path = tmp_path / name
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.mark.parametrize("args, exit_code, message", [
    (["--speed", "fast"], 2, "positive number or 'max'"),
    (["--start", "monday"], 2, "not a time"),
    (["--start", "2024-03-02", "--end", "2024-03-01"], 2, "must be after"),
    (["--format", "csv"], 1, "CSV header has no column 'text'"),
])
def test_replay_rejects_bad_options_in_one_line(tmp_path, args, exit_code, message):
    path = _write(tmp_path, "h.jsonl", [b'{"text": "a", "timestamp": "2024-03-01T09:00:00Z"}'])
    result = _replay_cli(str(path), "--broker", CLOSED_PORT, *args)
    assert result.exit_code == exit_code and message in result.output and "Traceback" not in result.output


@pytest.mark.parametrize("lines, args, message", [
    ([], [], "Error: {path} has no messages"),
    ([b"", b"   "], [], "Error: {path} has no messages"),                             # blank lines are no records
    ([b"buy 10m cable", b"sell 5m eurusd"], [],
     "Error: {path}:1: plain text, not ChatMessage JSON (replay needs each message's time; "
     "`streamer produce --file {path}` sends plain lines); nothing was sent"),
    ([b"buy 10m cable", b"sell 5m eurusd"], ["--on-error", "skip"],
     "Error: nothing to send from {path}: 2 lines skipped (2 plain_text)"),
    ([b'{"text": "a", "timestamp": "2024-03-01T09:00:00Z"}'], ["--start", "2025-01-01"],
     "Error: nothing to send from {path}: 1 messages outside --start 2025-01-01T00:00:00+00:00 "
     "(the file's messages span 2024-03-01T09:00:00+00:00 .. 2024-03-01T09:00:00+00:00)"),
])
def test_replay_that_would_send_nothing_exits_1_with_the_reason(tmp_path, lines, args, message):
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"".join(line + b"\n" for line in lines))
    result = _replay_cli(str(path), "--broker", CLOSED_PORT, *args)  # refused before any broker is needed
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert message.format(path=path) in result.output


def test_replay_on_error_stop_refuses_the_file_before_sending(tmp_path):
    path = _write(tmp_path, "h.jsonl", [b'{"text": "a", "timestamp": "2024-03-01T09:00:00Z"}', b"{oops"])
    result = _replay_cli(str(path), "--broker", CLOSED_PORT)  # nothing is sent, so no broker is needed
    assert result.exit_code == 1
    assert f"{path}:2: invalid JSON" in result.output and "nothing was sent" in result.output


def _records(settings, topic: str) -> list:
    from streamer.history.reprocess import RangeSpec, plan_ranges, range_consumer, read_range

    consumer = range_consumer(settings, "test")
    try:
        return [(r.partition(), r.timestamp()[1], ChatMessage.model_validate_json(r.value()))
                for r in read_range(consumer, topic, plan_ranges(consumer, topic, RangeSpec()))]
    finally:
        consumer.close()


@pytest.mark.integration
def test_replay_at_high_speed_keeps_order_ids_and_original_times(broker, tmp_path):
    """Tolerance: Kafka record times equal the original times to the millisecond (the record's resolution),
    so every gap between records is the original gap; wall-clock pacing is checked with a fake clock above."""
    import uuid

    from streamer.settings import Settings

    offsets = [0, 2, 3, 7.5, 10, 15, 15, 21.25]
    history = [ChatMessage(text=f"msg {i}", channel=("fx", "eq")[i % 2], sender="t1",
                           timestamp=T0 + timedelta(seconds=s), message_id=f"hist-{i}" if i == 3 else "")
               for i, s in enumerate(offsets)]
    lines = [m.to_json() for m in history]
    lines.insert(4, b'{"text": "broken"')
    lines.append(b'{"text": "late", "timestamp": "2024-03-01T10:00:00Z"}')  # outside --end
    path = _write(tmp_path, "history.jsonl", lines)
    topic = f"chat.raw.replay-{uuid.uuid4().hex[:8]}"

    result = _replay_cli(str(path), "--broker", broker.url, "--topic", topic, "--speed", "100",
                         "--on-error", "skip", "--end", "2024-03-01T09:30:00Z")
    assert result.exit_code == 0, result.output
    assert f"sent {len(history)} messages" in result.output
    # The bar and the summary show one rate: acknowledged messages per second over the same clock.
    bar_rate = re.search(rf"{len(history)}/{len(history)} acknowledged (\d+ msg/s)", result.output)
    summary_rate = re.search(r"\((\d+ msg/s) acknowledged\)", result.output)
    assert bar_rate and summary_rate and bar_rate.group(1) == summary_rate.group(1), result.output
    assert "skipped 1 lines: 1 not_json" in result.output and f"{path}:5: invalid JSON" in result.output
    assert "1 messages outside --start/--end" in result.output

    records = _records(Settings(broker_url=broker.url), topic)
    assert sorted(m.message_id for _, _, m in records) == sorted(m.message_id for m in history)
    for channel in ("fx", "eq"):  # keyed by channel: one partition each, file order kept
        got = [(p, ts, m) for p, ts, m in records if m.channel == channel]
        assert len({p for p, _, _ in got}) == 1
        assert [m for _, _, m in got] == [m for m in history if m.channel == channel]
        original_ms = [int(m.timestamp.timestamp() * 1000) for m in history if m.channel == channel]
        assert [ts for _, ts, _ in got] == original_ms
