"""Who may POST /ingest: bearer tokens, signed webhooks, token files, the loopback rule, the per-client rate."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from streamer.ingest.auth import (
    ENVELOPE_BYTES, IngestConfigError, IngestCredentials, RateLimiter, Token, Unauthorized, body_limit, declared_length,
    ingest_refusal, load_credentials, load_tokens_file, signature, verify_bearer, verify_hmac,
)
from streamer.settings import Settings

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
SLACK = "slack-token-0123456789abcdef"
TEAMS = "teams-token-0123456789abcdef"
TOKENS = (Token("slack", SLACK.encode()), Token("teams", TEAMS.encode(), expires=NOW))
KEY = b"signing-key-0123456789abcdef"
BODY = b'{"text": "buy 5m fiber", "channel": "fx"}'
TS = str(int(NOW.timestamp()))


@pytest.mark.parametrize("header, expected", [
    (f"Bearer {SLACK}", "slack"),
    (f"bearer   {SLACK}  ", "slack"),
    (None, "no Authorization header"),
    ("", "no Authorization header"),
    (f"Basic {SLACK}", "not 'Bearer <token>'"),
    ("Bearer", "not 'Bearer <token>'"),
    ("Bearer ", "not 'Bearer <token>'"),
    (f"Bearer {SLACK}x", "unknown bearer token"),
    (f"Bearer {SLACK[:-1]}", "unknown bearer token"),
    ("Bearer \udcff\ud800", "unknown bearer token"),  # any characters a header can carry
    (f"Bearer {TEAMS}", "the token of teams expired at 2026-06-01T12:00:00+00:00"),
])
def test_verify_bearer(header, expected):
    if expected in ("slack", "teams"):
        assert verify_bearer(header, TOKENS, NOW) == expected
    else:
        with pytest.raises(Unauthorized, match=expected.replace("(", r"\(").replace("+", r"\+")):
            verify_bearer(header, TOKENS, NOW)


def test_a_token_is_good_until_its_expiry():
    assert verify_bearer(f"Bearer {TEAMS}", TOKENS, NOW - timedelta(seconds=1)) == "teams"


@pytest.mark.parametrize("body, timestamp, presented, expected", [
    (BODY, TS, signature(KEY, TS, BODY), "hmac"),
    (BODY, str(int(NOW.timestamp()) - 299), signature(KEY, str(int(NOW.timestamp()) - 299), BODY), "hmac"),
    (BODY, None, signature(KEY, TS, BODY), "no X-Timestamp and X-Signature"),
    (BODY, TS, None, "no X-Timestamp and X-Signature"),
    (BODY, "yesterday", signature(KEY, "yesterday", BODY), "not unix seconds"),
    (BODY, "nan", signature(KEY, "nan", BODY), "not unix seconds"),
    (BODY, "inf", signature(KEY, "inf", BODY), "not unix seconds"),
    (BODY + b" ", TS, signature(KEY, TS, BODY), "does not match the body"),
    (BODY, TS, signature(b"another-key-0123456789", TS, BODY), "does not match the body"),
    (BODY, TS, signature(KEY, TS, BODY).removeprefix("sha256="), "does not match the body"),
    (BODY, str(int(NOW.timestamp()) + 1), signature(KEY, TS, BODY), "does not match the body"),  # ts is signed
    (BODY, str(int(NOW.timestamp()) - 301), signature(KEY, str(int(NOW.timestamp()) - 301), BODY),
     "301 s old, more than ingest_max_skew_s=300"),
    (BODY, str(int(NOW.timestamp()) + 600), signature(KEY, str(int(NOW.timestamp()) + 600), BODY),
     "600 s ahead"),
])
def test_verify_hmac(body, timestamp, presented, expected):
    if expected == "hmac":
        assert verify_hmac(body, timestamp, presented, KEY, NOW, 300) == "hmac"
    else:
        with pytest.raises(Unauthorized, match=expected):
            verify_hmac(body, timestamp, presented, KEY, NOW, 300)


@pytest.mark.parametrize("name, text, expected", [
    ("tokens.txt", f"# the desk's webhooks\n{SLACK}\n\n{TEAMS}\n", [("tokens.txt:2", SLACK, None),
                                                                      ("tokens.txt:4", TEAMS, None)]),
    ("tokens.toml", f'[tokens]\nslack = "{SLACK}"\nteams = {{token = "{TEAMS}", expires = 2027-01-01T00:00:00Z}}\n',
     [("slack", SLACK, None), ("teams", TEAMS, datetime(2027, 1, 1, tzinfo=timezone.utc))]),
    ("tokens.toml", f'[tokens]\nteams = {{token = "{TEAMS}", expires = 2027-01-01T00:00:00}}\n',
     [("teams", TEAMS, datetime(2027, 1, 1, tzinfo=timezone.utc))]),  # a local time is read as UTC
    ("tokens.txt", "# nothing yet\n", "tokens.txt: no token in the file"),
    ("tokens.txt", f"{SLACK}\nshort\n", "tokens.txt:2: a secret of 5 characters; use at least 16"),
    ("tokens.toml", f'slack = "{SLACK}"\n', "tokens.toml: no [tokens] table"),
    ("tokens.toml", "[tokens\n", "tokens.toml: "),
    ("tokens.toml", '[tokens]\nslack = 42\n', "tokens.toml: tokens.slack: want name = \"token\""),
    ("tokens.toml", f'[tokens]\nslack = {{token = "{SLACK}", expires = "soon"}}\n',
     "tokens.toml: tokens.slack: expires must be a TOML date-time"),
])
def test_load_tokens_file(tmp_path, name, text, expected):
    path = tmp_path / name
    path.write_text(text)
    if isinstance(expected, str):
        with pytest.raises(IngestConfigError) as err:
            load_tokens_file(path)
        message = str(err.value)
        assert message.startswith(str(tmp_path)) and expected in message and "\n" not in message
        assert SLACK not in message
    else:
        assert [(t.client.removeprefix(f"{tmp_path}/"), t.secret.decode(), t.expires) for t in load_tokens_file(path)] \
            == expected


@pytest.mark.parametrize("overrides, expected", [
    ({}, ((), None)),
    ({"ingest_token": SLACK}, ((("token", SLACK),), None)),
    ({"ingest_hmac_secret": KEY.decode()}, ((), KEY)),
    ({"ingest_hmac_secret_file": "KEYFILE"}, ((), KEY)),
    ({"ingest_hmac_secret": KEY.decode(), "ingest_hmac_secret_file": "KEYFILE"}, "not both"),
    ({"ingest_token": "short"}, "ingest_token: a secret of 5 characters"),
    ({"ingest_hmac_secret_file": "MISSING"}, "no such ingest signing key file"),
    ({"ingest_tokens_file": "MISSING"}, "no such ingest tokens file"),
])
def test_load_credentials(tmp_path, overrides, expected):
    (tmp_path / "key").write_text(KEY.decode() + "\n")
    paths = {"KEYFILE": tmp_path / "key", "MISSING": tmp_path / "missing"}
    settings = Settings(**{name: paths.get(value, value) for name, value in overrides.items()})
    if isinstance(expected, str):
        with pytest.raises(IngestConfigError, match=expected):
            load_credentials(settings)
    else:
        credentials = load_credentials(settings)
        assert ([(t.client, t.secret.decode()) for t in credentials.tokens], credentials.hmac_key) \
            == ([tuple(t) for t in expected[0]], expected[1])


@pytest.mark.parametrize("host, enabled, credentials, refused", [
    ("127.0.0.1", True, IngestCredentials(), False),
    ("localhost", True, IngestCredentials(), False),
    ("::1", True, IngestCredentials(), False),
    ("0.0.0.0", True, IngestCredentials(), True),
    ("10.1.2.3", True, IngestCredentials(), True),
    ("worker.internal", True, IngestCredentials(), True),
    ("0.0.0.0", False, IngestCredentials(), False),  # no /ingest at all: bind anywhere for the other pages
    ("0.0.0.0", True, IngestCredentials(tokens=TOKENS), False),
    ("0.0.0.0", True, IngestCredentials(hmac_key=KEY), False),
])
def test_ingest_refusal(host, enabled, credentials, refused):
    refusal = ingest_refusal(Settings(web_host=host, ingest_enabled=enabled), credentials)
    if refused:
        assert host in refusal and "STREAMER_INGEST_TOKENS_FILE" in refusal and "\n" not in refusal
    else:
        assert refusal is None


@pytest.mark.parametrize("rate, burst, requests, expected_waits", [
    # (time, client) in order -> the seconds each one is told to wait (0 = let through)
    (1.0, 2, [(0, "a"), (0, "a"), (0, "a")], [0, 0, 1.0]),
    (1.0, 2, [(0, "a"), (0, "a"), (0, "b"), (0, "b"), (0, "a")], [0, 0, 0, 0, 1.0]),  # per client
    (2.0, 1, [(0, "a"), (0.25, "a"), (0.5, "a"), (0.5, "a")], [0, 0.25, 0, 0.5]),
    (1.0, 3, [(0, "a")] * 3 + [(100, "a")] * 4, [0, 0, 0, 0, 0, 0, 1.0]),  # refills up to burst only
    (0.0, 1, [(0, "a")] * 5, [0] * 5),  # 0 = no limit
])
def test_rate_limiter(rate, burst, requests, expected_waits):
    clock = iter(t for t, _ in requests)
    limiter = RateLimiter(rate, burst, lambda: next(clock))
    assert [pytest.approx(limiter.retry_after(client)) for _, client in requests] == expected_waits


@pytest.mark.parametrize("overrides, expected", [
    ({}, 16384 + ENVELOPE_BYTES),
    ({"max_message_bytes": 1000}, 1000 + ENVELOPE_BYTES),
    ({"ingest_max_body_bytes": 2048}, 2048),
])
def test_body_limit(overrides, expected):
    assert body_limit(Settings(**overrides)) == expected


@pytest.mark.parametrize("header, expected", [
    ("12", 12), (" 7 ", 7), (None, None), ("", None), ("-1", None), ("1e3", None), ("½", None), ("²", None),
])
def test_declared_length(header, expected):
    assert declared_length(header) == expected


def test_secrets_reach_a_child_worker_and_stay_out_of_reprs(monkeypatch):
    """`streamer dev` hands its settings to the worker through STREAMER_* variables: secrets must survive that."""
    settings = Settings(ingest_token=SLACK, ingest_hmac_secret=KEY.decode())
    for name in Settings.model_fields:
        monkeypatch.delenv(f"STREAMER_{name.upper()}", raising=False)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings and Settings().ingest_token.get_secret_value() == SLACK
    assert SLACK not in repr(settings) and KEY.decode() not in repr(settings)
