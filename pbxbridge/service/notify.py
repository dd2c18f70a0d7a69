"""What the daemon tells systemd (``Type=notify``): READY=1, STATUS=, the watchdog, STOPPING=1.

READY=1 once the schema is migrated and every PBX's AMI session is logged in;
STATUS= kept up to date (AMI sessions, a database outage); the watchdog
pinged while the daemon is healthy, so that a hung daemon gets restarted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable

from pbxbridge.ami.listener import AmiListener, ListenerState
from pbxbridge.service import systemd

log = logging.getLogger(__name__)


class ServiceNotifier:
    """Keeps systemd told; ``healthy()`` decides the watchdog pings."""

    def __init__(self, listeners: Callable[[], Iterable[tuple[str, AmiListener | None]]], healthy: Callable[[], bool]) -> None:
        self.listeners = listeners
        self.healthy = healthy
        self.ready = False
        self._status = ""

    def status(self, text: str | None) -> None:
        """A new STATUS= line; None: back to the AMI sessions' (an outage is over)."""
        if text is None:
            if not self.ready:
                return
            text = self.ami_status()
        if text != self._status:
            self._status = text
            tell(systemd.status, text)

    def ami_status(self) -> str:
        parts = []
        for name, listener in self.listeners():
            state = listener.state if listener is not None else ListenerState.STOPPED
            parts.append(f"{name} {state}")
        return "AMI " + ", ".join(parts) if parts else "no PBX configured"

    def listener_changed(self, listener: AmiListener) -> None:
        log.debug("[%s] AMI %s", listener.name, listener.state, extra={"pbx": listener.name})
        if self.ready:
            self.status(self.ami_status())

    async def announce_ready(self) -> None:
        """READY=1 once every PBX's AMI session has logged in (the schema is migrated by now)."""
        self.status("logging in to AMI")
        for _name, listener in self.listeners():
            if listener is not None:
                await listener.wait_for_logins(1)
        self.ready = True
        status = self.ami_status()
        self._status = status
        tell(systemd.ready, status)
        log.info("ready: %s", status)

    async def watchdog(self, interval: float) -> None:
        """Ping systemd's watchdog while the daemon is healthy; a hung daemon gets restarted."""
        was_healthy = True
        while True:
            healthy = self.healthy()
            if healthy:
                tell(systemd.watchdog_ping)
            elif was_healthy:
                log.error("unhealthy (call writer stopped or stuck): no watchdog ping")
            was_healthy = healthy
            await asyncio.sleep(interval)


def tell(send: Callable[..., bool], *args: str) -> None:
    """Notify systemd; a notify socket gone astray must not take the daemon down."""
    try:
        send(*args)
    except OSError as exc:
        log.warning("sd_notify failed: %s", exc)
