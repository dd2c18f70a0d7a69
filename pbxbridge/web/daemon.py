"""The web app in the daemon: the server, the wallboard's feed, click-to-call, readiness."""

from __future__ import annotations

import logging
from typing import Any

from pbxbridge.hub import METRICS_TEXT, ORIGINATE, Hub
from pbxbridge.routing.click_to_call import AmiUnavailable
from pbxbridge.routing.daemon import LINE_STATES
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext, secret_key
from pbxbridge.web.live import LiveBoard, SendAction
from pbxbridge.web.sessions import SessionSigner

log = logging.getLogger(__name__)


def attach(hub: Hub) -> DaemonWeb:
    """Serve the web app from the daemon (live only); its wallboard follows the events and calls."""
    component = DaemonWeb(hub)
    hub.on_event(component.board.on_event)
    hub.on_call(component.board.on_call)
    # The callers and channels a dropped session left behind are unknown until it lists them again.
    hub.on_pbx_dropped(component.board.forget_pbx)
    hub.add_component(component, serving=True)
    return component


class DaemonWeb:
    """The web server inside the daemon, fed by its events and reading its database."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        config = hub.config
        pattern = config.pbx[0].extension_pattern if config.pbx else r"^\d{2,5}$"
        # With routing attached (it attaches first), its line states, refreshed after every
        # login, are the ones to show; without it the wallboard keeps its own.
        lines = hub.service(LINE_STATES)
        self.board = LiveBoard(hub.calls_in_progress, pattern, lines, sender=self._sender)
        self.server: WebServer | None = None
        self._connected: set[str] = set()
        hub.on_pbx_connected(self._connected.add)
        hub.on_pbx_dropped(self._connected.discard)

    def _sender(self, pbx: str) -> SendAction:
        """What the board's own lines ask a PBX's lists through (the daemon's AMI session)."""

        async def send_action(action: dict[str, str], as_list: bool | None = None) -> Any:
            return await self.hub.send_action(pbx, action, as_list)

        return send_action

    def _ami_status(self) -> dict[str, bool]:
        return {pbx.name: pbx.name in self._connected for pbx in self.hub.config.pbx}

    def _metrics_text(self) -> str:
        text = self.hub.service(METRICS_TEXT)
        return text() if text is not None else ""

    async def _originate(self, extension: str, number: str) -> dict[str, Any]:
        originate = self.hub.service(ORIGINATE)
        if originate is None:
            raise AmiUnavailable("click-to-call needs the routing domain attached to the daemon")
        return await originate(extension, number)

    async def start(self) -> None:
        """Serve the app (the daemon's database is open by now)."""
        config = self.hub.config
        assert self.hub.sessions is not None, "the database starts before the web app"
        context = WebContext(
            config=config,
            sessions=self.hub.sessions,
            signer=SessionSigner(secret_key(config)),
            live=self.board,
            metrics_text=self._metrics_text,
            ami_status=self._ami_status,
            originate=self._originate,
            secure_cookies=bool(getattr(config.web, "secure_cookies", False)),
        )
        if not config.web.secret_key:
            log.warning("web.secret_key is not set: sessions end when the daemon restarts")
        self.server = WebServer(context)
        await self.server.start()

    async def stop(self) -> None:
        """Stop serving."""
        if self.server is not None:
            await self.server.stop()
            self.server = None
