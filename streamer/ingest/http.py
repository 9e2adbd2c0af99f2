"""POST /ingest on the worker's web server, so chat platforms can push messages by webhook.

The body is one `ChatMessage` as JSON, checked by the same decoder as the
stream (size, UTF-8, JSON, schema). Each request passes, in order: the
declared size (413 before anything is read); a bearer token and the client's
rate (401, 429 with Retry-After), both from the headers alone; the body, read
with a cap so a chunked or lying sender cannot pass it (413); a signature and
its client's rate, which need the body (401, 429); the decoder (400 with a
one-line reason, 413 for a message over max_message_bytes). Then the record is produced with acks=all: 202 with its
`message_id` once the input topic has it, 503 when the broker did not take
it. Nothing is produced on any answer but 202.

`IngestHandler` holds these rules apart from Faust, so they are tested and
fuzzed through a plain aiohttp server; `register_ingest` mounts it as a Faust
view on the worker.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Awaitable, Callable

from streamer.ingest.auth import (
    IngestCredentials, RateLimiter, Unauthorized, body_limit, declared_length, load_credentials, verify_bearer,
    verify_hmac,
)
from streamer.settings import Settings
from streamer.streaming.pipeline import Undecodable, decode, message_key

INGEST_PATH = "/ingest"

log = logging.getLogger(__name__)

Send = Callable[[str, bytes], Awaitable[None]]


class NotProduced(RuntimeError):
    """The broker did not acknowledge the record; the message says why (becomes the 503's reason)."""


@dataclass(frozen=True)
class IngestAnswer:
    status: int
    body: dict
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def error(cls, status: int, reason: str, headers: dict[str, str] | None = None) -> IngestAnswer:
        return cls(status, {"error": reason}, headers or {})


class IngestHandler:
    """The checks of one POST /ingest and the produce call; `send(key, value)` raises `NotProduced` on failure."""

    def __init__(self, settings: Settings, credentials: IngestCredentials, send: Send,
                 wall_clock: Callable[[], float] = time.time, rate_clock: Callable[[], float] = time.monotonic):
        self.settings = settings
        self.credentials = credentials
        self.send = send
        self.wall_clock = wall_clock
        self.max_body_bytes = body_limit(settings)
        self.limiter = RateLimiter.from_settings(settings, rate_clock)

    async def __call__(self, request) -> IngestAnswer:
        """Answer an aiohttp request: exactly one status of 202/400/401/413/429/503."""
        from aiohttp.http_exceptions import HttpProcessingError

        declared = declared_length(request.headers.get("Content-Length"))
        if declared is not None and declared > self.max_body_bytes:
            return self._too_large(f"Content-Length {declared}")
        now = datetime.fromtimestamp(self.wall_clock(), timezone.utc)
        try:
            client = self._client_from_headers(request, now)
        except Unauthorized as refused:
            return self._unauthorized(request, refused)
        if client is not None and (limited := self._rate_limited(client)):
            return limited
        try:
            body = await read_capped(request.content, self.max_body_bytes)
        except HttpProcessingError as err:
            return IngestAnswer.error(400, f"the body could not be read ({err.message})")
        if body is None:
            return self._too_large("the body")
        if client is None:
            try:
                client = verify_hmac(body, request.headers.get("X-Timestamp"), request.headers.get("X-Signature"),
                                     self.credentials.hmac_key, now, self.settings.ingest_max_skew_s)
            except Unauthorized as refused:
                return self._unauthorized(request, refused)
            if limited := self._rate_limited(client):
                return limited
        try:
            message = decode(body, self.settings.max_message_bytes, now)
        except Undecodable as bad:  # too large for the stream is 413 too, like a body over the cap
            return IngestAnswer.error(413 if bad.reason == "oversize" else 400, str(bad))
        if message.source is None:
            message.source = "http"
        try:
            await self.send(message_key(message), message.to_json())
        except NotProduced as err:
            return IngestAnswer.error(503, f"the broker did not take the message: {err}")
        log.debug("ingested %s from %s", message.message_id, client)
        return IngestAnswer(202, {"message_id": message.message_id})

    def _client_from_headers(self, request, now: datetime) -> str | None:
        """Who sent it, from the headers alone; None when only the body's signature can tell."""
        credentials = self.credentials
        if credentials.open:
            return f"peer {request.remote or 'unknown'}"
        authorization = request.headers.get("Authorization")
        if credentials.tokens and (authorization or credentials.hmac_key is None):
            return verify_bearer(authorization, credentials.tokens, now)
        if not (request.headers.get("X-Signature") and request.headers.get("X-Timestamp")):
            raise Unauthorized("no Authorization: Bearer header, nor X-Timestamp and X-Signature")
        return None

    def _rate_limited(self, client: str) -> IngestAnswer | None:
        wait = self.limiter.retry_after(client)
        if not wait:
            return None
        return IngestAnswer.error(429, f"more than ingest_rate_per_s={self.settings.ingest_rate_per_s:g} from "
                                       f"{client}; retry in {wait:.2f} s", {"Retry-After": str(math.ceil(wait))})

    def _unauthorized(self, request, refused: Unauthorized) -> IngestAnswer:
        log.warning("POST %s from %s refused: %s", INGEST_PATH, request.remote, refused)
        return IngestAnswer.error(401, f"unauthorized: {refused}", {"WWW-Authenticate": self.credentials.challenge})

    def _too_large(self, what: str) -> IngestAnswer:
        return IngestAnswer.error(413, f"{what} is over ingest_max_body_bytes={self.max_body_bytes}")


async def read_capped(content, max_bytes: int) -> bytes | None:
    """The body from an aiohttp StreamReader, or None as soon as it passes `max_bytes` (the rest is never read)."""
    chunks: list[bytes] = []
    size = 0
    while chunk := await content.read(max_bytes + 1 - size):
        chunks.append(chunk)
        size += len(chunk)
        if size > max_bytes:
            return None
    return b"".join(chunks)


def register_ingest(app, input_topic, settings: Settings, credentials: IngestCredentials | None = None) -> None:
    """Serve POST /ingest on `app`'s web server, producing to `input_topic` (nothing when ingest is off)."""
    if not settings.ingest_enabled:
        return
    import asyncio

    from aiokafka.errors import KafkaError
    from faust.web import View

    from streamer.streaming.faust_worker import publish

    async def send(key: str, value: bytes) -> None:
        try:
            await publish(input_topic, key, value)
        except (KafkaError, asyncio.TimeoutError) as err:
            raise NotProduced(str(err) or type(err).__name__) from None

    handler = IngestHandler(settings, credentials or load_credentials(settings), send)

    @app.page(INGEST_PATH)
    class Ingest(View):
        async def post(self, request):
            answer = await handler(request)
            return self.json(answer.body, status=answer.status, headers=answer.headers)
