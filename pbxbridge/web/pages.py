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
from pbxbridge.web.i18n import LANGUAGE_NAMES, LANGUAGES, N_, _, language, load_catalog
from pbxbridge.web.middleware import set_csrf_cookie
from pbxbridge.web.sessions import CSRF_COOKIE, CSRF_FIELD, new_token
from pbxbridge.web.tables import HEAD, MANAGER, OPS
from pbxbridge.web.users import SignedInUser

routes = web.RouteTableDef()

# (path, title, roles that see it)
NAV: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("/calls", N_("Calls"), (HEAD, MANAGER)),
    ("/clients", N_("Clients"), (HEAD, MANAGER)),
    ("/missed", N_("Missed calls"), (HEAD, MANAGER)),
    ("/kpi", N_("KPI"), (HEAD,)),
    ("/wallboard", N_("Wallboard"), (HEAD, OPS, MANAGER)),
    ("/routing", N_("Routing"), (HEAD, OPS)),
    ("/checklists", N_("Checklists"), (HEAD,)),
    ("/audit", N_("Audit log"), (HEAD,)),
    ("/crm", N_("CRM"), (HEAD,)),
)
ROLE_NAMES = {HEAD: N_("Head of sales"), MANAGER: N_("Manager"), OPS: N_("Telephony admin")}
# The header's badge: short enough for a phone (the full name is its tooltip).
ROLE_BADGES = {HEAD: N_("Head"), MANAGER: N_("Manager"), OPS: N_("Admin")}
HOME = {HEAD: "/calls", MANAGER: "/calls", OPS: "/wallboard"}
ASSET_VERSION = "1"


def _esc(value: object) -> str:
    return html.escape(str(value), quote=True)


def role_name(request: web.Request, role: str) -> str:
    """A role as the page names it (Head of sales, Manager, Telephony admin)."""
    return _(request, ROLE_NAMES[role]) if role in ROLE_NAMES else role


def _switcher(request: web.Request, token: str) -> str:
    """RU / EN: a plain form, so it works before any script has loaded and for strangers too."""
    current = language(request)
    # Inputs, not buttons: the value is the label (RU, EN); the page's own forms keep the only
    # submit buttons, so "the form's button" never means the language.
    buttons = "".join(
        f'<input type="submit" name="language" value="{code.upper()}" lang="{code}" title="{_esc(LANGUAGE_NAMES[code])}"'
        f' aria-label="{_esc(LANGUAGE_NAMES[code])}" aria-pressed="{"true" if code == current else "false"}">'
        for code in LANGUAGES
    )
    return (
        f'<form class="lang" method="post" action="/language" aria-label="{_esc(_(request, "Language"))}">'
        f'<input type="hidden" name="{CSRF_FIELD}" value="{_esc(token)}">'
        f'<input type="hidden" name="next" value="{_esc(request.path_qs)}">{buttons}</form>'
    )


def layout(
    request: web.Request,
    title: str,
    body: str,
    scripts: tuple[str, ...] = (),
    data: Mapping[str, object] | None = None,
    status: int = 200,
    styles: tuple[str, ...] = (),
    csrf_token: str | None = None,
) -> web.Response:
    """A full page in the request's language: header with the role's navigation and the
    language switcher, the body, then the catalog and the page's scripts.

    ``title`` is already translated; ``csrf_token`` is the token a stranger's forms carry
    (a signed-in user's forms carry their session's).
    """
    user: SignedInUser | None = request.get(USER)
    session = request.get(SESSION)
    new_cookie = False
    if session is not None:
        token = session.csrf
    else:
        token = csrf_token or request.cookies.get(CSRF_COOKIE) or ""
        if not token:
            token, new_cookie = new_token(), True
    lang = language(request)
    nav = ""
    if user is not None:
        links = "".join(
            f'<a href="{path}"{" class=active" if request.path.startswith(path) else ""}>{_esc(_(request, name))}</a>'
            for path, name, roles in NAV
            if user.role in roles
        )
        who = f'<span class="user">{_esc(user.username)}</span>'
        if user.extension:
            who += f' <span class="ext">{_esc(_(request, "ext. {extension}", extension=user.extension))}</span>'
        nav = (
            f'<nav class="main" aria-label="{_esc(_(request, "Sections"))}">{links}</nav>'
            f'<div class="who"><span class="role role-{_esc(user.role)}" title="{_esc(role_name(request, user.role))}">'
            f'{_esc(_(request, ROLE_BADGES[user.role]) if user.role in ROLE_BADGES else user.role)}</span> {who}'
            f'<form method="post" action="/logout"><input type="hidden" name="{CSRF_FIELD}" value="{_esc(token)}">'
            f'<button class="link" type="submit">{_esc(_(request, "Sign out"))}</button></form></div>'
        )
    attrs = "".join(f' data-{_esc(k)}="{_esc(v)}"' for k, v in (data or {}).items())
    # What common.js formats with: the language and the department's time zone.
    attrs += f' data-language="{lang}" data-timezone="{_esc(ctx(request).config.kpi.timezone)}"'
    if user is not None:
        attrs += f' data-role="{_esc(user.role)}" data-extension="{_esc(user.extension or "")}"'
    # Each page's own stylesheet after the shared one (css/<page>.css).
    sheets = "".join(
        f'<link rel="stylesheet" href="/static/{_esc(s)}?v={ASSET_VERSION}">' for s in ("css/app.css", *styles)
    )
    # The catalog first: every page script translates as soon as it runs.
    catalog = f'<script src="/static/i18n/{lang}.js?v={load_catalog(lang).version}"></script>'
    tags = catalog + "".join(
        f'<script src="/static/{_esc(s)}?v={ASSET_VERSION}"></script>' for s in ("js/common.js", "js/missed_alert.js", *scripts)
    )
    page = f"""<!doctype html>
<html lang="{lang}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_esc(title)} · pbxbridge</title>
{sheets}
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
</head><body{attrs}>
<header class="top"><a class="brand" href="/">pbx<b>bridge</b></a>{nav}{_switcher(request, token)}</header>
<main>{body}</main>
{tags}
</body></html>"""
    response = web.Response(text=page, content_type="text/html", status=status)
    if new_cookie:
        set_csrf_cookie(request, response, token)
    return response


def render_login(request: web.Request, next_url: str = "/", error: str = "", username: str = "") -> web.Response:
    """The sign-in form, with the anonymous CSRF token in a hidden field."""
    token = request.cookies.get(CSRF_COOKIE) or new_token()
    problem = f'<p class="error" role="alert">{_esc(error)}</p>' if error else ""
    name_label, password_label = _esc(_(request, "Username")), _esc(_(request, "Password"))
    heading = _(request, "Sign in to pbxbridge")
    body = f"""<section class="login card">
<h1>{_esc(heading)}</h1>{problem}
<form method="post" action="/login">
<input type="hidden" name="{CSRF_FIELD}" value="{_esc(token)}">
<input type="hidden" name="next" value="{_esc(next_url)}">
<label>{name_label} <input name="username" autocomplete="username" required value="{username}" autofocus></label>
<label>{password_label} <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit" class="primary">{_esc(_(request, "Sign in"))}</button>
</form></section>"""
    response = layout(request, _(request, "Sign-in"), body, csrf_token=token)
    if not request.cookies.get(CSRF_COOKIE):
        set_csrf_cookie(request, response, token)
    return response


def forbidden_page(request: web.Request, message: str, title: str | None = None) -> web.Response:
    """A 403 page in the site's layout (``message`` and ``title`` already translated), with a way back."""
    from pbxbridge.web.error_pages import error_page

    return error_page(request, 403, message, title or _(request, "Not yours"))


def _user(request: web.Request, *roles: str) -> SignedInUser:
    user: SignedInUser = request[USER]
    if roles and user.role not in roles:
        # The request pipeline draws the 403 page from this message and writes the refusal to the audit log.
        raise web.HTTPForbidden(text=N_("Your role may not open this page."))
    return user


@routes.get("/")
async def home(request: web.Request) -> web.Response:
    """Each role's start page."""
    raise web.HTTPFound(HOME.get(_user(request).role, "/wallboard"))


@routes.get("/calls")
async def calls_page(request: web.Request) -> web.Response:
    """The call journal: filters, search, paging, CSV export."""
    _user(request, HEAD, MANAGER)
    return layout(request, _(request, "Calls"), '<div id="calls-page"></div>', ("js/calls.js",), styles=("css/calls.css",))


@routes.get("/calls/{call_id:\\d+}")
async def call_page(request: web.Request) -> web.Response:
    """One call: the player with its waveform and transcript."""
    user = _user(request, HEAD, MANAGER)
    call_id = int(request.match_info["call_id"])
    async with ctx(request).sessions() as db:
        try:
            await load_call(db, user, call_id)
        except web.HTTPForbidden:
            return forbidden_page(request, _(request, "This call belongs to another manager."))
        except web.HTTPNotFound:
            raise web.HTTPNotFound(text=N_("No such call.")) from None
    return layout(
        request, _(request, "Call"), '<div id="call-page"></div>',
        ("vendor/wavesurfer.min.js", "js/player.js"), {"call-id": call_id}, styles=("css/player.css",)
    )


@routes.get("/clients")
async def clients_page(request: web.Request) -> web.Response:
    """Client cards: search by name or number."""
    _user(request, HEAD, MANAGER)
    return layout(
        request, _(request, "Clients"), '<div id="clients-page"></div>', ("js/clients.js",), styles=("css/clients.css",)
    )


@routes.get("/clients/{client_id:\\d+}")
async def client_page(request: web.Request) -> web.Response:
    """A client's card: numbers, manager, notes, every call."""
    user = _user(request, HEAD, MANAGER)
    client_id = int(request.match_info["client_id"])
    async with ctx(request).sessions() as db:
        try:
            await load_client(db, user, client_id)
        except web.HTTPForbidden:
            return forbidden_page(request, _(request, "This client belongs to another manager."))
        except web.HTTPNotFound:
            raise web.HTTPNotFound(text=N_("No such client.")) from None
    return layout(
        request, _(request, "Client card"), '<div id="client-page"></div>', ("js/client.js",), {"client-id": client_id},
        styles=("css/client.css",),
    )


@routes.get("/kpi")
async def kpi_page(request: web.Request) -> web.Response:
    """KPI dashboard: lost leads first, then charts per manager and department."""
    _user(request, HEAD)
    return layout(
        request, _(request, "KPI"), '<div id="kpi-page"></div>', ("vendor/chart.umd.min.js", "js/kpi.js"),
        styles=("css/kpi.css",),
    )


@routes.get("/wallboard")
async def wallboard_page(request: web.Request) -> web.Response:
    """Live: calls in progress, callers waiting, each manager's line."""
    _user(request, HEAD, OPS, MANAGER)
    return layout(
        request, _(request, "Wallboard"), '<div id="wallboard-page"></div>', ("js/wallboard.js",),
        styles=("css/wallboard.css",),
    )


@routes.get("/routing")
async def routing_page(request: web.Request) -> web.Response:
    """Overflow routing rules, for operations."""
    _user(request, HEAD, OPS)
    return layout(
        request, _(request, "Routing"), '<div id="routing-page"></div>', ("js/routing.js",), styles=("css/routing.css",)
    )


@routes.get("/audit")
async def audit_page(request: web.Request) -> web.Response:
    """Who listened to, exported or changed what."""
    _user(request, HEAD)
    return layout(request, _(request, "Audit log"), '<div id="audit-page"></div>', ("js/audit.js",), styles=("css/audit.css",))


@routes.get("/crm")
async def crm_page(request: web.Request) -> web.Response:
    """Which CRM user each manager's extension is (Bitrix24, amoCRM), for the head."""
    _user(request, HEAD)
    return layout(request, _(request, "CRM users"), '<div id="crm-users-page"></div>', ("js/crm_users.js",),
                  styles=("css/crm_users.css",))
