"""Request pipeline: JSON errors, security headers, the signed-in user, CSRF checks."""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from urllib.parse import quote

from aiohttp import web
from aiohttp.web_request import FileField
from multidict import CIMultiDict, MultiDictProxy
from sqlalchemy import select

from pbxbridge.web import refusals
from pbxbridge.web.audit import (
    ANONYMOUS,
    AUDITED,
    CSRF,
    FORBIDDEN,
    REFUSAL_REASON,
    REQUEST_REFUSED,
    SIGN_IN_REQUIRED,
    THROTTLED,
    client_address,
)
from pbxbridge.web.context import SESSION, USER, ctx
from pbxbridge.web.error_pages import api_text, error_page, new_reference
from pbxbridge.web.errors import already_said, api_error
from pbxbridge.web.i18n import N_, _
from pbxbridge.web.refusals import Refusal
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
from pbxbridge.web.tokens import TOKEN_REFUSED, VIA_TOKEN, as_user, bearer, find_live, note_use
from pbxbridge.web.users import SignedInUser, password_tag, signed_in

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# Paths anyone may reach without signing in.
PUBLIC_PREFIXES = ("/static/", "/healthz", "/readyz", "/metrics", "/login", "/api/login", "/api/openapi.json", "/language")
# Paths that check their own proof, carried in the request (a CRM's application token, a signed
# link's signature): no session, and no CSRF token, which only a browser with a cookie has.
SELF_AUTHENTICATED = ("/api/crm/bitrix24/events", "/recordings/shared/")
# A person's own things (language, saved filters, the session): a machine's token changes none of them.
PERSON_ONLY = ("/api/me/", "/api/calls/filters", "/api/logout", "/api/login")
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
    return any(path == p or path.startswith(p) for p in PUBLIC_PREFIXES + SELF_AUTHENTICATED)


# Refusals the audit log records: not signed in (the API; a page sends the person to sign in),
# not allowed, too many tries.
REFUSED = {401: SIGN_IN_REQUIRED, 403: FORBIDDEN, 429: THROTTLED}
# The refusal's own words before translation (the audit log keeps them in English, its msgid).
REFUSAL_MESSAGE: web.RequestKey[str] = web.RequestKey("pbxbridge_refusal_message", str)
# aiohttp raises 400, 405 and 413 itself, with technical words ("Maximum request body size
# 1048576 exceeded"); only the statuses handlers raise carry words meant for a person.
_OWN_WORDS = frozenset({401, 403, 404, 409, 429})


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every failure becomes a page in the site's layout (JSON on the API), in the person's language;
    an unexpected one is logged with a reference the page shows; refusals go to the audit log."""
    try:
        response: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        response = _as_response(request, exc)
    except Exception:
        reference = new_reference()
        log.exception("%s %s failed (reference %s)", request.method, request.path, reference)
        if is_api(request):
            body = {"error": _(request, "internal error (reference {reference})", reference=reference),
                    "reference": reference}
            response = web.json_response(body, status=500, dumps=_dumps)
        else:
            try:
                response = error_page(request, 500, reference=reference)
            except Exception:
                # The layout itself failing must not hide the reference.
                log.exception("the error page for reference %s failed", reference)
                response = web.Response(status=500, text=f"Internal error. Reference: {reference}")
    if response.status in REFUSED and not request.get(AUDITED):
        await refusals.note(request, _refusal(request, response))
    return response


def _dumps(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def _refusal(request: web.Request, response: web.StreamResponse) -> Refusal:
    user: SignedInUser | None = request.get(USER)
    details: dict[str, object] = {"status": response.status}
    error = request.get(REFUSAL_MESSAGE)
    if error:
        details["error"] = error
    return Refusal(
        at=ctx(request).clock(),
        action=REQUEST_REFUSED,
        reason=request.get(REFUSAL_REASON) or REFUSED[response.status],
        username=user.username if user else ANONYMOUS,
        role=user.role if user else ANONYMOUS,
        address=client_address(request),
        target=f"{request.method} {request.path}",
        details=details,
    )


def _custom_text(exc: web.HTTPException) -> str | None:
    """The message a handler gave the exception, or None for aiohttp's own "404: Not Found"."""
    text = exc.text or ""
    if exc.content_type == "application/json":
        try:
            error = json.loads(text).get("error")
        except (ValueError, AttributeError):
            return None
        return error if isinstance(error, str) else None
    if exc.content_type != "text/plain" or not text or text == f"{exc.status}: {exc.reason}":
        return None
    return text if exc.status in _OWN_WORDS else None


def _as_response(request: web.Request, exc: web.HTTPException) -> web.Response:
    # aiohttp answers a raised exception with its status, text and headers only;
    # as a response it keeps the cookies set on it (sign-in redirects set them).
    headers = CIMultiDict(exc.headers)
    headers.pop("Content-Type", None)
    headers.pop("Content-Length", None)
    if exc.status < 400 or exc.content_type == "text/html" or request.path.startswith("/static/"):
        response = web.Response(
            status=exc.status, reason=exc.reason, body=exc.body, content_type=exc.content_type, headers=headers
        )
    else:
        given = _custom_text(exc)
        if given and exc.status in REFUSED:
            request[REFUSAL_MESSAGE] = given
        if is_api(request):
            body: dict[str, object] = {"error": api_text(request, exc.status)}
            if exc.content_type == "application/json":
                with contextlib.suppress(ValueError):
                    parsed = json.loads(exc.text or "")
                    if isinstance(parsed, dict):
                        body = parsed
            if given and not already_said(exc):
                # Messages are msgids: the handler's English words, in the person's language.
                body["error"] = _(request, given)
            response = web.Response(status=exc.status, text=_dumps(body), content_type="application/json",
                                    headers=headers)
        else:
            message = _(request, given) if given else None
            response = error_page(request, exc.status, message)
            response.headers.extend(headers)
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
    if is_api(request) and (token := bearer(request.headers.get("Authorization"))) is not None:
        # A machine's request: the token alone says who it is (a cookie beside it is not looked at).
        await _use_token(request, token)
    elif not request.path.startswith("/static/"):
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
            raise api_error(401, N_("sign in first"))
        raise web.HTTPFound("/login?next=" + quote(request.path_qs, safe=""))
    return await handler(request)


async def _use_token(request: web.Request, token: str) -> None:
    async with ctx(request).sessions() as db:
        row = await find_live(db, token) if token else None
    if row is None:
        request[REFUSAL_REASON] = TOKEN_REFUSED
        exc = api_error(401, N_("the API token is unknown or revoked"))
        exc.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"'
        raise exc
    user = as_user(row)
    request[USER] = user
    request[VIA_TOKEN] = True
    await note_use(request, user, client_address(request))
    if request.method not in SAFE_METHODS and request.path.startswith(PERSON_ONLY):
        raise api_error(403, N_("an API token has no settings of its own: this is for a person signed in"))


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
    # A browser never adds an Authorization header by itself, so a Bearer request cannot be forged
    # from another site: the token is the proof CSRF tokens give cookies.
    if request.method in SAFE_METHODS or request.get(VIA_TOKEN) or request.path.startswith(SELF_AUTHENTICATED):
        return await handler(request)
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await read_form(request)
        value = form.get(CSRF_FIELD)
        given = value if isinstance(value, str) else None
    if not tokens_match(given, expected_csrf(request)):
        request[REFUSAL_REASON] = CSRF
        if is_api(request):
            raise api_error(403, N_("missing or wrong CSRF token"))
        raise web.HTTPForbidden(text=N_("The form is out of date. Reload the page and try again."))
    return await handler(request)


async def read_form(request: web.Request) -> MultiDictProxy[str | bytes | bytearray | FileField]:
    """The posted form; 400 for one that cannot be read (bytes that are not UTF-8, a broken multipart)."""
    try:
        return await request.post()
    except (UnicodeDecodeError, ValueError, AssertionError) as exc:
        # aiohttp's multipart reader asserts on some malformed bodies; none of it is the person's fault to read.
        log.info("%s %s: unreadable form (%s)", request.method, request.path, exc)
        raise web.HTTPBadRequest() from None
