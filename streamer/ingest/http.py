"""POST /ingest on the worker's web server, so chat platforms can push messages by webhook.

The body is one `ChatMessage` as JSON, checked by the same decoder as the
stream (size, UTF-8, JSON, schema). Valid: 202 with its `message_id`, once the
input topic has the record (acks=all). Invalid: 400 with a one-line reason and
nothing produced, since the sender is there to be told.
"""

from __future__ import annotations

from datetime import datetime, timezone

from streamer.settings import Settings
from streamer.streaming.faust_worker import publish
from streamer.streaming.pipeline import Undecodable, decode, message_key

INGEST_PATH = "/ingest"


def register_ingest(app, input_topic, settings: Settings) -> None:
    """Serve POST /ingest on `app`'s web server, producing to `input_topic`."""
    from aiokafka.errors import KafkaError
    from faust.web import View

    @app.page(INGEST_PATH)
    class Ingest(View):
        async def post(self, request):
            body = await request.read()
            try:
                message = decode(body, settings.max_message_bytes, datetime.now(timezone.utc))
            except Undecodable as bad:
                return self.error(400, str(bad))
            if message.source is None:
                message.source = "http"
            try:
                await publish(input_topic, message_key(message), message.to_json())
            except KafkaError as err:
                return self.error(503, f"the broker did not take the message: {err}")
            return self.json({"message_id": message.message_id}, status=202)
