"""POST /ingest's request handling fuzzed through a real aiohttp server and client: bodies, credentials, sizes, rates.

`IngestHandler` is served by a plain aiohttp app here (the worker mounts the
same object as a Faust view; `test_http.py` runs that end to end on a real
broker). Its `send` appends to a list, the sink twin of the input topic, so
that 4,000 generated requests take seconds: what is checked is which answer
each request gets and that exactly the 202s were handed on, not Kafka.
Every request gets an answer (no 500, no dropped connection), the one the
rules call for: 413 over the size, 401 without valid credentials, 429 over
the rate, 400 undecodable (413 over max_message_bytes), else 202 and one record.
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.configuration import set_hypothesis_home_dir

from schemas import ChatMessage
from streamer.ingest.auth import IngestCredentials, Token, signature
from streamer.ingest.http import INGEST_PATH, IngestHandler, NotProduced
from streamer.settings import Settings
from streamer.streaming.pipeline import Undecodable, decode, message_key

set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "tradechat-streamer-hypothesis")  # not into the checkout
EXAMPLES = 4000
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SETTINGS = Settings(max_message_bytes=600, ingest_max_body_bytes=1000, ingest_rate_per_s=4.0, ingest_burst=3,
                    ingest_max_skew_s=300)
LIMIT = 1000
SLACK = "slack-token-0123456789abcdef"
EXPIRED = "teams-token-0123456789abcdef"
KEY = b"signing-key-0123456789abcdef"
CREDENTIALS = IngestCredentials(tokens=(Token("slack", SLACK.encode()), Token("teams", EXPIRED.encode(), expires=NOW)),
                                hmac_key=KEY)
BROKER_DOWN = "broker-down"  # a channel the sink refuses, as a broker that does not acknowledge


@dataclass
class Served:
    """One aiohttp server with the handler, its client, its sink and its rate clock, on one event loop."""

    loop: asyncio.AbstractEventLoop
    client: object
    sink: list[tuple[str, bytes]] = field(default_factory=list)
    rate_now: list[float] = field(default_factory=lambda: [0.0])
    statuses: dict[int, int] = field(default_factory=dict)

    def post(self, body: bytes, headers: dict[str, str], chunked: bool = False):
        async def chunks():
            for start in range(0, len(body), 97):
                yield body[start:start + 97]

        async def request():
            response = await self.client.post(INGEST_PATH, data=chunks() if chunked else body, headers=headers)
            return response.status, response.headers, await response.read()

        status, answer_headers, answer = self.loop.run_until_complete(request())
        self.statuses[status] = self.statuses.get(status, 0) + 1
        return status, answer_headers, orjson.loads(answer)


def serve(credentials: IngestCredentials, settings: Settings = SETTINGS) -> Served:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    loop = asyncio.new_event_loop()
    sink: list[tuple[str, bytes]] = []
    rate_now = [0.0]

    async def send(key: str, value: bytes) -> None:
        if orjson.loads(value).get("channel") == BROKER_DOWN:
            raise NotProduced("KafkaTimeoutError")
        sink.append((key, value))

    handler = IngestHandler(settings, credentials, send, wall_clock=NOW.timestamp, rate_clock=lambda: rate_now[0])

    async def view(request):
        answer = await handler(request)
        return web.json_response(answer.body, status=answer.status, headers=answer.headers)

    app = web.Application()
    app.router.add_post(INGEST_PATH, view)
    client = TestClient(TestServer(app), loop=loop)
    loop.run_until_complete(client.start_server())
    return Served(loop, client, sink, rate_now)


def close(served: Served) -> None:
    served.loop.run_until_complete(served.client.close())
    served.loop.close()


def signed(body: bytes, at: float = NOW.timestamp(), key: bytes = KEY) -> dict[str, str]:
    timestamp = str(int(at))
    return {"X-Timestamp": timestamp, "X-Signature": signature(key, timestamp, body)}


def chat(text: str = "buy 5m fiber", channel: str = "fx", **more) -> bytes:
    return orjson.dumps({"text": text, "channel": channel, **more})


# -- explicit cases ---------------------------------------------------------------------


@pytest.mark.parametrize("body, headers, chunked, status, error", [
    pytest.param(chat(), {"Authorization": f"Bearer {SLACK}"}, False, 202, None, id="bearer"),
    pytest.param(chat(), signed(chat()), False, 202, None, id="signed"),
    pytest.param(chat(), signed(chat()), True, 202, None, id="signed-chunked"),
    pytest.param(chat(), {}, False, 401,
                 "unauthorized: no Authorization: Bearer header, nor X-Timestamp and X-Signature", id="no-credentials"),
    pytest.param(chat(), {"Authorization": "Bearer not-a-token-at-all-really"}, False, 401,
                 "unauthorized: unknown bearer token", id="wrong-token"),
    pytest.param(chat(), {"Authorization": f"Bearer {EXPIRED}"}, False, 401,
                 "unauthorized: the token of teams expired", id="expired-token"),
    pytest.param(chat(), signed(chat(), at=NOW.timestamp() - 301), False, 401,
                 "unauthorized: X-Timestamp is 301 s old", id="expired-signature"),
    pytest.param(chat(), signed(chat(), key=b"another-key-0123456789"), False, 401,
                 "unauthorized: X-Signature does not match", id="wrong-signature"),
    pytest.param(chat("x" * LIMIT), {"Authorization": f"Bearer {SLACK}"}, False, 413, "Content-Length 1026 is over",
                 id="declared-oversize"),
    pytest.param(chat("x" * LIMIT), {"Authorization": f"Bearer {SLACK}"}, True, 413,
                 "the body is over ingest_max_body_bytes=1000", id="chunked-oversize"),
    pytest.param(chat("x" * LIMIT), {}, False, 413, "Content-Length 1026 is over",
                 id="declared-oversize-before-credentials"),
    pytest.param(chat("x" * 700), {"Authorization": f"Bearer {SLACK}"}, False, 413, "oversize: 726 bytes, more than",
                 id="over-max-message-bytes"),
    pytest.param(b"buy 5m fiber", {"Authorization": f"Bearer {SLACK}"}, False, 400, "not_json", id="not-json"),
    pytest.param(chat(channel=BROKER_DOWN), {"Authorization": f"Bearer {SLACK}"}, False, 503,
                 "the broker did not take the message: KafkaTimeoutError", id="broker-refuses"),
])
def test_each_rule_answers_with_its_status(body, headers, chunked, status, error):
    served = serve(CREDENTIALS)
    try:
        got, answer_headers, answer = served.post(body, headers, chunked)
    finally:
        close(served)
    assert got == status, answer
    if status == 202:
        assert [orjson.loads(value)["message_id"] for _, value in served.sink] == [answer["message_id"]]
    else:
        assert served.sink == [] and answer["error"].startswith(error) and "\n" not in answer["error"]
    if status == 401:
        assert answer_headers["WWW-Authenticate"] == 'Bearer realm="ingest"'


def test_over_the_rate_a_client_gets_429_with_retry_after_and_others_do_not():
    served = serve(CREDENTIALS)
    try:
        bearer = {"Authorization": f"Bearer {SLACK}"}
        burst = [served.post(chat(f"buy {n}m fiber"), bearer)[0] for n in range(1, 5)]
        limited = served.post(chat("buy 9m fiber"), bearer)
        other = served.post(chat("buy 7m fiber"), signed(chat("buy 7m fiber")))[0]
        served.rate_now[0] += 0.25  # one request's worth at 4/s
        after = served.post(chat("buy 8m fiber"), bearer)[0]
    finally:
        close(served)
    assert burst == [202, 202, 202, 429] and limited[0] == 429 and (other, after) == (202, 202)
    assert limited[1]["Retry-After"] == "1" and "ingest_rate_per_s=4 from slack" in limited[2]["error"]
    assert len(served.sink) == 5


def test_without_credentials_anyone_local_may_post_limited_by_peer_address():
    served = serve(IngestCredentials(), SETTINGS.model_copy(update={"ingest_burst": 1}))
    try:
        statuses = [served.post(chat(f"buy {n}m fiber"), {})[0] for n in (1, 2)]
        limited = served.post(chat("buy 3m fiber"), {})[2]
    finally:
        close(served)
    assert statuses == [202, 429] and "from peer 127.0.0.1" in limited["error"] and len(served.sink) == 1


# -- fuzz -------------------------------------------------------------------------------

header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=60)
json_values = st.recursive(st.none() | st.booleans() | st.integers(-2**53, 2**53) | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=4)
                           | st.dictionaries(st.text(max_size=8), children, max_size=4), max_leaves=6)
messages = st.fixed_dictionaries(
    {"text": st.text(min_size=1, max_size=80) | st.sampled_from(["buy 5m fiber", "sell 200 AAPL lmt 187.5", ""])},
    optional={"channel": st.none() | st.text(max_size=10), "sender": st.text(max_size=10),
              "timestamp": st.sampled_from(["2026-06-01T11:59:00Z", "not a time", None]),
              "message_id": st.text(max_size=12), "source": st.text(max_size=8) | st.integers(-2**63, 2**63)},
)
bodies = st.one_of(
    st.binary(max_size=1200),
    json_values.map(orjson.dumps),
    messages.map(orjson.dumps),
    messages.map(orjson.dumps),
    st.integers(LIMIT - 60, LIMIT + 200).map(lambda size: chat("y" * size)),  # around both size limits
)
AUTH_KINDS = ["bearer", "bearer", "hmac", "hmac", "none", "bearer_wrong", "bearer_expired", "hmac_old", "hmac_future",
              "hmac_wrong", "garbage"]


def credentials_for(kind: str, body: bytes, garbage: tuple[str, str, str]) -> dict[str, str]:
    return {
        "bearer": {"Authorization": f"Bearer {SLACK}"},
        "bearer_wrong": {"Authorization": f"Bearer {garbage[0]}"},
        "bearer_expired": {"Authorization": f"Bearer {EXPIRED}"},
        "hmac": signed(body),
        "hmac_old": signed(body, at=NOW.timestamp() - 301 - len(garbage[0])),
        "hmac_future": signed(body, at=NOW.timestamp() + 301 + len(garbage[1])),
        "hmac_wrong": {**signed(body), "X-Signature": f"sha256={garbage[1]}"},
        "garbage": {"Authorization": garbage[0], "X-Timestamp": garbage[1], "X-Signature": garbage[2]},
        "none": {},
    }[kind]


def expected_statuses(kind: str, body: bytes, chunked: bool, headers: dict[str, str]) -> set[int]:
    """What the rules allow for this request, in the handler's order (429 only where a client is known)."""
    if not chunked and len(body) > LIMIT:
        return {413}
    try:
        decode(body, SETTINGS.max_message_bytes, NOW)
        content = {202}
    except Undecodable as bad:
        content = {413 if bad.reason == "oversize" else 400}
    if headers.get("Authorization"):
        if kind != "bearer":
            return {401}
        return {429, 413} if len(body) > LIMIT else {429} | content
    if not (headers.get("X-Signature") and headers.get("X-Timestamp")):
        return {401}
    if len(body) > LIMIT:
        return {413}
    return {429} | content if kind == "hmac" else {401}


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies, kind=st.sampled_from(AUTH_KINDS), chunked=st.booleans(),
       garbage=st.tuples(header_text, header_text, header_text), wait_s=st.sampled_from([0.0, 0.0, 0.1, 0.5, 2.0]))
def post_generated_request(served: Served, body: bytes, kind: str, chunked: bool, garbage: tuple[str, str, str],
                           wait_s: float) -> None:
    headers = credentials_for(kind, body, garbage)
    served.rate_now[0] += wait_s
    before = len(served.sink)
    status, answer_headers, answer = served.post(body, headers, chunked)

    assert status in expected_statuses(kind, body, chunked, headers), (status, answer)
    if status == 202:
        [(key, value)] = served.sink[before:]
        message = ChatMessage.model_validate_json(value)
        assert (message.message_id, key) == (answer["message_id"], message_key(message))
    else:
        assert len(served.sink) == before and isinstance(answer["error"], str) and "\n" not in answer["error"]
    if status == 401:
        assert answer_headers["WWW-Authenticate"]
    if status == 429:
        assert int(answer_headers["Retry-After"]) >= 1


def test_every_generated_request_gets_one_answer_and_only_202s_are_produced():
    served = serve(CREDENTIALS)
    refusals = logging.getLogger("streamer.ingest.http")
    level = refusals.level
    refusals.setLevel(logging.ERROR)  # one warning per 401 is the worker's job, noise here
    try:
        post_generated_request(served)
    finally:
        refusals.setLevel(level)
        close(served)
    statuses = dict(sorted(served.statuses.items()))
    print(f"\n/ingest fuzz: {sum(statuses.values())} requests, statuses {statuses}, "
          f"{len(served.sink)} records produced")  # for the report (pytest -s)
    assert sum(served.statuses.values()) >= EXAMPLES
    assert served.statuses.get(202, 0) == len(served.sink)
    assert set(served.statuses) == {202, 400, 401, 413, 429}  # every answer reached, and no other
