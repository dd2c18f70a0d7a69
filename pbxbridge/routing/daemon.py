"""Routing in the daemon: line states per PBX, the FastAGI server, click-to-call per PBX."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from pbxbridge.ami.frames import Frame
from pbxbridge.config import Config
from pbxbridge.routing.agi import FastAgiServer
from pbxbridge.routing.click_to_call import (
    FAIL_FAST_S,
    REQUEST_VARIABLE,
    ClickToCall,
    extensions_from_db,
)
from pbxbridge.routing.live import LineFeed
from pbxbridge.routing.overflow import OverflowRouter
from pbxbridge.routing.rules import RoutingRules, rules_from_config

if TYPE_CHECKING:
    from pbxbridge.app import Daemon

log = logging.getLogger(__name__)


def default_rules(config: Config) -> RoutingRules:
    """Rules used until someone saves their own: [routing] settings, the KPI time zone."""
    return rules_from_config(config.routing, timezone=config.kpi.timezone)


class RoutingComponent:
    """Started after the database: serves AGI, keeps line states, places click-to-calls."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.feeds: dict[str, LineFeed] = {pbx.name: LineFeed() for pbx in daemon.config.pbx}
        self.click_to_call: dict[str, ClickToCall] = {}
        self.agi: FastAgiServer | None = None
        self.router: OverflowRouter | None = None

    def on_event(self, pbx: str, frame: Frame) -> None:
        """Event subscriber: feed the PBX's line states and its click-to-call requests."""
        feed = self.feeds.get(pbx)
        if feed is None:
            return
        link = self.daemon.links.get(pbx)
        send = link.listener.send_action if link is not None and link.listener is not None else None
        feed.feed(frame, send)
        clicks = self.click_to_call.get(pbx)
        if clicks is not None:
            clicks.feed(frame)

    async def start(self) -> None:
        """Build the router and click-to-call on the daemon's database; start FastAGI."""
        config = self.daemon.config
        sessions = self.daemon.session_factory
        assert sessions is not None, "the database starts before routing"
        # One AGI port serves the first PBX: an inbound route points at the daemon beside it.
        first = config.pbx[0].name
        self.router = OverflowRouter(
            sessions, self.feeds[first].lines, default_rules(config), region=config.phone.default_region
        )
        for pbx in config.pbx:
            self.click_to_call[pbx.name] = ClickToCall(
                _sender(self.daemon, pbx.name),
                self.feeds[pbx.name].lines,
                config.click_to_call,
                known_extensions=extensions_from_db(sessions),
                region=config.phone.default_region,
                fail_fast_s=FAIL_FAST_S,
            )
        agi = FastAgiServer({"route": self.router.handle}, config.routing.agi_host, config.routing.agi_port)
        try:
            await agi.start()
        except OSError as exc:
            # Calls must still be journalled; the dialplan sends callers to the queue meanwhile.
            log.error("FastAGI cannot listen on %s:%d (%s); overflow routing is off",
                      config.routing.agi_host, config.routing.agi_port, exc)
            return
        self.agi = agi

    async def stop(self) -> None:
        """Stop serving AGI and any refresh in progress."""
        if self.agi is not None:
            await self.agi.stop()
            self.agi = None
        for feed in self.feeds.values():
            await feed.stop()


def _sender(daemon: Daemon, pbx: str) -> Any:
    async def send_action(action: dict[str, str], as_list: bool | None = None) -> Any:
        link = daemon.links.get(pbx)
        if link is None or link.listener is None:
            raise ConnectionError(f"no AMI session to {pbx}")
        return await link.listener.send_action(action, as_list=as_list)

    return send_action


def attach(daemon: Daemon) -> RoutingComponent:
    """Attach routing to the daemon (``daemon.routing`` for the web UI's click-to-call)."""
    component = RoutingComponent(daemon)
    daemon.event_subscribers.append(component.on_event)
    # Click-to-call knows its own calls by the variable its Originate sets.
    daemon.interest.want_variable(REQUEST_VARIABLE)
    daemon.add_component(component)
    daemon.routing = component  # type: ignore[attr-defined]
    return component
