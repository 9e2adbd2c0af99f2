"""Who may POST /ingest, how much, and how often: bearer tokens, signed webhooks, a body cap, a per-client rate.

Pure checks with the clock passed in, so they are table-tested without a
server; `http.py` calls them in order for each request. Two schemes, because
chat platforms differ: a bearer token (`Authorization: Bearer <token>`), or a
signature as Stripe and GitHub sign their webhooks: `X-Timestamp: <unix
seconds>` and `X-Signature: sha256=<hex HMAC-SHA256(key, "<X-Timestamp>.<body>")>`,
the timestamp inside the signature so a captured request cannot be replayed
after `ingest_max_skew_s`. Secrets are compared with `hmac.compare_digest`.
Without any credential /ingest serves loopback only (`ingest_refusal`).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from streamer.review.auth import is_loopback
from streamer.settings import Settings

HMAC_CLIENT = "hmac"
TOKEN_CLIENT = "token"
MIN_SECRET_CHARS = 16
ENVELOPE_BYTES = 4096  # room over max_message_bytes for what a sender adds around the text (ids, names, times)
MAX_TRACKED_CLIENTS = 10_000


class IngestConfigError(ValueError):
    """Ingest credentials that cannot be used; the message names the file (and line) or the setting."""


class Unauthorized(Exception):
    """A request without valid credentials; the message says which check failed (never the secret)."""


@dataclass(frozen=True)
class Token:
    client: str
    secret: bytes
    expires: datetime | None = None


@dataclass(frozen=True)
class IngestCredentials:
    """Every credential /ingest accepts; `open` when there is none (loopback-only, anyone may post)."""

    tokens: tuple[Token, ...] = ()
    hmac_key: bytes | None = None

    @property
    def open(self) -> bool:
        return not self.tokens and self.hmac_key is None

    @property
    def challenge(self) -> str:
        """The WWW-Authenticate value of a 401: what the client should send."""
        if self.tokens:
            return 'Bearer realm="ingest"'
        return 'HMAC-SHA256 realm="ingest", headers="X-Timestamp X-Signature"'


def body_limit(settings: Settings) -> int:
    """Bytes of body /ingest reads at most: the setting, else max_message_bytes plus envelope room."""
    return settings.ingest_max_body_bytes or settings.max_message_bytes + ENVELOPE_BYTES


def _secret(value: str, where: str) -> bytes:
    value = value.strip()
    if len(value) < MIN_SECRET_CHARS:
        raise IngestConfigError(f"{where}: a secret of {len(value)} characters; use at least {MIN_SECRET_CHARS} "
                                "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return value.encode()


def _read_text(path: Path, what: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IngestConfigError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise IngestConfigError(f"{path}: cannot read the {what} file ({err})") from None


def load_tokens_file(path: Path) -> tuple[Token, ...]:
    """`name = "token"` (or `{token, expires}`) under [tokens] in a .toml file, else one token per line (# comments)."""
    text = _read_text(path, "ingest tokens")
    if Path(path).suffix == ".toml":
        try:
            table = tomllib.loads(text).get("tokens")
        except tomllib.TOMLDecodeError as err:
            raise IngestConfigError(f"{path}: {err}") from None
        if not isinstance(table, dict) or not table:
            raise IngestConfigError(f"{path}: no [tokens] table with at least one `name = \"token\"`")
        tokens = []
        for name, entry in table.items():
            where = f"{path}: tokens.{name}"
            if isinstance(entry, dict):
                expires = entry.get("expires")
                if expires is not None and not isinstance(expires, datetime):
                    raise IngestConfigError(f"{where}: expires must be a TOML date-time, e.g. 2027-01-01T00:00:00Z")
                if expires is not None and expires.tzinfo is None:
                    expires = expires.replace(tzinfo=timezone.utc)
                entry = entry.get("token")
            else:
                expires = None
            if not isinstance(entry, str):
                raise IngestConfigError(f"{where}: want name = \"token\" or name = {{token = \"...\", expires = ...}}")
            tokens.append(Token(name, _secret(entry, where), expires))
    else:
        tokens = [Token(f"{Path(path).name}:{number}", _secret(line, f"{path}:{number}"))
                  for number, line in enumerate(text.splitlines(), start=1)
                  if line.strip() and not line.lstrip().startswith("#")]
        if not tokens:
            raise IngestConfigError(f"{path}: no token in the file (one per line)")
    return tuple(tokens)


def load_credentials(settings: Settings) -> IngestCredentials:
    """The credentials the settings name; `IngestConfigError` for a missing, malformed or too short one."""
    tokens: list[Token] = []
    if settings.ingest_tokens_file is not None:
        tokens.extend(load_tokens_file(settings.ingest_tokens_file))
    if settings.ingest_token is not None:
        tokens.append(Token(TOKEN_CLIENT, _secret(settings.ingest_token.get_secret_value(), "ingest_token")))
    if settings.ingest_hmac_secret is not None and settings.ingest_hmac_secret_file is not None:
        raise IngestConfigError("set ingest_hmac_secret or ingest_hmac_secret_file, not both")
    key = None
    if settings.ingest_hmac_secret is not None:
        key = _secret(settings.ingest_hmac_secret.get_secret_value(), "ingest_hmac_secret")
    elif settings.ingest_hmac_secret_file is not None:
        path = settings.ingest_hmac_secret_file
        key = _secret(_read_text(path, "ingest signing key"), str(path))
    return IngestCredentials(tuple(tokens), key)


def ingest_refusal(settings: Settings, credentials: IngestCredentials) -> str | None:
    """Why a worker must not serve /ingest as configured (one line), or None."""
    if not settings.ingest_enabled or not credentials.open or is_loopback(settings.web_host):
        return None
    return (f"POST /ingest on {settings.web_host}:{settings.web_port} would take chat from anyone who can reach it: "
            "set STREAMER_INGEST_TOKENS_FILE, STREAMER_INGEST_TOKEN or STREAMER_INGEST_HMAC_SECRET(_FILE), "
            "or STREAMER_INGEST_ENABLED=false, or bind STREAMER_WEB_HOST to 127.0.0.1")


# -- per request --------------------------------------------------------------------


def verify_bearer(authorization: str | None, tokens: tuple[Token, ...], now: datetime) -> str:
    """The client name of a valid `Authorization: Bearer <token>`; `Unauthorized` otherwise.

    Digests of equal length are compared against every configured token (no
    early exit), so the time taken tells neither a token's length nor which
    one nearly matched.
    """
    if not authorization:
        raise Unauthorized("no Authorization header")
    scheme, _, presented = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        raise Unauthorized("Authorization is not 'Bearer <token>'")
    presented_digest = _digest(presented.strip())
    matched = None
    for token in tokens:
        if hmac.compare_digest(presented_digest, hashlib.sha256(token.secret).digest()) and matched is None:
            matched = token
    if matched is None:
        raise Unauthorized("unknown bearer token")
    if matched.expires is not None and now >= matched.expires:
        raise Unauthorized(f"the token of {matched.client} expired at {matched.expires.isoformat()}")
    return matched.client


def _digest(value: str) -> bytes:
    """sha256 of a header value as sent (any characters), for comparisons of equal length."""
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()


def signature(key: bytes, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: the X-Signature value of `body` sent at `timestamp` (what a sender computes too)."""
    return "sha256=" + hmac.new(key, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


def verify_hmac(body: bytes, timestamp: str | None, presented: str | None, key: bytes, now: datetime,
                max_skew_s: float) -> str:
    """`HMAC_CLIENT` for a body signed with `key` within `max_skew_s` of `now`; `Unauthorized` otherwise."""
    if not timestamp or not presented:
        raise Unauthorized("no X-Timestamp and X-Signature headers")
    try:
        sent = float(timestamp)
    except ValueError:
        raise Unauthorized("X-Timestamp is not unix seconds") from None
    if not math.isfinite(sent):
        raise Unauthorized("X-Timestamp is not unix seconds")
    wanted = signature(key, timestamp, body)
    if not hmac.compare_digest(_digest(presented.strip()), _digest(wanted)):
        raise Unauthorized("X-Signature does not match the body")
    skew = now.timestamp() - sent
    if abs(skew) > max_skew_s:
        raise Unauthorized(f"X-Timestamp is {abs(skew):.0f} s {'old' if skew > 0 else 'ahead'}, more than "
                           f"ingest_max_skew_s={max_skew_s:g}")
    return HMAC_CLIENT


def declared_length(content_length: str | None) -> int | None:
    """The Content-Length a request declares, None when it has none (chunked) or an unusable one."""
    if content_length is None or not (digits := content_length.strip()).isascii() or not digits.isdigit():
        return None
    return int(digits)


@dataclass
class TokenBucket:
    """`burst` requests at once, refilled at `rate_per_s`."""

    rate_per_s: float
    burst: int
    tokens: float
    updated: float

    def take(self, now: float) -> float:
        """0 when a request may go now (one token taken), else the seconds until one may."""
        self.tokens = min(self.burst, self.tokens + max(now - self.updated, 0.0) * self.rate_per_s)
        self.updated = max(now, self.updated)
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate_per_s


@dataclass
class RateLimiter:
    """One `TokenBucket` per client; `rate_per_s` 0 = no limit. Full buckets are forgotten when many clients came."""

    rate_per_s: float
    burst: int
    clock: Callable[[], float]
    buckets: dict[str, TokenBucket] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float]) -> RateLimiter:
        return cls(settings.ingest_rate_per_s, settings.ingest_burst, clock)

    def retry_after(self, client: str) -> float:
        """0 when `client` may send now (and it counts), else the seconds to wait."""
        if self.rate_per_s <= 0:
            return 0.0
        now = self.clock()
        bucket = self.buckets.get(client)
        if bucket is None:
            if len(self.buckets) >= MAX_TRACKED_CLIENTS:
                self._forget_full(now)
            bucket = self.buckets[client] = TokenBucket(self.rate_per_s, self.burst, float(self.burst), now)
        return bucket.take(now)

    def _forget_full(self, now: float) -> None:
        for client, bucket in list(self.buckets.items()):
            if bucket.tokens + (now - bucket.updated) * self.rate_per_s >= bucket.burst:
                del self.buckets[client]
