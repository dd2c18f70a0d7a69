"""Request pipeline: JSON errors, security headers, the signed-in user, CSRF checks."""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from multidict import CIMultiDict
from sqlalchemy import select

from pbxbridge.web.context import SESSION, USER, ctx
from pbxbridge.web.errors import api_error
from pbxbridge.web.sessions import (
    CSRF_COOKIE,
    CSRF_FIELD,
    CSRF_HEADER,
    SESSION_COOKIE,
    SessionData,
    new_token,
    tokens_match,
)
from pbxbridge.web.tables import User
from pbxbridge.web.users import SignedInUser, password_tag, signed_in

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths anyone may reach without signing in.
PUBLIC_PREFIXES = ("/static/", "/healthz", "/readyz", "/metrics", "/login", "/api/login", "/api/openapi.json", "/language")
# wavesurfer draws into a shadow root with inline styles; everything else is same-origin.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; media-src 'self' blob:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def is_api(request: web.Request) -> bool:
    """Whether the request is for the JSON API (errors as JSON, 401 instead of a redirect)."""
    return request.path.startswith("/api/")


def is_public(path: str) -> bool:
    """Whether a path needs no signed-in user."""
    return any(path == p or path.startswith(p) for p in PUBLIC_PREFIXES)


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a plain response (JSON on the API); unexpected ones are logged as 500."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        return _as_response(request, exc)
    except Exception:
        log.exception("%s %s failed", request.method, request.path)
        if is_api(request):
            return _as_response(request, api_error(500, "internal error"))
        return web.Response(status=500, text="Internal error.")


def _as_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    # aiohttp answers a raised exception with its status, text and headers only;
    # as a response it keeps the cookies set on it (sign-in redirects set them).
    headers = CIMultiDict(exc.headers)
    headers.pop("Content-Type", None)
    headers.pop("Content-Length", None)
    if is_api(request) and exc.status >= 400 and exc.content_type != "application/json":
        body = json.dumps({"error": exc.reason})
        response = web.Response(status=exc.status, text=body, content_type="application/json", headers=headers)
    else:
        response = web.Response(
            status=exc.status, reason=exc.reason, body=exc.body, content_type=exc.content_type, headers=headers
        )
    for morsel in exc.cookies.values():
        response.headers.add("Set-Cookie", morsel.OutputString())
    return response


@web.middleware
async def headers_and_token(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Security headers on every answer; a CSRF token cookie for whoever has none yet."""
    response = await handler(request)
    if response.prepared:
        return response
    response.headers.setdefault("Content-Security-Policy", CSP)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    # Strangers get a token too, so that the sign-in form is protected as well.
    has_cookie = request.cookies.get(CSRF_COOKIE) or CSRF_COOKIE in response.cookies or any(
        v.startswith(CSRF_COOKIE + "=") for v in response.headers.getall("Set-Cookie", [])
    )
    if not has_cookie and not request.path.startswith("/static/"):
        set_csrf_cookie(request, response, new_token())
    return response


@web.middleware
async def session(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Find the signed-in user from the session cookie; send strangers to sign in."""
    context = ctx(request)
    request[USER] = None
    request[SESSION] = None
    if not request.path.startswith("/static/"):
        raw = request.cookies.get(SESSION_COOKIE)
        now = context.clock()
        data = context.signer.loads(raw, now) if raw else None
        if data is not None and await context.signed_out.ended(data, context.sessions, now):
            data = None
        if data is not None:
            user = await _load_user(request, data)
            if user is not None:
                request[USER] = user
                request[SESSION] = data
    if request[USER] is None and not is_public(request.path):
        if is_api(request):
            raise api_error(401, "sign in first")
        raise web.HTTPFound("/login?next=" + quote(request.path_qs, safe=""))
    return await handler(request)


async def _load_user(request: web.Request, data: SessionData) -> SignedInUser | None:
    async with ctx(request).sessions() as db:
        row = (await db.execute(select(User).where(User.id == data.user_id))).scalar_one_or_none()
    # A changed password (or a deleted user) ends every session issued before.
    if row is None or password_tag(row.password_hash) != data.password_tag:
        return None
    return signed_in(row)


def set_csrf_cookie(request: web.Request, response: web.StreamResponse, token: str) -> None:
    """The script-readable copy of the CSRF token."""
    secure = ctx(request).secure_cookies or request.secure
    response.set_cookie(CSRF_COOKIE, token, path="/", httponly=False, samesite="Lax", secure=secure)


def expected_csrf(request: web.Request) -> str | None:
    """The token a state-changing request must echo: the session's, or the cookie's before sign-in."""
    data: SessionData | None = request.get(SESSION)
    if data is not None:
        return data.csrf
    return request.cookies.get(CSRF_COOKIE)


@web.middleware
async def csrf(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every state-changing request must carry the CSRF token (header, or form field for plain forms)."""
    if request.method in SAFE_METHODS:
        return await handler(request)
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not tokens_match(given, expected_csrf(request)):
        if is_api(request):
            raise api_error(403, "missing or wrong CSRF token")
        raise web.HTTPForbidden(text="Missing or wrong CSRF token. Reload the page and try again.")
    return await handler(request)
