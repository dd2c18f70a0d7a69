"""KPIs in the daemon: figures following the journal, live gauges, and lead-at-risk alerts polled on the PBX's clock."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import TYPE_CHECKING

from pbxbridge.ami.frames import Frame
from pbxbridge.kpi.alerts import LeadAtRisk
from pbxbridge.kpi.follower import KpiFollower
from pbxbridge.kpi.live import LiveLine
from pbxbridge.kpi.service import KpiService

if TYPE_CHECKING:
    from pbxbridge.app import Daemon

log = logging.getLogger(__name__)

# Gauges and alerts are refreshed this often; a callback window is minutes long.
POLL_S = 5.0
# How long a stop may spend folding the last calls into the figures (the next start does the rest).
STOP_APPLY_TIMEOUT_S = 5.0


class KpiComponent:
    """Started after the database: reopens pending callback windows, follows the journal, polls gauges and alerts."""

    def __init__(self, daemon: Daemon, service: KpiService, poll_s: float = POLL_S) -> None:
        self.daemon = daemon
        self.service = service
        self.poll_s = poll_s
        self.follower = KpiFollower(service, daemon.database_turn, daemon.writer_first)
        self.line = LiveLine()
        self._task: asyncio.Task[None] | None = None

    def on_event(self, pbx: str, event: Frame) -> None:
        """Daemon event subscriber: keep the queue waiters and the PBX's clock."""
        link = self.daemon.links.get(pbx)
        self.line.feed(pbx, event, time.monotonic(), link.last_event_at if link is not None else None)

    async def start(self) -> None:
        """Read open callback windows back from the store, catch up with the journal, start polling."""
        factory = self.daemon.write_sessions
        if factory is not None:
            async with factory() as session:
                reopened = await self.service.start(session)
            log.info("KPI: %d missed callers still waiting for a callback", reopened)
            left = await self.follower.start(factory)
            if left:
                log.info("KPI: %d call(s) in the journal not yet in the figures; folding them in", left)
        self._task = asyncio.create_task(self._poll(), name="kpi-poll")

    async def stop(self) -> None:
        """Fold in the last calls written (for a few seconds at most), stop polling."""
        await self.follower.stop(STOP_APPLY_TIMEOUT_S)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def tick(self, monotonic: float) -> list[LeadAtRisk]:
        """One poll: set the live gauges, publish the alerts due on the PBX's clock."""
        in_progress = sum(link.tracker.active_count() for link in self.daemon.links.values())
        self.service.metrics.set_live(in_progress, self.line.callers_waiting)
        now = self.line.clock(monotonic)
        return [] if now is None else self.service.due_alerts(now)

    async def _poll(self) -> None:
        while True:
            try:
                self.tick(time.monotonic())
            except Exception:  # a bad poll must not end the polling
                log.exception("KPI poll failed")
            await asyncio.sleep(self.poll_s)


def log_alert(risk: LeadAtRisk) -> None:
    """Default alert subscriber: a warning in the log a sales head's tooling can pick up."""
    log.warning(
        "lead at risk: client %s missed at %.0f, lost at %.0f unless called back (rang: %s)",
        risk.client_key, risk.missed_at, risk.lost_at, ",".join(risk.rang) or "nobody",
    )


def attach(daemon: Daemon) -> KpiService:
    """Wire the KPI domain into the daemon: hook, event feed, component; the service is ``daemon.kpi``."""
    service = KpiService.from_config(daemon.config)
    service.watch.subscribe(log_alert)
    component = KpiComponent(daemon, service)
    daemon.kpi = service  # type: ignore[attr-defined]
    # The journal's transaction only notes its calls; their figures follow in the KPI's own.
    daemon.after_write.append(component.follower)
    daemon.flushers.append(component.follower.flush)
    daemon.event_subscribers.append(component.on_event)
    daemon.add_component(component)
    return service
