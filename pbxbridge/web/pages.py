"""Server-rendered page shells: the layout, the navigation a role sees, the sign-in form.

Each page's content is drawn by its script in static/js from the JSON API; the
server decides who may open a page at all (a manager opening another's call
by link gets 403 here, before any data is asked for).
"""

from __future__ import annotations

import html
from collections.abc import Mapping

from aiohttp import web

from pbxbridge.web.access import load_call, load_client
from pbxbridge.web.context import SESSION, USER, ctx
from pbxbridge.web.middleware import set_csrf_cookie
from pbxbridge.web.sessions import CSRF_COOKIE, CSRF_FIELD, new_token
from pbxbridge.web.tables import HEAD, MANAGER, OPS
from pbxbridge.web.users import SignedInUser

routes = web.RouteTableDef()

# (path, title, roles that see it)
NAV: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/calls", "Calls", (HEAD, MANAGER)),
    ("/clients", "Clients", (HEAD, MANAGER)),
    ("/missed", "Missed calls", (HEAD, MANAGER)),
    ("/kpi", "KPI", (HEAD,)),
    ("/wallboard", "Wallboard", (HEAD, OPS, MANAGER)),
    ("/routing", "Routing", (HEAD, OPS)),
    ("/audit", "Audit log", (HEAD,)),
)
HOME = {HEAD: "/calls", MANAGER: "/calls", OPS: "/wallboard"}
ASSET_VERSION = "1"


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def layout(
    request: web.Request,
    title: str,
    body: str,
    scripts: tuple[str, ...] = (),
    data: Mapping[str, object] | None = None,
    status: int = 200,
    styles: tuple[str, ...] = (),
) -> web.Response:
    """A full page: header with the role's navigation, the body, then the page's scripts."""
    user: SignedInUser | None = request.get(USER)
    nav = ""
    if user is not None:
        links = "".join(
            f'<a href="{path}"{" class=active" if request.path.startswith(path) else ""}>{_esc(name)}</a>'
            for path, name, roles in NAV
            if user.role in roles
        )
        session = request.get(SESSION)
        token = session.csrf if session is not None else ""
        who = _esc(user.username) + (f" · ext {_esc(user.extension)}" if user.extension else "")
        nav = (
            f'<nav class="main">{links}</nav>'
            f'<div class="who"><span class="role role-{_esc(user.role)}">{_esc(user.role)}</span> {who}'
            f'<form method="post" action="/logout"><input type="hidden" name="{CSRF_FIELD}" value="{_esc(token)}">'
            f'<button class="link" type="submit">Sign out</button></form></div>'
        )
    attrs = "".join(f' data-{_esc(k)}="{_esc(v)}"' for k, v in (data or {}).items())
    if user is not None:
        attrs += f' data-role="{_esc(user.role)}" data-extension="{_esc(user.extension or "")}"'
    # Each page's own stylesheet after the shared one (css/<page>.css).
    sheets = "".join(
        f'<link rel="stylesheet" href="/static/{_esc(s)}?v={ASSET_VERSION}">' for s in ("css/app.css", *styles)
    )
    tags = "".join(f'<script src="/static/{_esc(s)}?v={ASSET_VERSION}"></script>' for s in ("js/common.js", *scripts))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)} · pbxbridge</title>
{sheets}
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head><body{attrs}>
<header class="top"><a class="brand" href="/">pbx<b>bridge</b></a>{nav}</header>
<main>{body}</main>
{tags}
</body></html>"""
    return web.Response(text=page, content_type="text/html", status=status)


def render_login(request: web.Request, next_url: str = "/", error: str = "", username: str = "") -> web.Response:
    """The sign-in form, with the anonymous CSRF token in a hidden field."""
    token = request.cookies.get(CSRF_COOKIE) or new_token()
    problem = f'<p class="error" role="alert">{_esc(error)}</p>' if error else ""
    body = f"""<section class="login card">
<h1>Sign in</h1>{problem}
<form method="post" action="/login">
<input type="hidden" name="{CSRF_FIELD}" value="{_esc(token)}">
<input type="hidden" name="next" value="{_esc(next_url)}">
<label>Username <input name="username" autocomplete="username" required value="{username}" autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit" class="primary">Sign in</button>
</form></section>"""
    response = layout(request, "Sign in", body)
    if not request.cookies.get(CSRF_COOKIE):
        set_csrf_cookie(request, response, token)
    return response


def forbidden_page(request: web.Request, message: str, title: str = "Not yours") -> web.Response:
    """A 403 page in the site's layout."""
    body = (
        f'<section class="card narrow"><h1>{_esc(title)}</h1><p>{_esc(message)}</p>'
        '<p><a href="/">Back</a></p></section>'
    )
    return layout(request, "Forbidden", body, status=403)


def _user(request: web.Request, *roles: str) -> SignedInUser:
    user: SignedInUser = request[USER]
    if roles and user.role not in roles:
        page = forbidden_page(request, "Your role may not open this page.", title="Not for your role")
        raise web.HTTPForbidden(text=page.text, content_type="text/html")
    return user


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    """Each role's start page."""
    raise web.HTTPFound(HOME.get(_user(request).role, "/wallboard"))


@routes.get("/calls")
async def calls_page(request: web.Request) -> web.Response:
    """The call journal: filters, search, paging, CSV export."""
    _user(request, HEAD, MANAGER)
    return layout(request, "Calls", '<div id="calls-page"></div>', ("js/calls.js",), styles=("css/calls.css",))


@routes.get("/calls/{call_id:\\d+}")
async def call_page(request: web.Request) -> web.Response:
    """One call: the player with its waveform and transcript."""
    user = _user(request, HEAD, MANAGER)
    call_id = int(request.match_info["call_id"])
    async with ctx(request).sessions() as db:
        try:
            await load_call(db, user, call_id)
        except web.HTTPForbidden:
            return forbidden_page(request, "This call belongs to another manager.")
        except web.HTTPNotFound:
            raise web.HTTPNotFound(text="No such call.") from None
    return layout(
        request, "Call", '<div id="call-page"></div>',
        ("vendor/wavesurfer.min.js", "js/player.js"), {"call-id": call_id}, styles=("css/player.css",)
    )


@routes.get("/clients")
async def clients_page(request: web.Request) -> web.Response:
    """Client cards: search by name or number."""
    _user(request, HEAD, MANAGER)
    return layout(request, "Clients", '<div id="clients-page"></div>', ("js/clients.js",), styles=("css/clients.css",))


@routes.get("/clients/{client_id:\\d+}")
async def client_page(request: web.Request) -> web.Response:
    """A client's card: numbers, manager, notes, every call."""
    user = _user(request, HEAD, MANAGER)
    client_id = int(request.match_info["client_id"])
    async with ctx(request).sessions() as db:
        try:
            await load_client(db, user, client_id)
        except web.HTTPForbidden:
            return forbidden_page(request, "This client is another manager's.")
        except web.HTTPNotFound:
            raise web.HTTPNotFound(text="No such client.") from None
    return layout(
        request, "Client", '<div id="client-page"></div>', ("js/client.js",), {"client-id": client_id},
        styles=("css/client.css",),
    )


@routes.get("/kpi")
async def kpi_page(request: web.Request) -> web.Response:
    """KPI dashboard: lost leads first, then charts per manager and department."""
    _user(request, HEAD)
    return layout(request, "KPI", '<div id="kpi-page"></div>', ("vendor/chart.umd.min.js", "js/kpi.js"), styles=("css/kpi.css",))


@routes.get("/wallboard")
async def wallboard_page(request: web.Request) -> web.Response:
    """Live: calls in progress, callers waiting, each manager's line."""
    _user(request, HEAD, OPS, MANAGER)
    return layout(request, "Wallboard", '<div id="wallboard-page"></div>', ("js/wallboard.js",), styles=("css/wallboard.css",))


@routes.get("/routing")
async def routing_page(request: web.Request) -> web.Response:
    """Overflow routing rules, for operations."""
    _user(request, HEAD, OPS)
    return layout(request, "Routing", '<div id="routing-page"></div>', ("js/routing.js",), styles=("css/routing.css",))


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.Response:
    """Who listened to, exported or changed what."""
    _user(request, HEAD)
    return layout(request, "Audit log", '<div id="audit-page"></div>', ("js/audit.js",), styles=("css/audit.css",))
