"""POST /ingest on a real worker and broker: credentials, size, rate; only what got 202 reaches the input topic.

The worker runs the stand-in parser (`tests/standin_parser.py`): this is
about who may put chat on the stream, not about parsing it.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson
import pytest
from standin_parser import FACTORY

from streamer.ingest.auth import signature
from streamer.settings import Settings
from streamer.streaming.broker import is_listening

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "streaming"))
from streaming_helpers import WorkerProcess, fresh_stream_settings, read_all, settings_env, wait_until  # noqa: E402

pytestmark = pytest.mark.integration

SLACK = "slack-token-0123456789abcdef"
EXPIRED = "teams-token-0123456789abcdef"
KEY = "signing-key-0123456789abcdef"


def chat(text: str, channel: str = "webhook") -> bytes:
    return orjson.dumps({"text": text, "channel": channel, "timestamp": "2026-06-01T12:00:00Z"})


def signed(body: bytes, age_s: float = 0.0) -> dict[str, str]:
    timestamp = str(int(time.time() - age_s))
    return {"X-Timestamp": timestamp, "X-Signature": signature(KEY.encode(), timestamp, body)}


def post(settings: Settings, body, headers: dict[str, str]) -> tuple[int, dict, dict]:
    """(status, answer, headers); an iterable body goes chunked, with no Content-Length."""
    request = urllib.request.Request(f"http://{settings.web_host}:{settings.web_port}/ingest", data=body,
                                     method="POST", headers={"Content-Type": "application/json", **headers})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, orjson.loads(response.read()), dict(response.headers)
    except urllib.error.HTTPError as err:
        return err.code, orjson.loads(err.read()), dict(err.headers)


@pytest.fixture(scope="module")
def ingest_worker(broker, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ingest")
    expired_at = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    tokens = tmp / "ingest-tokens.toml"
    tokens.write_text(f'[tokens]\nslack = "{SLACK}"\nteams = {{token = "{EXPIRED}", expires = {expired_at}}}\n')
    settings = fresh_stream_settings(
        Settings(parser_factory=FACTORY, ingest_tokens_file=tokens, ingest_hmac_secret=KEY,
                 ingest_rate_per_s=0.001, ingest_burst=4),  # four requests per client, then 429 for this test's life
        broker, tmp)
    worker = WorkerProcess(settings, tmp / "worker.log").start()
    wait_until(lambda: is_listening(settings.web_host, settings.web_port), worker, "the web server")
    yield worker
    worker.stop()


def test_only_authenticated_requests_within_size_and_rate_are_produced(ingest_worker):
    settings = ingest_worker.settings
    bearer = {"Authorization": f"Bearer {SLACK}"}
    oversize = chat("x" * (settings.max_message_bytes + 4096))
    requests = [  # (what, body, headers, expected status); in order, since the rate counts per client
        ("no credentials", chat("buy 1m fiber"), {}, 401),
        ("wrong token", chat("buy 2m fiber"), {"Authorization": "Bearer not-the-token-0123456789"}, 401),
        ("expired token", chat("buy 3m fiber"), {"Authorization": f"Bearer {EXPIRED}"}, 401),
        ("expired signature", chat("buy 4m fiber"), signed(chat("buy 4m fiber"), age_s=600), 401),
        ("wrong signature", chat("buy 5m fiber"), {**signed(chat("buy 5m fiber")), "X-Timestamp": "1"}, 401),
        ("declared oversize", oversize, bearer, 413),
        ("chunked oversize", iter([oversize[i:i + 1000] for i in range(0, len(oversize), 1000)]), bearer, 413),
        ("bearer", chat("buy 6m fiber"), bearer, 202),
        ("signed", chat("buy 7m fiber"), signed(chat("buy 7m fiber")), 202),
        ("bearer, chunked", iter([chat("buy 8m fiber")]), bearer, 202),
        ("bearer, undecodable", b"buy 9m fiber", bearer, 400),  # the fourth of slack's burst (chunked 413 was one)
        ("bearer over the rate", chat("buy 10m fiber"), bearer, 429),
        ("signed, another client", chat("buy 11m fiber"), signed(chat("buy 11m fiber")), 202),
    ]
    answers = [(what, *post(settings, body, headers)) for what, body, headers, _ in requests]

    assert [(what, status) for what, status, _, _ in answers] == [(what, status) for what, _, _, status in requests]
    for what, status, answer, headers in answers:
        if status == 401:
            assert headers["WWW-Authenticate"] == 'Bearer realm="ingest"' and "\n" not in answer["error"], what
        if status == 429:
            assert int(headers["Retry-After"]) >= 1 and "from slack" in answer["error"]
    accepted = [answer["message_id"] for _, status, answer, _ in answers if status == 202]
    produced = [record.json() for record in read_all(settings, [settings.input_topic])]
    assert sorted(message["message_id"] for message in produced) == sorted(accepted) and len(accepted) == 4
    assert {message["text"] for message in produced} == {"buy 6m fiber", "buy 7m fiber", "buy 8m fiber",
                                                         "buy 11m fiber"}


@pytest.mark.parametrize("host, overrides, refused", [
    ("0.0.0.0", {}, "POST /ingest on 0.0.0.0:"),
    ("0.0.0.0", {"ingest_tokens_file": "missing.toml"}, "missing.toml: no such ingest tokens file"),
    ("0.0.0.0", {"ingest_token": "short"}, "ingest_token: a secret of 5 characters"),
])
def test_the_worker_refuses_to_start_with_ingest_open_beyond_loopback(tmp_path, host, overrides, refused):
    settings = Settings(web_host=host, broker_url="kafka://127.0.0.1:9", data_dir=tmp_path, **overrides)
    done = subprocess.run([sys.executable, "-m", "streamer", "worker"], env=settings_env(settings),
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and refused in lines[0], done.stderr
