"""Reviewers, passwords, sessions and CSRF, and when the desk refuses to start."""

from __future__ import annotations

import pytest

from streamer.review import DeskRefused, reviewers_for
from streamer.review.auth import Sessions, UsersFileError, add_user, check_password, hash_password, load_reviewers
from streamer.settings import Settings


def test_a_password_checks_against_its_hash_only():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert check_password("correct horse", stored)
    assert not check_password("Correct horse", stored)
    assert not check_password("correct horse", "plain:correct horse")
    assert hash_password("x") != hash_password("x")  # salted


def test_users_file_round_trip(tmp_path):
    users = tmp_path / "reviewers.toml"
    add_user(users, "ann", "pw-ann")
    add_user(users, "bob.k", "pw-bob")
    add_user(users, "ann", "new-pw")
    reviewers = load_reviewers(users)
    assert sorted(reviewers.hashes) == ["ann", "bob.k"] and not reviewers.open
    assert reviewers.check("ann", "new-pw") and not reviewers.check("ann", "pw-ann")
    assert not reviewers.check("carl", "new-pw") and not reviewers.check("", "")
    assert users.stat().st_mode & 0o077 == 0


@pytest.mark.parametrize("content, words", [
    ("[users\nann = 1", "reviewers.toml: "),
    ("[people]\nann = 'x'", "no [users] table"),
    ("[users]\nann = 'plain'", "users.ann"),
    ("[users]\n'a b' = 'scrypt$1'", "users.a b"),
])
def test_a_bad_users_file_is_one_line_naming_it(tmp_path, content, words):
    users = tmp_path / "reviewers.toml"
    users.write_text(content)
    with pytest.raises(UsersFileError) as bad:
        load_reviewers(users)
    assert words in str(bad.value) and "\n" not in str(bad.value)


@pytest.mark.parametrize("host, users, refused", [
    ("127.0.0.1", None, False),
    ("localhost", None, False),
    ("::1", None, False),
    ("0.0.0.0", None, True),
    ("10.1.2.3", None, True),
    ("0.0.0.0", "reviewers.toml", False),
])
def test_with_no_reviewers_the_desk_serves_loopback_only(tmp_path, host, users, refused):
    path = None
    if users:
        path = tmp_path / users
        add_user(path, "ann", "pw")
    settings = Settings(review_host=host, review_users_path=path)
    if refused:
        with pytest.raises(DeskRefused, match="loopback only"):
            reviewers_for(settings)
    else:
        assert reviewers_for(settings).open is (path is None)


def test_sessions_are_signed_and_carry_a_csrf_token():
    sessions = Sessions("secret")
    cookie = sessions.issue("ann")
    session = sessions.read(cookie)
    assert session["reviewer"] == "ann"
    assert Sessions.csrf_ok(session, session["csrf"])
    assert not Sessions.csrf_ok(session, "guess") and not Sessions.csrf_ok(session, None)
    assert sessions.read(cookie[:-2] + "xx") is None
    assert Sessions("other secret").read(cookie) is None
    assert sessions.read(sessions.issue(None))["reviewer"] is None
