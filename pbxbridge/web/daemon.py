"""Attach the web app to the daemon: the server, the wallboard's feed, click-to-call, readiness."""

from __future__ import annotations

import logging
from typing import Any

from pbxbridge.ami.listener import ListenerState
from pbxbridge.routing.click_to_call import AmiUnavailable
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext, secret_key
from pbxbridge.web.live import LiveBoard
from pbxbridge.web.sessions import SessionSigner

log = logging.getLogger(__name__)


def attach(daemon: Any) -> None:
    """Register the web app's parts with a ``pbxbridge.app.Daemon``."""
    component = DaemonWeb(daemon)
    daemon.event_subscribers.append(component.board.on_event)
    daemon.call_subscribers.append(component.board.on_call)
    daemon.add_component(component)


class DaemonWeb:
    """The web server inside the daemon, fed by its events and reading its database."""

    def __init__(self, daemon: Any) -> None:
        self.daemon = daemon
        pattern = daemon.config.pbx[0].extension_pattern if daemon.config.pbx else r"^\d{2,5}$"
        # With routing attached (it attaches first), its line states, refreshed after every
        # login, and its click-to-call are the ones to use; without it the wallboard keeps
        # its own line states and click-to-call is off.
        self.routing = getattr(daemon, "routing", None)
        lines = None
        if self.routing is not None:
            lines = {name: feed.lines for name, feed in self.routing.feeds.items()}
        self.board = LiveBoard(self._active_calls, pattern, lines)
        self.server: WebServer | None = None

    def _active_calls(self) -> list[dict[str, Any]]:
        return [call for link in self.daemon.links.values() for call in link.tracker.active_calls()]

    def _ami_status(self) -> dict[str, bool]:
        return {
            name: link.listener is not None and link.listener.state == ListenerState.LOGGED_IN
            for name, link in self.daemon.links.items()
        }

    def _metrics_text(self) -> str:
        # The KPI domain, when attached, keeps its service on the daemon; else its default one.
        for name in ("kpi", "kpi_service"):
            service = getattr(self.daemon, name, None)
            if service is not None and hasattr(service, "metrics_text"):
                return str(service.metrics_text())
        from pbxbridge.kpi.metrics import metrics_text

        return metrics_text()

    async def _originate(self, extension: str, number: str) -> dict[str, Any]:
        config = self.daemon.config
        if self.routing is None or not config.pbx:
            raise AmiUnavailable("click-to-call needs the routing domain attached to the daemon")
        # Managers' handsets are on the first PBX (the sales department's).
        pbx = config.pbx[0].name
        placer = self.routing.click_to_call.get(pbx)
        if placer is None:
            raise AmiUnavailable(f"PBX {pbx} is not connected yet")
        request = await placer.call(extension, number)
        return {"request_id": request.request_id, "dialled": request.dialled, "pbx": pbx}

    async def start(self) -> None:
        """Serve the app (the daemon's database is open by now)."""
        config = self.daemon.config
        context = WebContext(
            config=config,
            sessions=self.daemon.session_factory,
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
