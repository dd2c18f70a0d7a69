"""Routing in the daemon: line states per PBX, the FastAGI server, click-to-call per PBX."""

from __future__ import annotations

import logging
from typing import Any

from pbxbridge.ami.frames import Frame
from pbxbridge.config import Config
from pbxbridge.hub import CRM_OWNER, ORIGINATE, Hub, ServiceKey
from pbxbridge.routing.agi import FastAgiServer
from pbxbridge.routing.click_to_call import (
    FAIL_FAST_S,
    REQUEST_VARIABLE,
    AmiUnavailable,
    ClickToCall,
    extensions_from_db,
)
from pbxbridge.routing.line_states import LineStates
from pbxbridge.routing.live import LineFeed
from pbxbridge.routing.overflow import OverflowRouter
from pbxbridge.routing.rules import RoutingRules, rules_from_config

log = logging.getLogger(__name__)

# Every PBX's handsets as routing keeps them (refreshed after each login): the wallboard shows the same.
LINE_STATES: ServiceKey[dict[str, LineStates]] = ServiceKey("line_states")


def default_rules(config: Config) -> RoutingRules:
    """Rules used until someone saves their own: [routing] settings, the KPI time zone."""
    return rules_from_config(config.routing, timezone=config.kpi.timezone)


class RoutingComponent:
    """Started after the database: serves AGI, keeps line states, places click-to-calls."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.feeds: dict[str, LineFeed] = {pbx.name: LineFeed() for pbx in hub.config.pbx}
        # Made once: the event feed runs for every AMI event.
        self._senders = {pbx.name: _sender(hub, pbx.name) for pbx in hub.config.pbx}
        self.click_to_call: dict[str, ClickToCall] = {}
        self.agi: FastAgiServer | None = None
        self.router: OverflowRouter | None = None

    def on_event(self, pbx: str, frame: Frame) -> None:
        """Event subscriber: feed the PBX's line states and its click-to-call requests."""
        feed = self.feeds.get(pbx)
        if feed is None:
            return
        feed.feed(frame, self._senders[pbx])
        clicks = self.click_to_call.get(pbx)
        if clicks is not None:
            clicks.feed(frame)

    async def start(self) -> None:
        """Build the router and click-to-call on the daemon's database; start FastAGI."""
        config = self.hub.config
        sessions = self.hub.sessions
        assert sessions is not None, "the database starts before routing"
        # One AGI port serves the first PBX: an inbound route points at the daemon beside it.
        first = config.pbx[0].name
        self.router = OverflowRouter(
            sessions, self.feeds[first].lines, default_rules(config), region=config.phone.default_region,
            crm_owner=self.hub.service(CRM_OWNER),
        )
        for pbx in config.pbx:
            self.click_to_call[pbx.name] = ClickToCall(
                _sender(self.hub, pbx.name),
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


    def forget_lines(self, pbx: str) -> None:
        feed = self.feeds.get(pbx)
        if feed is not None:
            feed.lines.forget()

    async def originate(self, extension: str, number: str) -> dict[str, Any]:
        """Click-to-call from the web app: ring the manager's handset, then dial the client."""
        config = self.hub.config
        if not config.pbx:
            raise AmiUnavailable("click-to-call needs a PBX in the settings")
        # Managers' handsets are on the first PBX (the sales department's).
        pbx = config.pbx[0].name
        placer = self.click_to_call.get(pbx)
        if placer is None:
            raise AmiUnavailable(f"PBX {pbx} is not connected yet")
        request = await placer.call(extension, number)
        return {"request_id": request.request_id, "dialled": request.dialled, "pbx": pbx}


def _sender(hub: Hub, pbx: str) -> Any:
    async def send_action(action: dict[str, str], as_list: bool | None = None) -> Any:
        try:
            return await hub.send_action(pbx, action, as_list)
        except KeyError as exc:
            raise ConnectionError(f"no AMI session to {pbx}") from exc

    return send_action


def attach(hub: Hub) -> RoutingComponent:
    """Attach routing: line states from the events, FastAGI and click-to-call (live only), ``ORIGINATE`` for the web app."""
    component = RoutingComponent(hub)
    hub.on_event(component.on_event)
    # Click-to-call knows its own calls by the variable its Originate sets.
    hub.interest.want_variable(REQUEST_VARIABLE)
    hub.add_component(component, serving=True)
    # A dropped session's lines are unknown until its next login lists them again.
    hub.on_pbx_dropped(component.forget_lines)
    hub.provide(ORIGINATE, component.originate)
    hub.provide(LINE_STATES, {name: feed.lines for name, feed in component.feeds.items()})
    return component
