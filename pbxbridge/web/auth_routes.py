"""Signing in and out: the sign-in page, its JSON twin, and who am I."""

from __future__ import annotations

import functools
import html
import math
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from pbxbridge.web import refusals
from pbxbridge.web.access import require_user
from pbxbridge.web.audit import (
    ANONYMOUS,
    AUDITED,
    LOCKED,
    SIGN_IN,
    SIGN_IN_FAILED,
    THROTTLED,
    UNKNOWN_USER,
    WRONG_PASSWORD,
    client_address,
    failed_sign_in,
    record,
    sign_in_attempts,
    sign_in_lock,
)
from pbxbridge.web.context import SESSION, USER, WebContext, ctx, write_session
from pbxbridge.web.errors import api_error, api_error_said
from pbxbridge.web.i18n import N_, _, n_
from pbxbridge.web.middleware import read_form, set_csrf_cookie
from pbxbridge.web.pages import render_login
from pbxbridge.web.refusals import Refusal
from pbxbridge.web.sessions import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_LIFETIME_S,
    SessionData,
    new_token,
)
from pbxbridge.web.signed_out import SIGN_OUT, session_target
from pbxbridge.web.throttle import MAX_NAME_CHARS, Attempt, Wait
from pbxbridge.web.users import authenticate, find_user, signed_in

routes = web.RouteTableDef()


class SignInRefused(Exception):
    """Wrong name or password, or a try during a wait: ``wait`` says which."""

    def __init__(self, wait: Wait | None) -> None:
        super().__init__("sign-in refused")
        self.wait = wait


async def _sign_in(request: web.Request, username: str, password: str) -> SessionData:
    # No name holds a NUL (PostgreSQL could not even look one up): such a name is simply unknown.
    username = username.replace("\x00", "\ufffd")
    context = ctx(request)
    address = client_address(request)
    # The sign-in writes its own audit entries; the request pipeline must not add a refusal too.
    request[AUDITED] = True
    throttle = context.throttle
    if not throttle.restored:
        await throttle.restore_once(functools.partial(_attempts, context))
    wait = throttle.wait(username, address)
    if wait is not None:
        # Not checked at all: a correct password during a wait fails like a wrong one.
        await refusals.note(request, Refusal(
            at=context.clock(), action=SIGN_IN_FAILED, reason=LOCKED if wait.locked else THROTTLED,
            username=username[:MAX_NAME_CHARS], role=ANONYMOUS, address=address,
            target=f"{request.method} {request.path}",
        ))
        raise SignInRefused(wait)
    now = datetime.fromtimestamp(context.clock(), UTC)
    async with write_session(context) as db:
        user = await authenticate(db, username, password)
        if user is None:
            # Asked whether the user is unknown or not in either case, so the answer takes as long.
            known = await find_user(db, username.strip())
            db.add(failed_sign_in(now, username, address, WRONG_PASSWORD if known else UNKNOWN_USER))
            # No password is checked during a lock, so every lock a failure brings is a new one.
            for lock in throttle.failed(username, address):
                db.add(sign_in_lock(now, username, address, lock))
        else:
            who = signed_in(user)
            record(db, request, who, SIGN_IN)
    if user is None:
        raise SignInRefused(None)
    throttle.succeeded(username, address)
    return SessionData(who.id, who.password_tag, new_token(), context.clock())


async def _attempts(context: WebContext, since: float) -> list[Attempt]:
    async with context.sessions() as db:
        return await sign_in_attempts(db, since)


def _wait_text(request: web.Request, wait: Wait) -> str:
    """When to try again, in words: seconds for a short wait, minutes for a lock."""
    if wait.seconds < 90:
        seconds = math.ceil(wait.seconds)
        if wait.locked:
            return n_(request, "Too many failed sign-ins: sign-in is locked. Try again in {n} second.",
                      "Too many failed sign-ins: sign-in is locked. Try again in {n} seconds.", seconds)
        return n_(request, "Too many failed attempts. Try again in {n} second.",
                  "Too many failed attempts. Try again in {n} seconds.", seconds)
    minutes = math.ceil(wait.seconds / 60)
    # The clock on the department's wall (kpi.timezone), 24-hour: what a person checks against.
    at = datetime.fromtimestamp(wait.until, ZoneInfo(ctx(request).config.kpi.timezone)).strftime("%H:%M")
    return n_(request, "Too many failed sign-ins: sign-in is locked. Try again in {n} minute, at {time}.",
              "Too many failed sign-ins: sign-in is locked. Try again in {n} minutes, at {time}.", minutes, time=at)


def _set_session(request: web.Request, response: web.StreamResponse, data: SessionData) -> None:
    context = ctx(request)
    response.set_cookie(
        SESSION_COOKIE,
        context.signer.dumps(data),
        path="/",
        httponly=True,
        samesite="Lax",
        secure=context.secure_cookies or request.secure,
        max_age=SESSION_LIFETIME_S,
    )
    set_csrf_cookie(request, response, data.csrf)


async def _end_session(request: web.Request) -> None:
    """Refuse the request's session cookie from now on, wherever a copy of it is kept."""
    context = ctx(request)
    data: SessionData | None = request.get(SESSION)
    user = request.get(USER)
    if data is None or user is None:
        return
    # In memory first: the refusal holds at once even if the audit write below fails.
    context.signed_out.end(data, context.clock())
    async with write_session(context) as db:
        record(db, request, user, SIGN_OUT, session_target(data))


def _clear_session(response: web.StreamResponse) -> None:
    response.del_cookie(SESSION_COOKIE, path="/")
    response.del_cookie(CSRF_COOKIE, path="/")


def _local_next(value: str | None) -> str:
    # Only paths on this site: "//evil.example" or "https://…" would be an open redirect.
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


@routes.get("/login")
async def login_page(request: web.Request) -> web.Response:
    """The sign-in form."""
    if request.get(USER) is not None:
        raise web.HTTPFound(_local_next(request.query.get("next")))
    return render_login(request, next_url=_local_next(request.query.get("next")))


@routes.post("/login")
async def login_form(request: web.Request) -> web.Response:
    """Sign in from the form; back to the page asked for, or the form again with the reason."""
    form = await read_form(request)
    username = str(form.get("username", ""))
    password = str(form.get("password", ""))
    next_url = _local_next(str(form.get("next", "/")))
    try:
        data = await _sign_in(request, username, password)
    except SignInRefused as refused:
        headers = {}
        if refused.wait is not None:
            message = _wait_text(request, refused.wait)
            status = 429
            headers["Retry-After"] = str(math.ceil(refused.wait.seconds))
        else:
            message = _(request, "Wrong username or password.")
            status = 401
        response = render_login(request, next_url=next_url, error=message, username=html.escape(username))
        response.set_status(status)
        response.headers.update(headers)
        return response
    response = web.HTTPFound(next_url)
    _set_session(request, response, data)
    raise response


@routes.post("/logout")
async def logout_form(request: web.Request) -> web.Response:
    """Sign out and go to the sign-in page."""
    await _end_session(request)
    response = web.HTTPFound("/login")
    _clear_session(response)
    raise response


@routes.post("/api/login")
async def login_api(request: web.Request) -> web.Response:
    """Sign in with {"username", "password"}; sets the session and CSRF cookies."""
    # A name with a NUL is a failed sign-in like any other (throttled, audited with the NUL shown as U+FFFD).
    body = await json_body(request, nul_ok=True)
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str):
        raise api_error(400, N_("username and password are required"))
    try:
        data = await _sign_in(request, username, password)
    except SignInRefused as refused:
        if refused.wait is not None:
            wait = math.ceil(refused.wait.seconds)
            exc = api_error_said(429, _wait_text(request, refused.wait), retry_after=wait, locked=refused.wait.locked)
            exc.headers["Retry-After"] = str(wait)
            raise exc from None
        raise api_error(401, N_("wrong username or password")) from None
    async with ctx(request).sessions() as db:
        from pbxbridge.web.tables import User

        user = await db.get(User, data.user_id)
        assert user is not None
        who = signed_in(user)
    response = web.json_response({"user": who.as_json(), "csrf_token": data.csrf})
    _set_session(request, response, data)
    return response


@routes.post("/api/logout")
async def logout_api(request: web.Request) -> web.Response:
    """End the session."""
    require_user(request)
    await _end_session(request)
    response = web.json_response({"signed_out": True})
    _clear_session(response)
    return response


@routes.get("/api/me")
async def me(request: web.Request) -> web.Response:
    """The signed-in user."""
    return web.json_response(require_user(request).as_json())


async def json_body(request: web.Request, *, nul_ok: bool = False) -> dict[str, Any]:
    """The request's JSON object, or 400 (also for a NUL character in its text, unless ``nul_ok``)."""
    try:
        body = await request.json()
    except (ValueError, RecursionError):
        # RecursionError: arrays nested a hundred thousand deep, which no client of ours sends.
        raise api_error(400, N_("the body must be JSON")) from None
    if not isinstance(body, dict):
        raise api_error(400, N_("the body must be a JSON object"))
    if not nul_ok and _holds_nul(body):
        # PostgreSQL's text cannot hold one: refused here, for every route alike, not failed on deep inside.
        raise api_error(400, N_("the text must not contain NUL characters"))
    return body


def _holds_nul(body: object) -> bool:
    # A loop, not recursion: a body nested as deep as the JSON parser allows must not overflow the stack here.
    pending = [body]
    while pending:
        value = pending.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            pending.extend(value)
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return False
