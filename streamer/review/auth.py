"""Who is reviewing: a users file of scrypt password hashes, signed session cookies, CSRF tokens.

Chosen over a shared token plus a typed name because every decision carries
the reviewer's name into `trades.parsed` and `trades.corrections`: with one
password per person, the name is one that person proved. scrypt is in the
standard library (hashlib), so the file needs nothing else to check; the
cookies are signed with itsdangerous (what Flask uses). With no users file,
anyone who can reach the desk signs in by name, so the desk then refuses any
address but loopback.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
import tomllib
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

SCRYPT = {"n": 2**14, "r": 8, "p": 1}
SESSION_MAX_AGE_S = 12 * 3600
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")


class UsersFileError(ValueError):
    """A users file that cannot be read; the message names the file (and line)."""


def hash_password(password: str, salt: bytes | None = None) -> str:
    """`scrypt$n$r$p$salt$hash`, base64 parts: what the users file stores."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, **SCRYPT)
    encode = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"scrypt${SCRYPT['n']}${SCRYPT['r']}${SCRYPT['p']}${encode(salt)}${encode(digest)}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(want))
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


@dataclass(frozen=True)
class Reviewers:
    """Names and password hashes; `None` = no users file (sign in by name, loopback only)."""

    hashes: dict[str, str] | None

    @property
    def open(self) -> bool:
        return self.hashes is None

    def check(self, name: str, password: str) -> bool:
        if not NAME.match(name or ""):
            return False
        if self.hashes is None:
            return True
        stored = self.hashes.get(name)
        if stored is None:
            check_password(password, hash_password("timing"))  # as slow for an unknown name as for a known one
            return False
        return check_password(password, stored)


def load_reviewers(path: Path | None) -> Reviewers:
    """Read `[users] name = "scrypt$..."`; raises UsersFileError naming the file and the problem."""
    if path is None:
        return Reviewers(None)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsersFileError(f"{path}: no such users file") from None
    except tomllib.TOMLDecodeError as err:
        raise UsersFileError(f"{path}: {err}") from None
    users = data.get("users")
    if not isinstance(users, dict) or not users:
        raise UsersFileError(f"{path}: no [users] table with at least one reviewer")
    for name, stored in users.items():
        if not NAME.match(name) or not isinstance(stored, str) or not stored.startswith("scrypt$"):
            raise UsersFileError(f"{path}: users.{name}: want a name of letters, digits, ._@- and a scrypt$ hash "
                                 "(streamer review add-user)")
    return Reviewers(dict(users))


def add_user(path: Path, name: str, password: str) -> None:
    """Add or replace one reviewer in the users file (created if missing), keeping the others."""
    if not NAME.match(name):
        raise UsersFileError(f"{name!r}: a reviewer name is letters, digits and ._@- (at most 64)")
    users = load_reviewers(path).hashes if Path(path).exists() else {}
    users = dict(users or {})
    users[name] = hash_password(password)
    lines = ["# Reviewers of the tradechat-streamer review desk: name = scrypt hash (streamer review add-user).",
             "[users]"] + [f'"{user}" = "{stored}"' for user, stored in sorted(users.items())]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
    Path(path).chmod(0o600)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Sessions:
    """Signed cookie sessions {'reviewer', 'csrf'}; a forged or stale cookie reads as none.

    A visitor who has not signed in gets one with reviewer None, so the sign-in
    form carries a CSRF token too.
    """

    COOKIE = "review_session"

    def __init__(self, secret: str | None):
        self._signer = URLSafeTimedSerializer(secret or secrets.token_hex(32), salt="tradechat-review")

    def issue(self, reviewer: str | None) -> str:
        return self._signer.dumps({"reviewer": reviewer, "csrf": secrets.token_urlsafe(24)})

    def read(self, cookie: str | None) -> dict | None:
        if not cookie:
            return None
        try:
            session = self._signer.loads(cookie, max_age=SESSION_MAX_AGE_S)
        except BadSignature:
            return None
        return session if isinstance(session, dict) and "reviewer" in session and "csrf" in session else None

    @staticmethod
    def csrf_ok(session: dict | None, token: str | None) -> bool:
        return bool(session and token and hmac.compare_digest(str(session["csrf"]), token))
