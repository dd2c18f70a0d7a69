"""What a person sees when a page cannot be shown: a page in the site's layout saying why, in
their language, with a way back; the JSON API gets the same words as ``{"error": ...}``."""

from __future__ import annotations

import html
import secrets
from urllib.parse import urlsplit

from aiohttp import web

from pbxbridge.web.i18n import N_, _

# status -> (heading, what happened and what to do). A status missing here takes 400's or 500's.
PAGE_TEXT: dict[int, tuple[str, str]] = {
    400: (N_("Bad request"), N_("The request could not be understood. Check the address and try again.")),
    401: (N_("Sign in first"), N_("Sign in to open this page.")),
    403: (N_("Access denied"), N_("You may not open this page.")),
    404: (N_("Page not found"), N_("There is no such page. Check the address, or go back.")),
    405: (N_("Not allowed here"), N_("This address does not take such requests.")),
    413: (N_("Too much data"), N_("What was sent is too large.")),
    429: (N_("Too many attempts"), N_("Too many attempts. Wait a little and try again.")),
    500: (N_("Something went wrong"),
          N_("The page could not be shown because of an error on our side. It has been written to the log.")),
    503: (N_("Temporarily unavailable"), N_("The service is busy or starting. Try again in a minute.")),
}
# The short message of the JSON API for each status (the API's messages are lower case).
API_TEXT: dict[int, str] = {
    400: N_("bad request"),
    401: N_("sign in first"),
    403: N_("access denied"),
    404: N_("not found"),
    405: N_("method not allowed"),
    413: N_("the request is too large"),
    429: N_("too many requests"),
    500: N_("internal error"),
    503: N_("temporarily unavailable"),
}


def new_reference() -> str:
    """A short id that the error page shows and the log line carries, to find one in the other."""
    return secrets.token_hex(4)


def page_text(request: web.Request, status: int) -> tuple[str, str]:
    """The heading and message for a status, translated."""
    title, message = PAGE_TEXT.get(status) or PAGE_TEXT[500 if status >= 500 else 400]
    return _(request, title), _(request, message)


def api_text(request: web.Request, status: int) -> str:
    """The API's ``error`` for a status, translated."""
    return _(request, API_TEXT.get(status) or API_TEXT[500 if status >= 500 else 400])


def _back_link(request: web.Request) -> str | None:
    """The page the person came from, if it is a page of this site (never another site's address)."""
    referer = request.headers.get("Referer", "")
    if not referer:
        return None
    parts = urlsplit(referer)
    if parts.netloc and parts.netloc != request.host:
        return None
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//") or path == request.path:
        return None
    return path + (f"?{parts.query}" if parts.query else "")


def error_page(
    request: web.Request,
    status: int,
    message: str | None = None,
    title: str | None = None,
    reference: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """The page for an HTTP error: what happened, the reference of a logged error, home and back.

    ``message`` and ``title`` are already translated; by default the status's own words are used.
    """
    # pages imports the request pipeline, which renders these pages: import it when first drawn.
    from pbxbridge.web.pages import layout

    default_title, default_message = page_text(request, status)
    esc = html.escape
    parts = [
        f'<section class="card narrow error-page error-{status}">',
        f'<p class="error-status" aria-hidden="true">{status}</p>',
        f"<h1>{esc(title or default_title)}</h1>",
        f'<p class="error-message">{esc(message or default_message)}</p>',
    ]
    if reference:
        said = _(request, "Reference for the administrator: {reference}", reference=reference)
        parts.append(f'<p class="error-reference">{esc(said)}</p>')
    links = [f'<a class="button primary" href="/">{esc(_(request, "Home page"))}</a>']
    back = _back_link(request)
    if back:
        links.append(f'<a class="button" href="{esc(back, quote=True)}">{esc(_(request, "Back"))}</a>')
    parts.append(f'<p class="error-actions">{" ".join(links)}</p></section>')
    response = layout(request, title or default_title, "".join(parts), status=status, styles=("css/errors.css",))
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response
