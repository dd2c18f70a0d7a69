"""The aiohttp application and the server component the daemon starts and stops."""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web

from pbxbridge.web import (
    api_admin,
    api_calls,
    api_checks,
    api_clients,
    api_crm,
    api_drilldown,
    api_kpi,
    api_live,
    api_missed,
    api_recordings,
    api_review,
    api_routing,
    auth_routes,
    health,
    language,
    pages,
)
from pbxbridge.web.context import CONTEXT, WebContext
from pbxbridge.web.middleware import csrf, errors, headers_and_token, session
from pbxbridge.web.refusals import install as install_refusal_log
from pbxbridge.web.tokens import install as install_token_uses

log = logging.getLogger(__name__)
STATIC_DIR = Path(__file__).resolve().parent / "static"
MAX_BODY_BYTES = 1024 * 1024
# A request line as long as a pasted page of Cyrillic search text (6 bytes a letter, encoded):
# the journal itself then answers it with a reason, not aiohttp's bare 400 past 8 KiB.
MAX_REQUEST_LINE_BYTES = 64 * 1024


def create_app(context: WebContext) -> web.Application:
    """The web app: pages, the JSON API under /api, static files, health and metrics."""
    app = web.Application(
        middlewares=[headers_and_token, errors, session, csrf], client_max_size=MAX_BODY_BYTES
    )
    app[CONTEXT] = context
    install_refusal_log(app)
    install_token_uses(app)
    for module in (health, auth_routes, api_calls, api_checks, api_drilldown, api_recordings, api_clients, api_kpi, api_live,
                   api_review, api_routing, api_admin, api_missed, api_crm, language, pages):
        app.router.add_routes(module.routes)
    app.router.add_static("/static/", STATIC_DIR, show_index=False, follow_symlinks=False)
    return app


class WebServer:
    """Serves the app on the configured address; ``start()``/``stop()`` like every daemon part."""

    def __init__(self, context: WebContext, host: str | None = None, port: int | None = None) -> None:
        self.context = context
        self.host = host if host is not None else context.config.web.host
        self.port = port if port is not None else context.config.web.port
        self.app = create_app(context)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        """Bind and serve (port 0 picks a free one, readable from ``.port`` afterwards)."""
        self._runner = web.AppRunner(self.app, access_log=None, max_line_size=MAX_REQUEST_LINE_BYTES)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server  # noqa: SLF001 - aiohttp exposes the bound port only here
        sockets = getattr(server, "sockets", None)
        if self.port == 0 and sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("web app on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        """Close connections (WebSockets included) and stop listening."""
        if self.context.live is not None:
            await self.context.live.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        """The base URL, e.g. http://127.0.0.1:8080."""
        return f"http://{self.host}:{self.port}"
