"""The review desk's web pages (aiohttp, server-rendered with Jinja2, a few lines of JS for shortcuts).

GET  /                   the queue, oldest first, filtered by ?reason= and ?channel=, with the desk's metrics
GET  /next               the oldest item nobody else holds (this reviewer's skipped ones last)
GET  /items/{p}/{o}      claim and show one item: highlighted text, fields with confidences, reasons in words
POST /items/{p}/{o}      decide it: action = accept | not_trade | skip | dead_letter (CSRF-checked)
GET  /login, POST /login, POST /logout
GET  /metrics            the metrics as JSON; GET /healthz: 200 while the queue's reader runs
"""

from __future__ import annotations

import asyncio
import logging
from functools import partial
from importlib import resources
from urllib.parse import quote

import jinja2
from aiohttp import web

from schemas import ASSET_CLASSES, CONTRACT_FIELDS, INTENTS, ORDER_TYPES, SIDES
from streamer.review.auth import Reviewers, Sessions
from streamer.review.decisions import FieldErrors, edited_fields
from streamer.review.items import FIELD_WORDS, copied_spans, describe_reason, highlighted_html
from streamer.review.queue import ReviewError, ReviewQueue
from streamer.settings import Settings

log = logging.getLogger(__name__)

CHOICES = {"intent": INTENTS, "side": SIDES, "asset_class": ASSET_CLASSES, "order_type": ORDER_TYPES}
ACTIONS = ("accept", "not_trade", "skip", "dead_letter")

QUEUE_KEY = web.AppKey("queue", ReviewQueue)
SETTINGS_KEY = web.AppKey("settings", Settings)
REVIEWERS_KEY = web.AppKey("reviewers", Reviewers)
SESSIONS_KEY = web.AppKey("sessions", Sessions)
TEMPLATES_KEY = web.AppKey("templates", jinja2.Environment)
SESSION = web.RequestKey("session", dict)
FORM = web.RequestKey("form", object)


def _templates() -> jinja2.Environment:
    folder = resources.files("streamer.review") / "templates"
    loader = jinja2.DictLoader({entry.name: entry.read_text(encoding="utf-8") for entry in folder.iterdir()
                                if entry.name.endswith(".html")})
    return jinja2.Environment(loader=loader, autoescape=True, undefined=jinja2.StrictUndefined)


def build_app(queue: ReviewQueue, settings: Settings, reviewers: Reviewers) -> web.Application:
    app = web.Application(middlewares=[_session_middleware])
    app[QUEUE_KEY], app[SETTINGS_KEY], app[REVIEWERS_KEY] = queue, settings, reviewers
    app[SESSIONS_KEY], app[TEMPLATES_KEY] = Sessions(settings.review_secret), _templates()
    app.add_routes([
        web.get("/", queue_page), web.get("/next", next_item), web.get("/items/{partition}/{offset}", item_page),
        web.post("/items/{partition}/{offset}", decide), web.get("/login", login_page), web.post("/login", login),
        web.post("/logout", logout), web.get("/metrics", metrics), web.get("/healthz", healthz),
    ])
    return app


# --- sessions --------------------------------------------------------------------------------------------------

PUBLIC = {"/login", "/healthz"}


@web.middleware
async def _session_middleware(request: web.Request, handler):
    sessions = request.app[SESSIONS_KEY]
    session = sessions.read(request.cookies.get(Sessions.COOKIE))
    fresh = None
    if session is None:
        fresh = sessions.issue(None)
        session = sessions.read(fresh)
    request[SESSION] = session
    if request.method == "POST":
        form = await request.post()
        request[FORM] = form
        if not Sessions.csrf_ok(session, form.get("csrf")):
            return web.Response(status=403, text="Forbidden: the form's CSRF token is missing or stale; reload the page.")
    try:
        if request.path not in PUBLIC and not session.get("reviewer"):
            raise web.HTTPSeeOther("/login")
        response = await handler(request)
    except web.HTTPException as redirect:
        if fresh is not None:
            _set_cookie(redirect, fresh)
        raise
    if fresh is not None:
        _set_cookie(response, fresh)
    return response


def _set_cookie(response: web.StreamResponse, value: str) -> None:
    response.set_cookie(Sessions.COOKIE, value, httponly=True, samesite="Strict", path="/")


def _render(request: web.Request, template: str, status: int = 200, **context) -> web.Response:
    env = request.app[TEMPLATES_KEY]
    session = request[SESSION]
    html = env.get_template(template).render(reviewer=session.get("reviewer"), csrf=session["csrf"], **context)
    return web.Response(text=html, content_type="text/html", status=status)


async def login_page(request: web.Request) -> web.Response:
    return _render(request, "login.html", open_desk=request.app[REVIEWERS_KEY].open, error=None)


async def login(request: web.Request) -> web.StreamResponse:
    form = request[FORM]
    name, password = (form.get("name") or "").strip(), form.get("password") or ""
    reviewers = request.app[REVIEWERS_KEY]
    checked = await asyncio.get_running_loop().run_in_executor(None, reviewers.check, name, password)
    if not checked:
        log.warning("review desk: failed sign-in for %r from %s", name, request.remote)
        return _render(request, "login.html", status=401, open_desk=reviewers.open,
                       error="Unknown reviewer or wrong password." if not reviewers.open else "Type a name: letters, digits, ._@-")
    log.info("review desk: %s signed in from %s", name, request.remote)
    response = web.HTTPSeeOther("/")
    _set_cookie(response, request.app[SESSIONS_KEY].issue(name))
    raise response


async def logout(request: web.Request) -> web.StreamResponse:
    response = web.HTTPSeeOther("/login")
    response.del_cookie(Sessions.COOKIE, path="/")
    raise response


# --- queue and items -------------------------------------------------------------------------------------------

async def queue_page(request: web.Request) -> web.Response:
    queue = request.app[QUEUE_KEY]
    reason, channel = request.query.get("reason") or None, request.query.get("channel") or None
    everything = queue.open_items()
    items = [item for item in everything
             if (not reason or reason in item.reason_codes) and (not channel or item.channel == channel)]
    now = queue.clock()
    rows = [{"item": item, "age_s": (now - item.arrived).total_seconds() if item.arrived else None,
             "holder": queue.book.holder(item.id, now),
             "reasons": [describe_reason(r) for r in item.flagged.reasons] if item.flagged else [item.error]}
            for item in items]
    return _render(request, "queue.html", rows=rows, metrics=queue.metrics(), reason=reason, channel=channel,
                   reason_codes=sorted({code for item in everything for code in item.reason_codes}),
                   channels=sorted({item.channel for item in everything if item.channel}),
                   notice=request.query.get("notice"))


async def next_item(request: web.Request) -> web.StreamResponse:
    queue = request.app[QUEUE_KEY]
    reviewer, after = request[SESSION]["reviewer"], request.query.get("after")
    holder = queue.book.holder(after, queue.clock()) if after else None
    if holder is not None and holder.held_by(reviewer, queue.desk_id):  # moving on frees the item for others
        await asyncio.get_running_loop().run_in_executor(None, queue.release, after, reviewer)
    item = queue.next_item(reviewer, after=after)
    if item is None:
        raise web.HTTPSeeOther("/?notice=The+queue+is+empty.")
    raise web.HTTPSeeOther(_item_url(item))


def _item_url(item) -> str:
    return f"/items/{item.position.partition}/{item.position.offset}"


def _item_id(request: web.Request) -> str:
    try:
        partition, offset = int(request.match_info["partition"]), int(request.match_info["offset"])
    except ValueError:
        raise web.HTTPNotFound(text="No such item.") from None
    return f"{request.app[SETTINGS_KEY].review_topic}/{partition}/{offset}"


def _open_item(request: web.Request):
    """(queue, reviewer, item) for an item page or decision; back to the queue when it is gone or decided."""
    queue = request.app[QUEUE_KEY]
    item_id = _item_id(request)
    item = queue.get(item_id)
    if item is None or queue.is_decided(item_id):
        raise web.HTTPSeeOther("/?notice=That+item+is+decided+or+gone.")
    return queue, request[SESSION]["reviewer"], item


async def item_page(request: web.Request) -> web.Response:
    queue, reviewer, item = _open_item(request)
    item_id = item.id
    try:
        holder = await asyncio.get_running_loop().run_in_executor(None, queue.claim, item_id, reviewer)
    except ReviewError as err:
        raise web.HTTPSeeOther(f"/?notice={quote(str(err))}") from None
    return _item_response(request, item, holder, reviewer)


def _item_response(request, item, holder, reviewer, errors: dict | None = None, values: dict | None = None,
                   problem: str | None = None, status: int = 200) -> web.Response:
    settings = request.app[SETTINGS_KEY]
    flagged = item.flagged
    trade = flagged.trade if flagged else None
    if values is None:
        values = {name: _field_text(getattr(trade, name)) for name in CONTRACT_FIELDS} if trade else \
            {name: "" for name in CONTRACT_FIELDS}
    confidences = trade.field_confidence if trade else {}
    fields = [{"name": name, "label": FIELD_WORDS[name], "value": values.get(name, ""),
               "choices": CHOICES.get(name), "confidence": confidences.get(name),
               "low": confidences.get(name) is not None and confidences[name] < settings.confidence_threshold,
               "error": (errors or {}).get(name)} for name in CONTRACT_FIELDS]
    spans = copied_spans(flagged) if flagged else {}
    mine = holder is not None and holder.held_by(reviewer, request.app[QUEUE_KEY].desk_id)
    return _render(
        request, "item.html", status=status, item=item, flagged=flagged, fields=fields,
        text_html=highlighted_html(flagged.message.text, spans) if flagged else None,
        reasons=[describe_reason(r) for r in flagged.reasons] if flagged else [],
        raw_text=item.raw.decode("utf-8", errors="backslashreplace"), holder=holder, mine=mine,
        errors=errors or {}, problem=problem, url=_item_url(item),
    )


def _field_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}" if abs(value) < 1e15 else repr(value)
    return str(value)


async def decide(request: web.Request) -> web.StreamResponse:
    queue, reviewer, item = _open_item(request)
    item_id = item.id
    form = request[FORM]
    action = form.get("action")
    if action not in ACTIONS:
        return web.Response(status=400, text=f"Bad request: action must be one of {', '.join(ACTIONS)}.")
    values = {name: form.get(name, "") for name in CONTRACT_FIELDS}
    fields = None
    if action == "accept":
        try:
            fields = edited_fields(values)
        except FieldErrors as err:
            holder = queue.book.holder(item_id, queue.clock())
            return _item_response(request, item, holder, reviewer, errors=err.errors, values=values, status=422,
                                  problem="Not published: fix the marked fields.")
    try:
        await asyncio.get_running_loop().run_in_executor(None, partial(queue.decide, item_id, reviewer, action, fields))
    except ReviewError as err:
        holder = queue.book.holder(item_id, queue.clock())
        return _item_response(request, item, holder, reviewer, values=values, status=409, problem=f"Not done: {err}")
    raise web.HTTPSeeOther(f"/next?after={item_id}")


async def metrics(request: web.Request) -> web.Response:
    return web.json_response(request.app[QUEUE_KEY].metrics())


async def healthz(request: web.Request) -> web.Response:
    healthy = request.app[QUEUE_KEY].healthy
    return web.json_response({"ok": healthy}, status=200 if healthy else 503)


# --- running ---------------------------------------------------------------------------------------------------

async def serve(queue: ReviewQueue, settings: Settings, reviewers: Reviewers, stop: asyncio.Event,
                ready=None) -> None:
    """Serve the desk on review_host:review_port until `stop` is set; `ready(url)` once it listens."""
    runner = web.AppRunner(build_app(queue, settings, reviewers), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.review_host, settings.review_port)
    await site.start()
    if ready is not None:
        ready(f"http://{settings.review_host}:{settings.review_port}/")
    try:
        await stop.wait()
    finally:
        await runner.cleanup()
