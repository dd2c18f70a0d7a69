"""Choosing the web app's language (the header's RU / EN, and its API twin) and the
catalog the page scripts translate with."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from pbxbridge.web.access import require_user
from pbxbridge.web.context import USER, ctx, write_session
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import LANGUAGE_COOKIE, LANGUAGES, _, load_catalog
from pbxbridge.web.users import set_language

routes = web.RouteTableDef()
# The switcher's choice outlives the session: a year.
COOKIE_MAX_AGE_S = 365 * 24 * 3600
# The catalog's URL carries its version, so the browser may keep it as long as it likes.
CATALOG_CACHE = "public, max-age=31536000, immutable"


def _catalog_language(request: web.Request) -> str:
    code = request.match_info["language"]
    if code not in LANGUAGES:
        raise web.HTTPNotFound(text=f"No catalog for {code!r}; there are: {', '.join(LANGUAGES)}.")
    return code


@routes.get("/static/i18n/{language}.js")
async def catalog_script(request: web.Request) -> web.Response:
    """The catalog as a script setting ``window.PBX_CATALOG`` (loaded before common.js; the CSP
    allows no inline script)."""
    catalog = load_catalog(_catalog_language(request))
    return web.Response(
        body=catalog.browser_script, content_type="application/javascript", charset="utf-8",
        headers={"Cache-Control": CATALOG_CACHE},
    )


@routes.get("/static/i18n/{language}.json")
async def catalog_json(request: web.Request) -> web.Response:
    """The same catalog as JSON."""
    return web.json_response(load_catalog(_catalog_language(request)).browser)


def _local(value: str) -> str:
    # Back to a page of this site only: "//evil.example" would be an open redirect.
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def _remember(request: web.Request, response: web.StreamResponse, code: str) -> None:
    response.set_cookie(
        LANGUAGE_COOKIE, code, path="/", max_age=COOKIE_MAX_AGE_S, httponly=True, samesite="Lax",
        secure=ctx(request).secure_cookies or request.secure,
    )


async def _save(request: web.Request, code: str | None) -> None:
    user = request.get(USER)
    if user is not None:
        async with write_session(ctx(request)) as db:
            await set_language(db, user.id, code)


@routes.post("/language")
async def switch_language(request: web.Request) -> web.Response:
    """The header's RU / EN: the signed-in user's own setting (and a cookie, for the sign-in
    page after signing out); then back to the page it was pressed on."""
    form = await request.post()
    code = str(form.get("language", "")).strip().lower()
    if code not in LANGUAGES:
        raise web.HTTPBadRequest(
            text=_(request, "Unknown language {code}; choose one of: {languages}.", code=code,
                   languages=", ".join(LANGUAGES)),
        )
    await _save(request, code)
    response = web.HTTPSeeOther(_local(str(form.get("next", "/"))))
    _remember(request, response, code)
    raise response


@routes.post("/api/me/language")
async def set_my_language(request: web.Request) -> web.Response:
    """{"language": "ru" | "en" | null}: the user's own language (null: follow the browser)."""
    require_user(request)
    try:
        body: Any = await request.json()
    except ValueError:
        raise api_error(400, _(request, "The body must be JSON.")) from None
    code = body.get("language", "") if isinstance(body, dict) else ""
    if code is not None and code not in LANGUAGES:
        raise api_error(
            400, _(request, "language must be one of: {languages} (or null)", languages=", ".join(LANGUAGES)),
        )
    await _save(request, code)
    response = web.json_response({"language": code})
    if code is None:
        response.del_cookie(LANGUAGE_COOKIE, path="/")
    else:
        _remember(request, response, code)
    return response
