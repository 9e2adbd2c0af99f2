"""The desk's HTTP rules, on a real queue and broker: sign-in, signed sessions, CSRF, bad requests."""

from __future__ import annotations

import asyncio
import re

import pytest
from conftest import put_on_review

from streamer.review.auth import add_user, load_reviewers
from streamer.review.queue import ReviewQueue
from streamer.review.web import build_app

pytestmark = pytest.mark.integration


async def exercise(settings, reviewers) -> dict:
    from aiohttp.test_utils import TestClient, TestServer

    queue = ReviewQueue(settings).start()
    seen: dict = {}
    try:
        async with TestClient(TestServer(build_app(queue, settings, reviewers))) as client:
            anonymous = await client.get("/", allow_redirects=False)
            seen["anonymous"] = (anonymous.status, anonymous.headers.get("Location"))
            seen["health"] = (await client.get("/healthz")).status
            page = await (await client.get("/login")).text()
            csrf = re.search(r'name="csrf" value="([^"]+)"', page)[1]
            seen["no_csrf"] = (await client.post("/login", data={"name": "ann", "password": "pw"})).status
            wrong = await client.post("/login", data={"name": "ann", "password": "nope", "csrf": csrf})
            seen["wrong_password"] = wrong.status
            right = await client.post("/login", data={"name": "ann", "password": "pw", "csrf": csrf},
                                      allow_redirects=False)
            seen["signed_in"] = right.status
            for _ in range(100):
                if queue.open_items():
                    break
                await asyncio.sleep(0.1)
            item = await client.get("/items/0/0")
            item_page = await item.text()
            seen["item"] = item.status
            csrf = re.search(r'name="csrf" value="([^"]+)"', item_page)[1]
            seen["forged"] = (await client.post("/items/0/0", data={"action": "not_trade", "csrf": "x"})).status
            seen["bad_action"] = (await client.post("/items/0/0", data={"action": "delete", "csrf": csrf})).status
            seen["missing_item"] = (await client.get("/items/0/99", allow_redirects=False)).status
            seen["metrics"] = await (await client.get("/metrics")).json()
            seen["filtered"] = {reason: "malformed record" in await (await client.get(f"/?reason={reason}")).text()
                                for reason in ("malformed", "low_confidence")}
            seen["decided"] = (await client.post("/items/0/0", data={"action": "not_trade", "csrf": csrf},
                                                 allow_redirects=False)).status
            seen["left_open"] = len(queue.open_items())
    finally:
        queue.close()
    return seen


def test_sign_in_sessions_and_csrf(desk_settings, tmp_path):
    users = tmp_path / "reviewers.toml"
    add_user(users, "ann", "pw")
    put_on_review(desk_settings, [b"not json at all"])
    seen = asyncio.run(exercise(desk_settings, load_reviewers(users)))
    assert seen["anonymous"] == (303, "/login") and seen["health"] == 200
    assert seen["no_csrf"] == 403 and seen["wrong_password"] == 401 and seen["signed_in"] == 303
    assert seen["item"] == 200 and seen["forged"] == 403 and seen["bad_action"] == 400
    assert seen["missing_item"] == 303
    assert seen["metrics"]["queue_depth"] == 1 and seen["metrics"]["decisions_last_hour"] == 0
    assert seen["filtered"] == {"malformed": True, "low_confidence": False}
    # "not a trade" needs a readable record: a malformed one is refused (409) and stays open
    assert seen["decided"] == 409 and seen["left_open"] == 1
