"""The review desk: people resolve what the parser sent to `trades.review`.

`run_desk(settings)` serves the web pages; each decision goes to
`trades.corrections` (and an accepted trade to `trades.parsed`). Modules, in
the order a record meets them: `items` (read and explain a review record),
`queue` (Kafka: the open items, claims, decisions, commits), `decisions` (the
pure logic of edits, claims and commit positions), `auth` (reviewers,
sessions, CSRF), `web` (the pages).
"""

from __future__ import annotations

import asyncio
import logging
import signal

from streamer.review.auth import Reviewers, UsersFileError, is_loopback, load_reviewers
from streamer.settings import Settings

__all__ = ["DeskRefused", "run_desk", "reviewers_for"]

log = logging.getLogger(__name__)


class DeskRefused(RuntimeError):
    """The desk will not start as configured; the message says why and what to change."""


def reviewers_for(settings: Settings) -> Reviewers:
    """The reviewers the desk signs in; raises DeskRefused for an open desk on a non-loopback address."""
    try:
        reviewers = load_reviewers(settings.review_users_path)
    except UsersFileError as err:
        raise DeskRefused(str(err)) from None
    if reviewers.open and not is_loopback(settings.review_host):
        raise DeskRefused(f"no reviewers file is configured, so the desk serves loopback only, not "
                          f"{settings.review_host!r}: create one with 'streamer review add-user NAME --users FILE' "
                          "and pass --users FILE (STREAMER_REVIEW_USERS_PATH)")
    return reviewers


def run_desk(settings: Settings, ready=None) -> None:
    """Serve the desk until SIGINT/SIGTERM; `ready(url)` is called once it listens."""
    from streamer.review.queue import ReviewQueue
    from streamer.review.web import serve

    reviewers = reviewers_for(settings)
    queue = ReviewQueue(settings).start()

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await serve(queue, settings, reviewers, stop, ready)

    try:
        asyncio.run(main())
    finally:
        queue.close()
